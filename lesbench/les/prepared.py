"""Reading the parts of a prepared data set (docs/design.md) that the LES and LES-Talker use.

The prepared data set is the *only* input of ``lesbench les build`` and ``lesbench train``.
These readers are deliberately small and strict: a missing file or column raises
:class:`lesbench.errors.DatasetError` naming the file; one unreadable clip is skipped with a
recorded reason instead of stopping the whole data set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lesbench import schema
from lesbench.errors import DatasetError


@dataclass
class ClipRecord:
    """One usable clip of a prepared data set (a row of ``clips.parquet`` with status ok)."""

    clip_id: str
    speaker: str
    emotion: str
    level: int
    split: str
    sentence: str = ""


@dataclass
class PreparedIndex:
    """The usable clips of a prepared data set and where its files are."""

    root: Path
    clips: list[ClipRecord]
    skipped: dict[str, str] = field(default_factory=dict)  # clip_id -> reason

    @property
    def paths(self) -> dict[str, Path]:
        return schema.dataset_paths(self.root)

    def speakers(self, split: str | None = None) -> list[str]:
        return sorted({c.speaker for c in self.clips if split is None or c.split == split})

    def by_split(self, split: str) -> list[ClipRecord]:
        return [c for c in self.clips if c.split == split]


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    from lesbench.weights import file_sha256

    return file_sha256(path)


def open_prepared(root: str | Path) -> PreparedIndex:
    """Index a prepared data set: the ``status == ok`` rows of ``clips.parquet``.

    Raises :class:`DatasetError` when the folder is not a prepared data set.
    """
    from lesbench.prepared import read_clips, read_dataset_info

    root = Path(root)
    paths = schema.dataset_paths(root)
    read_dataset_info(root)  # format-version check
    table = read_clips(root)
    clips = [
        ClipRecord(
            clip_id=str(r.clip_id),
            speaker=str(r.speaker),
            emotion=str(r.emotion),
            level=int(r.level),
            split=str(r.split),
            sentence=str(getattr(r, "sentence", "")),
        )
        for r in table.itertuples(index=False)
    ]
    if not clips:
        raise DatasetError(f"{paths['clips']}: no clip with status ok")
    return PreparedIndex(root=root, clips=sorted(clips, key=lambda c: c.clip_id))


def read_clip_aus(index: PreparedIndex, clip_id: str) -> np.ndarray:
    """Per-frame AU intensities of one clip, frames with a face only.

    Returns (T_face, 17) float64 in ``schema.AU_NAMES`` order.
    """
    import pandas as pd

    path = index.paths["frames"] / f"{clip_id}.parquet"
    if not path.is_file():
        raise DatasetError(f"{path}: missing frames table")
    cols = ["face", *schema.AU_NAMES]
    try:
        table = pd.read_parquet(path, columns=cols)
    except Exception as exc:  # a corrupt or incomplete parquet file
        raise DatasetError(f"{path}: unreadable frames table ({exc})") from None
    table = table[table["face"].astype(bool)]
    aus = table[list(schema.AU_NAMES)].to_numpy(np.float64)
    return aus[np.isfinite(aus).all(axis=1)]


def clip_mean_aus(index: PreparedIndex, clips: list[ClipRecord] | None = None) -> dict[str, np.ndarray]:
    """Mean AU vector (17,) of every clip that has at least one face frame.

    Clips that cannot be read are recorded in ``index.skipped`` and left out.
    """
    out: dict[str, np.ndarray] = {}
    for clip in clips if clips is not None else index.clips:
        try:
            aus = read_clip_aus(index, clip.clip_id)
        except DatasetError as exc:
            index.skipped[clip.clip_id] = str(exc)
            continue
        if len(aus) == 0:
            index.skipped[clip.clip_id] = "no frame with a face"
            continue
        out[clip.clip_id] = aus.mean(axis=0)
    return out


def dataset_provenance(root: str | Path) -> dict:
    """sha256 of ``dataset.json`` and ``clips.parquet`` (what a trained artefact was built from)."""
    paths = schema.dataset_paths(root)
    prov: dict = {"root": str(Path(root).resolve())}
    for name in ("dataset", "clips", "face_model"):
        p = paths[name]
        prov[f"{p.name}_sha256"] = sha256_file(p) if p.is_file() else None
    return prov
