"""The labels of a prepared data set's rows against how its reader derives them: speaker, view,
emotion, level and sentence from the MEAD clip id and source paths, the clip id of a folder data
set from its video path, and the split from the data set's split rule. Used by
``lesbench validate`` (:mod:`lesbench.pipelines.validate`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lesbench import schema
from lesbench.pipelines.folder import UNKNOWN, clip_id_from_relpath, sanitise_part
from lesbench.pipelines.mead import assign_split, normalise_speaker, parse_clip_id, place

if TYPE_CHECKING:  # pragma: no cover
    from lesbench.pipelines.validate import ValidationReport


@dataclass
class LabelRule:
    """How a data set's reader derives labels, to check ``clips.parquet`` against: ``dataset``
    (reader name), ``root`` (source root the paths are relative to), test/val speakers, and
    whether a folder data set had a sidecar (which may set any label)."""

    dataset: str | None
    root: Path | None
    test_speakers: tuple[str, ...] = ()
    val_speakers: tuple[str, ...] = ()
    sidecar: bool = False

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> "LabelRule":
        reader = info.get("reader") or {}
        config = info.get("config") or {}
        dataset = reader.get("dataset") or info.get("dataset") or config.get("dataset")
        root = reader.get("root") or info.get("source_root")
        return cls(
            dataset=dataset,
            root=Path(root) if root else None,
            test_speakers=tuple(reader.get("test_speakers", config.get("test_speakers")) or ()),
            val_speakers=tuple(reader.get("val_speakers", config.get("val_speakers")) or ()),
            sidecar=bool(reader.get("sidecar")),
        )

    def _relative(self, path: str) -> tuple[Path, str | None]:
        """``path`` relative to the source root (and the root's speaker id when the root is
        one speaker's folder); the whole path when it lies elsewhere."""
        p = Path(path)
        if self.root is not None:
            try:
                return p.relative_to(self.root), normalise_speaker(self.root.name)
            except ValueError:
                pass
        return Path(*p.parts[1:]) if p.is_absolute() else p, None

    def check(self, rep: ValidationReport, r: dict[str, Any]) -> None:
        """Add to ``rep`` every label of the manifest row ``r`` that contradicts the rule."""
        if self.dataset == "mead":
            self._check_mead(rep, r)
        elif self.dataset == "folder":
            self._check_folder(rep, r)

    def _check_mead(self, rep: ValidationReport, r: dict[str, Any]) -> None:
        cid = r["clip_id"]
        where = f"clips.parquet[{cid}]"
        fields = ("speaker", "view", "emotion", "level", "sentence")
        from_id = parse_clip_id(cid)
        if from_id is None:
            rep.add(where, "clip_id is not a MEAD clip id ({speaker}_{view}_{emotion}_{level}_{sentence})")
        else:
            for f in fields:
                if r[f] != from_id[f]:
                    rep.add(where, f"{f} {r[f]!r} contradicts the clip id ({from_id[f]!r})")
        for kind, key in (("video", "video_path"), ("audio", "audio_path")):
            if not r[key]:
                continue
            rel, root_speaker = self._relative(r[key])
            placed, reason = place(rel, kind, root_speaker)
            if placed is None:
                rep.add(where, f"{key} {r[key]} is not a MEAD {kind} path: {reason}")
                continue
            for f in fields:
                got = getattr(placed, f)
                if got is not None and r[f] != got:  # audio paths have no view
                    rep.add(where, f"{f} {r[f]!r} contradicts the {kind} path {r[key]} ({got!r})")
        self._check_split(rep, r, where)

    def _check_folder(self, rep: ValidationReport, r: dict[str, Any]) -> None:
        cid = r["clip_id"]
        where = f"clips.parquet[{cid}]"
        if r["video_path"] and self.root is not None:
            try:
                rel = Path(r["video_path"]).relative_to(self.root).as_posix()
            except ValueError:
                rep.add(where, f"video_path {r['video_path']} is outside the source root {self.root}")
                return
            base = clip_id_from_relpath(rel)
            if cid not in (base, f"{base}__{hashlib.sha1(rel.encode()).hexdigest()[:8]}"):
                rep.add(where, f"clip_id contradicts the video path {rel} (expected {base!r})")
        if self.sidecar:
            return  # a sidecar may set any label and the split: nothing else to derive them from
        want = {"speaker": UNKNOWN, "view": UNKNOWN, "emotion": UNKNOWN, "level": 0,
                "sentence": sanitise_part(Path(r["video_path"] or "").stem)}
        for f, value in want.items():
            if r[f] != value:
                rep.add(where, f"{f} {r[f]!r} but the data set has no sidecar to give it (expected {value!r})")
        self._check_split(rep, r, where)

    def _check_split(self, rep: ValidationReport, r: dict[str, Any], where: str) -> None:
        want = assign_split(r["speaker"], self.test_speakers, self.val_speakers)
        if r["split"] in schema.SPLITS and r["split"] != want:
            rep.add(where, f"split {r['split']!r} contradicts the data set's split rule: speaker {r['speaker']!r} "
                           f"is {want!r} (test speakers {list(self.test_speakers)}, val {list(self.val_speakers)})")
