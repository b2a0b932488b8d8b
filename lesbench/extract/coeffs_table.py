"""The ``coeffs`` stage's table: one row per frame, the clip's identity coefficients repeated,
expression coefficients and pose per frame (:func:`coeffs_schema`, :func:`coeffs_to_table`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lesbench.schema import POSE_NAMES
from lesbench.extract.face_model import VERSION, Coefficients

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


def _vector_type(width: int) -> "pa.DataType":
    """``fixed_size_list<float32>[width]``; a variable-size ``list<float32>`` (every row empty)
    when ``width == 0``, which a zero-width fixed-size list cannot round-trip through Parquet."""
    import pyarrow as pa

    return pa.list_(pa.float32(), width) if width > 0 else pa.list_(pa.float32())


def coeffs_schema(k_id: int, k_exp: int, with_clip_id: bool = True) -> "pa.Schema":
    """Arrow schema of ``coeffs/{clip_id}.parquet`` (``id``/``exp`` see :func:`_vector_type`)."""
    import pyarrow as pa

    f32 = pa.float32()
    fields = [
        pa.field("frame", pa.int32(), nullable=False),
        pa.field("id", _vector_type(k_id)),
        pa.field("exp", _vector_type(k_exp)),
        *[pa.field(name, f32) for name in POSE_NAMES],
    ]
    if with_clip_id:
        fields.insert(0, pa.field("clip_id", pa.string(), nullable=False))
    return pa.schema(fields, metadata={"stage": "coeffs", "stage_version": VERSION})


def _vector_column(values: np.ndarray, width: int, n: int) -> "pa.Array":
    """``(n, width)`` float32 rows as a list column of :func:`_vector_type` (``width`` may be 0)."""
    import pyarrow as pa

    if width == 0:
        return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.float32()))
    flat = pa.array(np.ascontiguousarray(values, np.float32).reshape(-1), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, width)


def coeffs_to_table(coeffs: Coefficients, clip_id: str | None = None, frames: np.ndarray | None = None) -> "pa.Table":
    """One row per frame: the clip's ``id`` repeated, ``exp`` and pose per frame."""
    import pyarrow as pa

    t, k_exp = coeffs.exp.shape
    k_id = len(coeffs.id)
    schema = coeffs_schema(k_id, k_exp, with_clip_id=clip_id is not None)
    cols: dict[str, pa.Array] = {}
    if clip_id is not None:
        cols["clip_id"] = pa.array([clip_id] * t, pa.string())
    cols["frame"] = pa.array(np.arange(t, dtype=np.int32) if frames is None else np.asarray(frames, np.int32))
    ident = np.tile(np.asarray(coeffs.id, np.float32), (t, 1))
    cols["id"] = _vector_column(ident, k_id, t)
    cols["exp"] = _vector_column(np.asarray(coeffs.exp, np.float32), k_exp, t)
    for j, name in enumerate(POSE_NAMES):
        cols[name] = pa.array(np.asarray(coeffs.pose[:, j], np.float32))
    return pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)
