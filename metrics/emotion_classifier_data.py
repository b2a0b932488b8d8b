"""Training data for the MEAD emotion classifier: the clips of a prepared data set with a MEAD
emotion, with their per-frame AUs (frames table) and/or FER-style face-crop inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lesbench.io import read_frames
from lesbench.prepared import PreparedDataset
from lesbench.schema import AU_NAMES, EMOTIONS
from lesbench.metrics.emotion_fer import fer_inputs


@dataclass
class ClipData:
    clip_id: str
    speaker: str
    emotion: str
    split: str
    aus: np.ndarray | None = None  # (T, 17) float32, face frames only
    crops: np.ndarray | None = None  # (T', 1, 64, 64) float32


def load_clips(prepared: str | Path, features: str, frame_step: int = 5,
               log: Any = None) -> list[ClipData]:
    """Clips of a prepared data set with status ok and a MEAD emotion, with their features.

    A clip whose feature file is missing or unreadable is skipped and logged (never fatal).
    """
    data = PreparedDataset(prepared)
    # clips with crops and frames, audio or not
    clips = data.clips(statuses=("ok", "no_audio", "silent_audio"), required=("clip_id", "emotion", "split"))
    clips = clips[clips["emotion"].isin(EMOTIONS)]
    out: list[ClipData] = []
    for row in clips.itertuples(index=False):
        cd = ClipData(row.clip_id, str(getattr(row, "speaker", "")), row.emotion, row.split)
        try:
            if features in ("au", "both"):
                cd.aus = _read_aus(data.clip_file("frames", row.clip_id))
            if features in ("crops", "both"):
                cd.crops = _read_crops(data.clip_file("crops", row.clip_id), frame_step)
        except Exception as e:  # one bad clip never stops the data set
            if log:
                log(f"skipping {row.clip_id}: {type(e).__name__}: {e}")
            continue
        if (cd.aus is not None and len(cd.aus) == 0) or (cd.crops is not None and len(cd.crops) == 0):
            if log:
                log(f"skipping {row.clip_id}: no usable frames")
            continue
        out.append(cd)
    return out


def _read_aus(path: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    cols = list(AU_NAMES)
    table = pq.read_table(path, columns=cols + (["face"] if "face" in pq.read_schema(path).names else []))
    aus = np.stack([table.column(c).to_numpy(zero_copy_only=False).astype(np.float32) for c in cols], axis=1)
    ok = np.isfinite(aus).all(axis=1)
    if "face" in table.column_names:
        ok &= table.column("face").to_numpy(zero_copy_only=False).astype(bool)
    return aus[ok]


def _read_crops(path: Path, frame_step: int) -> np.ndarray:
    frames = read_frames(path)
    return fer_inputs(frames[::frame_step])
