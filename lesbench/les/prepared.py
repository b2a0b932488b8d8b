"""The clips of a prepared data set as the LES and LES-Talker see them.

The prepared data set is the *only* input of ``lesbench les build`` and ``lesbench train``; it is
read through :class:`lesbench.prepared.PreparedDataset` (which raises
:class:`lesbench.errors.DatasetError` naming the file on anything missing or unreadable). What is
here is the LES's own view: the usable clips as records, and each clip's AUs over the frames with a
face. One unreadable clip is skipped with a recorded reason instead of stopping the whole data set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from lesbench import schema
from lesbench.errors import DatasetError
from lesbench.prepared import PreparedDataset


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
    """The usable clips of a prepared data set (``data``), sorted by clip id, and the clips left
    out on the way with their reasons."""

    data: PreparedDataset
    clips: list[ClipRecord]
    skipped: dict[str, str] = field(default_factory=dict)  # clip_id -> reason

    @property
    def root(self) -> Path:
        return self.data.root

    def speakers(self, split: str | None = None) -> list[str]:
        return sorted({c.speaker for c in self.clips if split is None or c.split == split})

    def by_split(self, split: str) -> list[ClipRecord]:
        return [c for c in self.clips if c.split == split]


def open_prepared(root: str | Path) -> PreparedIndex:
    """Index a prepared data set: the ``status == ok`` rows of ``clips.parquet``.

    Raises :class:`DatasetError` when the folder is not a prepared data set (or its
    ``dataset.json`` is of an incompatible format) or has no usable clip.
    """
    data = PreparedDataset(root)
    data.info  # format-version check
    clips = [
        ClipRecord(
            clip_id=str(r.clip_id),
            speaker=str(r.speaker),
            emotion=str(r.emotion),
            level=int(r.level),
            split=str(r.split),
            sentence=str(getattr(r, "sentence", "")),
        )
        for r in data.clips().itertuples(index=False)
    ]
    if not clips:
        raise DatasetError(f"{data.path('clips')}: no clip with status ok")
    return PreparedIndex(data=data, clips=sorted(clips, key=lambda c: c.clip_id))


def read_clip_aus(data: PreparedDataset, clip_id: str,
                  au_names: Sequence[str] = schema.AU_NAMES) -> np.ndarray:
    """Per-frame AU intensities of one clip, frames with a face and finite AUs only.

    ``au_names``: frames-table columns to read (default the 17 averaged AUs; the bilateral set
    is ``action_units.BILATERAL_SET_NAMES``). Returns (T_face, len(au_names)) float64 in that order.
    """
    table = data.read_table("frames", clip_id, ["face", *au_names])
    table = table[table["face"].astype(bool)]
    aus = table[list(au_names)].to_numpy(np.float64)
    return aus[np.isfinite(aus).all(axis=1)]


def require_au_columns(index: PreparedIndex, au_names: Sequence[str]) -> None:
    """Raise :class:`DatasetError` naming the first clip's frames table when it lacks any of
    ``au_names`` (e.g. the per-side AUs of a data set prepared before action-units stage 2)."""
    import pyarrow.parquet as pq

    path = index.data.clip_file("frames", index.clips[0].clip_id)
    try:
        names = set(pq.read_schema(path).names)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported with its path
        raise DatasetError(f"{path}: unreadable frames table ({exc})") from None
    missing = [n for n in au_names if n not in names]
    if missing:
        raise DatasetError(
            f"{path}: no column(s) {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}; the per-side AUs "
            "come from the action-units stage version 2 or later: prepare the data set again (`lesbench prepare`)"
        )


def clip_mean_aus(index: PreparedIndex, clips: list[ClipRecord] | None = None,
                  au_names: Sequence[str] = schema.AU_NAMES) -> dict[str, np.ndarray]:
    """Mean AU vector (len(au_names),) of every clip that has at least one face frame.

    Clips that cannot be read are recorded in ``index.skipped`` and left out.
    """
    out: dict[str, np.ndarray] = {}
    for clip in clips if clips is not None else index.clips:
        try:
            aus = read_clip_aus(index.data, clip.clip_id, au_names)
        except DatasetError as exc:
            index.skipped[clip.clip_id] = str(exc)
            continue
        if len(aus) == 0:
            index.skipped[clip.clip_id] = "no frame with a face"
            continue
        out[clip.clip_id] = aus.mean(axis=0)
    return out
