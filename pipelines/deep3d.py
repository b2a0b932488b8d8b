"""Import Deep3DFaceRecon 257-d coefficients into lesbench's coeffs table (docs/design.md).

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
(:func:`lesbench.extract.head_pose.euler_from_rotation`; for small angles yaw ~ angle_y,
pitch ~ -angle_x, roll ~ angle_z). ``tx, ty, tz`` = ``trans`` in BFM units. ``scale`` is 1.0:
Deep3DFaceRecon uses a fixed-focal perspective camera, so size is carried by ``tz``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lesbench.atomic import write_parquet, write_text
from lesbench.errors import DatasetError, LesbenchError
from lesbench.extract.coeffs_table import coeffs_to_table
from lesbench.extract.face_model import Coefficients
from lesbench.extract.head_pose import euler_from_rotation
from lesbench.pipelines.prepare_config import FACE_STATUSES
from lesbench.prepared import PreparedDataset

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


# ---------------------------------------------------------------------------------------------
# Importing a folder of Deep3DFaceRecon outputs into a prepared data set
# ---------------------------------------------------------------------------------------------

#: File types :func:`load_deep3d` reads.
SUFFIXES = (".mat", ".npy", ".txt", ".csv")
#: Default output folder inside the prepared data set, and its record file.
IMPORT_DIR = "coeffs_deep3d"
IMPORT_RECORD = "import.json"
#: Where each clip's imported coefficients go inside the import folder.
IMPORT_FILE = "{clip_id}.parquet"


@dataclass
class ImportReport:
    """What :func:`import_deep3d` did.

    ``written``: clip_id -> {"files": source files (relative to SRC), "rows": coefficient rows,
    "n_frames": the prepared clip's frame count}; ``unmatched``: (path, reason) for files that
    map to no clip, are duplicates or could not be read; ``missing``: prepared clips (with a face
    track) that got no coefficients; ``mismatched``: clips whose row count differs from their
    frame count (written anyway, frame = row index).
    """

    src: Path
    out: Path
    written: dict[str, dict]
    unmatched: list[tuple[str, str]]
    missing: list[str]
    mismatched: list[str]

    def to_dict(self) -> dict:
        return {"tool": "deep3dfacerecon", "importer_version": VERSION, "source": str(self.src),
                "out": str(self.out), "n_written": len(self.written), "written": self.written,
                "unmatched": [{"path": p, "reason": r} for p, r in self.unmatched],
                "missing": self.missing, "mismatched": self.mismatched}

    def format(self, limit: int = 10) -> str:
        lines = [f"imported Deep3DFaceRecon coefficients of {len(self.written)} clip(s) from {self.src} "
                 f"into {self.out}"]
        if self.mismatched:
            lines.append(f"  {len(self.mismatched)} clip(s) with a row count other than their frame count "
                         f"(frame = row index): {', '.join(self.mismatched[:limit])}")
        if self.missing:
            lines.append(f"  {len(self.missing)} prepared clip(s) without coefficients: "
                         f"{', '.join(self.missing[:limit])}{' ...' if len(self.missing) > limit else ''}")
        if self.unmatched:
            lines.append(f"  {len(self.unmatched)} file(s) not imported:")
            lines += [f"    {p}: {r}" for p, r in self.unmatched[:limit]]
            if len(self.unmatched) > limit:
                lines.append(f"    ... and {len(self.unmatched) - limit} more (see {IMPORT_RECORD})")
        return "\n".join(lines)


def _clip_keys(data: Path) -> tuple[dict[str, str], dict[tuple[str, ...], str], dict[str, int]]:
    """(clip_id -> clip_id, video path parts without suffix relative to the source root ->
    clip_id, clip_id -> n_frames) for the prepared clips with a face track."""
    import pandas as pd

    prepared = PreparedDataset(data)
    clips = prepared.clips(statuses=FACE_STATUSES, required=("clip_id", "video_path", "status", "n_frames"))
    try:
        root = prepared.info.source_root if prepared.info is not None else None
    except DatasetError:  # an unreadable dataset.json: match by clip names and path tails only
        root = None
    root = root or None
    by_id = {str(c): str(c) for c in clips["clip_id"]}
    by_rel: dict[tuple[str, ...], str] = {}
    for cid, video in zip(clips["clip_id"], clips["video_path"]):
        p = Path(str(video))
        try:
            rel = p.relative_to(root) if root else p
        except ValueError:
            rel = p
        # without a source root to strip: the last 6 parts (MEAD's speaker/video/view/emotion/level/nnn)
        key = rel.with_suffix("").parts[-6:] if rel.is_absolute() else rel.with_suffix("").parts
        by_rel[key] = str(cid)
    n_frames = {str(c): int(n) if pd.notna(n) else 0 for c, n in zip(clips["clip_id"], clips["n_frames"])}
    return by_id, by_rel, n_frames


def _match(parts: tuple[str, ...], by_id: dict[str, str], by_rel: dict[tuple[str, ...], str]) -> str | None:
    """Clip id of a path (parts, suffix removed): its name is a clip id, or it ends with a clip's
    video path relative to the source root (MEAD: ``W009/video/front/happy/level_3/001``)."""
    if parts and parts[-1] in by_id:
        return by_id[parts[-1]]
    for k in range(min(len(parts), 8), 0, -1):
        if parts[-k:] in by_rel:
            return by_rel[parts[-k:]]
    return None


def import_deep3d(src: str | Path, data: str | Path, out: str | Path | None = None,
                  include_extra: bool = False) -> ImportReport:
    """Import a folder of Deep3DFaceRecon coefficient files into a prepared data set.

    Files (``.mat``/``.npy``/``.txt``/``.csv``, found recursively under ``src``) are matched
    to clips of ``data/clips.parquet`` by their name (stem == clip_id) or by their path
    (ending with the clip's video path relative to the source root, suffix removed, as when
    Deep3DFaceRecon's outputs mirror the MEAD tree). A file that matches no clip but whose
    folder does is one frame of that clip (Deep3DFaceRecon writes one ``.mat`` per image):
    such files are stacked in name order. Each clip is written to
    ``out/{clip_id}.parquet`` (default ``data/coeffs_deep3d``; :func:`deep3d_to_table`, so
    ``id`` (80), ``exp`` (64) and pose; ``tex``/``gamma`` too with ``include_extra``), with
    ``frame`` = row index. ``out/import.json`` records every clip written and every file not
    used (with why), and ``data/dataset.json`` gets an ``imports.coeffs_deep3d`` entry.
    One unreadable file never stops the import; when no file matches any clip, nothing is
    written and :class:`~lesbench.errors.DatasetError` says so.

    Returns:
        :class:`ImportReport`.
    """
    src, data = Path(src), Path(data)
    if not src.exists():
        raise DatasetError(f"{src}: Deep3DFaceRecon output folder not found")
    by_id, by_rel, n_frames = _clip_keys(data)
    out = Path(out) if out is not None else data / IMPORT_DIR
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                                               and not p.name.startswith("."))
    base = src.parent if src.is_file() else src

    def rel(p: Path) -> str:
        return p.relative_to(base).as_posix()

    groups: dict[str, list[Path]] = {}
    unmatched: list[tuple[str, str]] = []
    for p in files:
        parts = p.resolve().with_suffix("").parts
        cid = _match(parts, by_id, by_rel)
        if cid is not None:
            if cid in groups:
                unmatched.append((rel(p), f"clip {cid} already has coefficients from {rel(groups[cid][0])}"))
                continue
            groups[cid] = [p]
            continue
        cid = _match(parts[:-1], by_id, by_rel)  # per-frame file inside a folder named for a clip
        if cid is not None:
            groups.setdefault(f"{cid}\0frames", []).append(p)
        else:
            unmatched.append((rel(p), "matches no prepared clip (by name or by its MEAD path)"))
    for key in sorted(k for k in groups if k.endswith("\0frames")):
        cid = key.split("\0")[0]
        per_frame = groups.pop(key)
        if cid in groups:
            unmatched += [(rel(p), f"clip {cid} already has coefficients from {rel(groups[cid][0])}") for p in per_frame]
        else:
            groups[cid] = per_frame

    if not groups:
        first = "; ".join(f"{p}: {r}" for p, r in unmatched[:3])
        raise DatasetError(f"{src}: no coefficient file ({', '.join(SUFFIXES)}) matches a clip of {data}"
                           + (f" ({len(unmatched)} file(s) found, e.g. {first})" if unmatched else " (none found)"))
    written: dict[str, dict] = {}
    mismatched = []
    for cid in sorted(groups):
        paths = groups[cid]
        try:
            parts = [load_deep3d(p) for p in paths]
        except LesbenchError as exc:
            unmatched.append((rel(paths[0]) if len(paths) == 1 else f"{rel(paths[0].parent)}/",
                              f"unreadable: {exc}"))
            continue
        arr = np.concatenate([np.concatenate([getattr(c, n) for n in SLICES], axis=1) for c in parts])
        coeffs = split_coefficients(arr, rel(paths[0]))
        write_parquet(deep3d_to_table(coeffs, cid, include_extra=include_extra), out / IMPORT_FILE.format(clip_id=cid))
        written[cid] = {"files": [rel(p) for p in paths], "rows": len(coeffs), "n_frames": n_frames[cid]}
        if len(coeffs) != n_frames[cid]:
            mismatched.append(cid)
    record_path = out / IMPORT_RECORD
    prefix, _, suffix = IMPORT_FILE.partition("{clip_id}")
    for stale in out.glob(f"{prefix}*{suffix}"):  # clips of an earlier import into this folder, gone now
        if stale.name[len(prefix): len(stale.name) - len(suffix)] not in written:
            stale.unlink()
    report = ImportReport(src=src, out=out, written=written, unmatched=unmatched,
                          missing=sorted(set(n_frames) - set(written)), mismatched=mismatched)
    write_text(record_path, json.dumps(report.to_dict(), indent=2) + "\n")
    prepared = PreparedDataset(data)
    info = prepared.info  # raises DatasetError naming dataset.json when it cannot be read
    if info is not None:
        try:
            where = out.resolve().relative_to(data.resolve()).as_posix()
        except ValueError:
            where = str(out.resolve())
        if info.present is not None and "imports" not in info.present:
            info.present = (*info.present, "imports")
        info.imports = {**(info.imports or {}), "coeffs_deep3d": {
            "tool": "deep3dfacerecon", "importer_version": VERSION, "source": str(src.resolve()),
            "files": f"{where}/{IMPORT_FILE}", "record": f"{where}/{IMPORT_RECORD}",
            "n_clips": len(written), "n_unmatched": len(unmatched),
            "columns": "clip_id, frame, id[80], exp[64], yaw, pitch, roll (deg), tx, ty, tz (BFM units), "
                       "scale (1.0)" + (", tex[80], gamma[27]" if include_extra else ""),
        }}
        prepared.write_info(info)
    return report
