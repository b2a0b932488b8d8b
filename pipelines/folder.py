"""Generic reader: any folder of videos (searched recursively) as :class:`~lesbench.schema.Clip`.

``clip_id`` comes from the path relative to the root: each part is reduced to
``[A-Za-z0-9_.-]`` and the parts are joined with ``__`` (``talks/Ann Lee/01.mp4`` ->
``talks__Ann_Lee__01``). It depends only on the relative path, so it is stable across machines
and runs; when two paths reduce to the same id, each of them gets an 8-hex suffix from its
path's sha1.

Speaker, view, emotion, level and split are unknown (``"unknown"``, level 0, split ``train``)
unless a sidecar CSV gives them: ``clips.csv`` in the root (or ``sidecar=``) with a ``path``
column (relative to the root) or a ``clip_id`` column, and any of ``speaker``, ``view``,
``emotion``, ``level``, ``sentence``, ``split``. Audio is read from the video file itself
(``audio_path=None``). Filesystem oddities met while searching (symlink loops, dangling links,
unlistable folders, names that are not UTF-8, FIFOs) are listed in ``skipped``, never raised.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from pathlib import Path
from typing import Sequence

from lesbench.errors import DatasetError
from lesbench.schema import SPLITS, Clip

from lesbench.pipelines.mead import VIDEO_SUFFIXES, assign_split, walk_files

SIDECAR_NAME = "clips.csv"
UNKNOWN = "unknown"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def sanitise_part(part: str) -> str:
    """One path component -> ``[A-Za-z0-9_.-]+`` (never empty)."""
    cleaned = _UNSAFE.sub("_", part).strip("._") or "_"
    return cleaned


def clip_id_from_relpath(rel: str | Path) -> str:
    rel = Path(rel)
    parts = [*rel.parts[:-1], rel.stem]
    return "__".join(sanitise_part(p) for p in parts)


class FolderDataset:
    """Every video under ``root`` (recursively), one clip each, sorted by ``clip_id``.

    Args:
        root: folder to search.
        sidecar: CSV with per-clip metadata (default ``root/clips.csv`` when it exists).
        test_speakers / val_speakers: split by speaker where the sidecar gives speakers and
            no ``split`` column.
    """

    name = "folder"

    def __init__(
        self,
        root: str | os.PathLike,
        sidecar: str | os.PathLike | None = None,
        test_speakers: Sequence[str] = (),
        val_speakers: Sequence[str] = (),
        views: Sequence[str] | None = None,  # accepted for a uniform reader signature; unused
    ) -> None:
        self.root = Path(os.path.realpath(Path(root).expanduser()))  # no error on a looping root
        self.sidecar = Path(sidecar) if sidecar is not None else None
        self.test_speakers = tuple(test_speakers)
        self.val_speakers = tuple(val_speakers)
        self.skipped: list[tuple[str, str]] = []
        self._clips: list[Clip] | None = None

    def config(self) -> dict:
        return {
            "dataset": self.name,
            "root": str(self.root),
            "sidecar": str(self._sidecar_path()) if self._sidecar_path() else None,
            "test_speakers": list(self.test_speakers),
            "val_speakers": list(self.val_speakers),
        }

    def clips(self) -> list[Clip]:
        if self._clips is None:
            self._clips = self._index()
        return list(self._clips)

    def _sidecar_path(self) -> Path | None:
        if self.sidecar is not None:
            return self.sidecar
        default = self.root / SIDECAR_NAME
        return default if default.is_file() else None

    def _read_sidecar(self) -> tuple[dict[str, dict], dict[str, dict]]:
        """Rows keyed by normalised relative path and by clip_id."""
        path = self._sidecar_path()
        by_path: dict[str, dict] = {}
        by_id: dict[str, dict] = {}
        if path is None:
            return by_path, by_id
        if not path.is_file():
            raise DatasetError(f"{path}: sidecar CSV not found")
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = set(reader.fieldnames or ())
            if not fields & {"path", "clip_id"}:
                raise DatasetError(f"{path}: sidecar CSV needs a 'path' or 'clip_id' column")
            for i, row in enumerate(reader, start=2):
                row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                if row.get("path"):
                    by_path[Path(row["path"]).as_posix()] = row
                elif row.get("clip_id"):
                    by_id[row["clip_id"]] = row
                else:
                    self.skipped.append((f"{path}:{i}", "sidecar row with neither path nor clip_id"))
        return by_path, by_id

    def _index(self) -> list[Clip]:
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: not a folder")
        self.skipped = []
        by_path, by_id = self._read_sidecar()
        files, notes = walk_files(self.root)
        self.skipped.extend(notes)
        videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
        rels = [p.relative_to(self.root).as_posix() for p in videos]
        ids = [clip_id_from_relpath(r) for r in rels]
        counts: dict[str, int] = {}
        for cid in ids:
            counts[cid] = counts.get(cid, 0) + 1
        ids = [
            f"{cid}__{hashlib.sha1(rel.encode()).hexdigest()[:8]}" if counts[cid] > 1 else cid
            for cid, rel in zip(ids, rels)
        ]
        used_rows: set[str] = set()
        clips = []
        for path, rel, cid in zip(videos, rels, ids):
            meta = by_path.get(rel) or by_id.get(cid) or {}
            if meta:
                used_rows.add(rel if rel in by_path else cid)
            try:
                level = int(meta.get("level") or 0)
            except ValueError:
                self.skipped.append((str(path), f"sidecar level {meta.get('level')!r} is not an integer; used 0"))
                level = 0
            speaker = meta.get("speaker") or UNKNOWN
            split = (meta.get("split") or "").lower()
            if split and split not in SPLITS:
                self.skipped.append((str(path), f"sidecar split {split!r} unknown (known: {', '.join(SPLITS)}); used speaker rule"))
                split = ""
            if not split:
                split = assign_split(speaker, self.test_speakers, self.val_speakers)
            clips.append(
                Clip(
                    clip_id=cid,
                    speaker=speaker,
                    view=meta.get("view") or UNKNOWN,
                    emotion=(meta.get("emotion") or UNKNOWN).lower(),
                    level=level,
                    sentence=meta.get("sentence") or sanitise_part(path.stem),
                    video_path=str(path),
                    audio_path=None,
                    split=split,
                    extra={"relpath": rel},
                )
            )
        for key in sorted(set(by_path) - used_rows):
            self.skipped.append((key, "sidecar row names a video that is not in the folder"))
        for key in sorted(set(by_id) - used_rows):
            self.skipped.append((key, "sidecar row names a clip_id that is not in the folder"))
        clips.sort(key=lambda c: c.clip_id)
        return clips
