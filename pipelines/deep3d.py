"""Import Deep3DFaceRecon 257-d coefficients into lesbench's coeffs table (DESIGN §5).

For users who ran Deep3DFaceRecon (BFM-based; its weights and BFM need registration, so lesbench
cannot run it). One 257-d vector per frame::

    id 0:80 | exp 80:144 | tex 144:224 | angles 224:227 | gamma 227:254 | trans 254:257

Accepted files:

- ``.mat`` (scipy.io): a ``(T, 257)`` or ``(257,)`` array under ``coeff``, ``coeffs``,
  ``full_3dmm`` or ``coeff_3dmm`` (when 257 wide), or the split keys ``id``, ``exp``,
  ``tex``, ``angle``, ``gamma``, ``trans`` as Deep3DFaceRecon_pytorch's ``save_coeff`` writes;
- ``.npy``: a ``(T, 257)`` or ``(257,)`` array (``allow_pickle=False``);
- ``.txt`` / ``.csv``: one frame per line, 257 numbers separated by spaces or commas.

Pose: Deep3DFaceRecon's ``angles`` are radians about x, y, z of its camera frame (x right, y up,
z towards the camera, as lesbench's), composed as ``R = Rz @ Ry @ Rx``; lesbench re-expresses
``R`` as yaw/pitch/roll in degrees with its own convention
(:func:`lesbench.pipelines.face.euler_from_rotation`; for small angles yaw ~ angle_y,
pitch ~ -angle_x, roll ~ angle_z). ``tx, ty, tz`` = ``trans`` in BFM units. ``scale`` is 1.0:
Deep3DFaceRecon uses a fixed-focal perspective camera, so size is carried by ``tz``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lesbench.errors import LesbenchError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

#: Stage version of the importer.
VERSION = "1"

N_COEFFS = 257
SLICES: dict[str, slice] = {
    "id": slice(0, 80),
    "exp": slice(80, 144),
    "tex": slice(144, 224),
    "angle": slice(224, 227),
    "gamma": slice(227, 254),
    "trans": slice(254, 257),
}
_FULL_KEYS = ("coeff", "coeffs", "full_3dmm", "coeff_3dmm")


@dataclass(frozen=True)
class Deep3DCoefficients:
    """One clip's Deep3DFaceRecon coefficients, split (T frames, float32)."""

    id: np.ndarray  # (T, 80)
    exp: np.ndarray  # (T, 64)
    tex: np.ndarray  # (T, 80)
    angle: np.ndarray  # (T, 3) radians about x, y, z
    gamma: np.ndarray  # (T, 27) spherical-harmonics lighting
    trans: np.ndarray  # (T, 3)

    def __len__(self) -> int:
        return len(self.id)

    def pose(self) -> np.ndarray:
        """``(T, 7)`` yaw, pitch, roll (degrees, lesbench convention), tx, ty, tz, scale (1.0)."""
        out = np.empty((len(self), 7), dtype=np.float32)
        for i, (ax, ay, az) in enumerate(np.asarray(self.angle, dtype=np.float64)):
            out[i, :3] = _euler(deep3d_rotation(ax, ay, az))
        out[:, 3:6] = self.trans
        out[:, 6] = 1.0
        return out


def _euler(rot: np.ndarray) -> tuple[float, float, float]:
    from lesbench.pipelines.face import euler_from_rotation

    return euler_from_rotation(rot)


def deep3d_rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """Deep3DFaceRecon's rotation ``Rz(az) @ Ry(ay) @ Rx(ax)`` (radians), column-vector form."""
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def split_coefficients(coeffs: np.ndarray, source: str = "coefficients") -> Deep3DCoefficients:
    """Split a ``(T, 257)`` (or ``(257,)``) array."""
    arr = np.asarray(coeffs, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != N_COEFFS:
        raise LesbenchError(f"{source}: expected Deep3DFaceRecon coefficients of shape (T, 257), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise LesbenchError(f"{source}: coefficients contain NaN or infinity")
    return Deep3DCoefficients(**{name: arr[:, sl].copy() for name, sl in SLICES.items()})


def load_deep3d(path: str | Path) -> Deep3DCoefficients:
    """Read one clip's coefficient file (.mat, .npy, .txt/.csv); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise LesbenchError(f"{path}: Deep3DFaceRecon coefficient file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".mat":
            return _load_mat(path)
        if suffix == ".npy":
            return split_coefficients(np.load(path, allow_pickle=False), str(path))
        if suffix in (".txt", ".csv"):
            text = path.read_text().replace(",", " ")
            rows = [line.split() for line in text.splitlines() if line.strip()]
            return split_coefficients(np.array(rows, dtype=np.float64), str(path))
    except LesbenchError:
        raise
    except (OSError, ValueError) as exc:
        raise LesbenchError(f"{path}: unreadable Deep3DFaceRecon coefficients ({exc})") from exc
    raise LesbenchError(f"{path}: unsupported coefficient file type {suffix!r} (use .mat, .npy, .txt or .csv)")


def _load_mat(path: Path) -> Deep3DCoefficients:
    from scipy.io import loadmat

    data = loadmat(path)
    for key in _FULL_KEYS:
        if key in data and np.atleast_2d(data[key]).shape[-1] == N_COEFFS:
            return split_coefficients(np.atleast_2d(data[key]), f"{path} [{key}]")
    if all(k in data for k in SLICES):
        parts = []
        lengths = set()
        for name, sl in SLICES.items():
            part = np.atleast_2d(np.asarray(data[name], dtype=np.float32))
            width = sl.stop - sl.start
            if part.shape[-1] != width:
                raise LesbenchError(f"{path}: key {name!r} has width {part.shape[-1]}, expected {width}")
            parts.append(part)
            lengths.add(len(part))
        if len(lengths) != 1:
            raise LesbenchError(f"{path}: split coefficient keys have different frame counts {sorted(lengths)}")
        return split_coefficients(np.concatenate(parts, axis=1), str(path))
    keys = sorted(k for k in data if not k.startswith("__"))
    raise LesbenchError(
        f"{path}: no Deep3DFaceRecon coefficients found (looked for a 257-wide {'/'.join(_FULL_KEYS)} "
        f"or the keys {', '.join(SLICES)}; the file has {', '.join(keys) or 'no arrays'})"
    )


def deep3d_to_table(coeffs: Deep3DCoefficients, clip_id: str | None = None, include_extra: bool = False) -> "pa.Table":
    """Coeffs-table rows (``clip_id, frame, id[80], exp[64], yaw ... scale``); with
    ``include_extra`` also ``tex[80]`` and ``gamma[27]``."""
    import pyarrow as pa

    from lesbench.pipelines.face_model import Coefficients, coeffs_to_table

    # Deep3DFaceRecon estimates identity per frame; the coeffs table keeps one vector per row.
    table = coeffs_to_table(Coefficients(coeffs.id[0], coeffs.exp, coeffs.pose()), clip_id)
    ident = pa.FixedSizeListArray.from_arrays(pa.array(coeffs.id.reshape(-1), pa.float32()), 80)
    table = table.set_column(table.schema.get_field_index("id"), pa.field("id", pa.list_(pa.float32(), 80)), ident)
    if include_extra:
        for name, width in (("tex", 80), ("gamma", 27)):
            values = getattr(coeffs, name)
            table = table.append_column(
                pa.field(name, pa.list_(pa.float32(), width)),
                pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), width),
            )
    return table.replace_schema_metadata({"stage": "coeffs", "source": "deep3dfacerecon", "stage_version": VERSION})
