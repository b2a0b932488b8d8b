"""The ``face`` stage's frames table: column order (:func:`frame_columns`), the exact Arrow types
the pipeline writes (:func:`frames_schema`) and the conversion from :meth:`FaceTracker.track`'s
DataFrame (:func:`frames_to_table`); one row per frame, no gaps.

Columns (``frame_columns()``):

- ``frame`` int32, ``t`` float64 seconds, ``face`` bool
- ``bbox`` (4,) float32 ``x0, y0, x1, y1``: extent of the 478 landmarks, source-frame pixels
- ``yaw``, ``pitch``, ``roll`` float32 degrees, from the rotation part of MediaPipe's facial
  transformation matrix (canonical face model -> camera), as :mod:`lesbench.extract.head_pose`
  defines them.
- ``tx``, ``ty``, ``tz`` float32: translation of that matrix, centimetres in MediaPipe's metric
  camera space (``tz`` < 0: the face is in front of the camera).
- ``scale`` float32: face size in source pixels = 3D distance between the outer eye corners
  (landmarks 33 and 263) using the x, y, z landmark coordinates, so it does not shrink when
  the head turns.
- ``landmarks`` (1434,) float32 = 478 x (x, y, z) flattened: x, y in pixels of the SOURCE frame
  (also when the analysis ran on a downscaled copy), z in the same pixel scale as x
  (MediaPipe's z is normalised by the image width).
- ``blendshapes`` (52,) float32 in ``schema.BLENDSHAPE_NAMES`` order (checked against
  MediaPipe's category names on every frame).
- ``AU01`` ... ``AU45`` float32 in [0, 1], from :func:`~lesbench.extract.action_units.au_from_blendshapes`.
- ``AU02_L``, ``AU02_R`` ... ``AU45_R`` float32 in [0, 1]: the per-side AUs
  (``action_units.SIDED_AU_NAMES``), from :func:`~lesbench.extract.action_units.sided_au_from_blendshapes`.

Frames without a face have ``face = False`` and NaN in every number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lesbench.schema import AU_NAMES, BLENDSHAPE_NAMES, N_LANDMARKS
from lesbench.extract.action_units import SIDED_AU_NAMES, au_from_blendshapes, sided_au_from_blendshapes

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

#: Stage version: bump when the frames table's content can change.
VERSION = "1"

N_BLENDSHAPES = len(BLENDSHAPE_NAMES)
LANDMARK_DIM = N_LANDMARKS * 3

FRAME_SCALAR_FLOAT_COLUMNS: tuple[str, ...] = ("yaw", "pitch", "roll", "tx", "ty", "tz", "scale")


def frame_columns(with_clip_id: bool = False) -> list[str]:
    """Column names of the frames table, in order."""
    cols = ["frame", "t", "face", "bbox", *FRAME_SCALAR_FLOAT_COLUMNS, "landmarks", "blendshapes", *AU_NAMES,
            *SIDED_AU_NAMES]
    return (["clip_id"] if with_clip_id else []) + cols


def frames_schema(with_clip_id: bool = True) -> "pa.Schema":
    """Exact Arrow schema of ``frames/{clip_id}.parquet`` (docs/design.md).

    ``landmarks`` and ``blendshapes`` carry their layout as field metadata.
    """
    import pyarrow as pa

    f32 = pa.float32()
    fields = [
        pa.field("frame", pa.int32(), nullable=False),
        pa.field("t", pa.float64(), nullable=False),
        pa.field("face", pa.bool_(), nullable=False),
        pa.field("bbox", pa.list_(f32, 4), metadata={"layout": "x0,y0,x1,y1", "unit": "px"}),
        *[pa.field(c, f32) for c in FRAME_SCALAR_FLOAT_COLUMNS],
        pa.field(
            "landmarks",
            pa.list_(f32, LANDMARK_DIM),
            metadata={"layout": f"{N_LANDMARKS}x3 row-major (x,y,z)", "unit": "px (source frame)"},
        ),
        pa.field("blendshapes", pa.list_(f32, N_BLENDSHAPES), metadata={"names": ",".join(BLENDSHAPE_NAMES)}),
        *[pa.field(au, f32) for au in AU_NAMES],
        *[pa.field(au, f32) for au in SIDED_AU_NAMES],
    ]
    if with_clip_id:
        fields.insert(0, pa.field("clip_id", pa.string(), nullable=False))
    return pa.schema(fields, metadata={"stage": "face", "stage_version": VERSION})


def frames_to_table(df: "pd.DataFrame", clip_id: str | None = None) -> "pa.Table":
    """Convert :meth:`FaceTracker.track`'s DataFrame to an Arrow table with :func:`frames_schema`.

    Args:
        df: frames DataFrame (the ``clip_id`` column optional).
        clip_id: written to every row when given (required when ``df`` has no ``clip_id``
            and the clip_id column is wanted; with ``None`` and no column, the table has none).
    """
    import pyarrow as pa

    with_id = clip_id is not None or "clip_id" in df.columns
    schema = frames_schema(with_clip_id=with_id)
    n = len(df)
    arrays: list[pa.Array] = []
    for field in schema:
        name = field.name
        if name == "clip_id":
            values = [clip_id] * n if clip_id is not None else df["clip_id"].astype(str).tolist()
            arrays.append(pa.array(values, type=pa.string()))
        elif pa.types.is_fixed_size_list(field.type):
            width = field.type.list_size
            flat = _stack_column(df[name], width).reshape(-1)
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float32()), width))
        else:
            arrays.append(pa.array(df[name].to_numpy(), type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _stack_column(col: "pd.Series", width: int) -> np.ndarray:
    if len(col) == 0:
        return np.zeros((0, width), np.float32)
    return np.stack([np.asarray(v, dtype=np.float32).reshape(width) for v in col])


def assemble_frames(
    index: list[int],
    times: list[float],
    has_face: list[bool],
    lms: np.ndarray,
    bss: np.ndarray,
    poses: np.ndarray,
    bboxes: np.ndarray,
) -> "pd.DataFrame":
    """The frames DataFrame (columns :func:`frame_columns`, no ``clip_id``) from per-frame arrays:
    ``index`` / ``times`` / ``has_face`` (n,), ``lms`` (n, 1434), ``bss`` (n, 52), ``poses`` (n, 7)
    in :data:`FRAME_SCALAR_FLOAT_COLUMNS` order, ``bboxes`` (n, 4); AUs computed from ``bss``."""
    import pandas as pd

    aus = au_from_blendshapes(bss)
    data: dict[str, Any] = {
        "frame": np.asarray(index, dtype=np.int32),
        "t": np.asarray(times, dtype=np.float64),
        "face": np.asarray(has_face, dtype=bool),
        "bbox": list(bboxes),
    }
    for j, name in enumerate(FRAME_SCALAR_FLOAT_COLUMNS):
        data[name] = poses[:, j].astype(np.float32)
    data["landmarks"] = list(lms)
    data["blendshapes"] = list(bss)
    for j, name in enumerate(AU_NAMES):
        data[name] = aus[:, j]
    sided = sided_au_from_blendshapes(bss)
    for j, name in enumerate(SIDED_AU_NAMES):
        data[name] = sided[:, j]
    return pd.DataFrame(data, columns=frame_columns())
