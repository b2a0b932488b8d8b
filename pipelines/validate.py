"""``lesbench validate OUT``: check a prepared data set against its contract (docs/design.md).

Checks, in order: ``dataset.json`` (readable, format version, fps/sample rate); ``clips.parquet``
(schema, one row per clip_id, known statuses and splits, a reason for every non-ok clip, counts
matching ``dataset.json``); per clip, the files its status promises (and none it does not):
frames (schema, one row per frame numbered 0..n-1 at ``t = frame / fps``, ``n_frames`` within 1
of ``duration_s * fps``, face flag consistent with NaNs, ``face_ratio``, AUs in [0, 1]), audio
(one row per video frame, same frame numbers, feature widths, finite values), crops (size, fps,
frame count, audio track when the clip has audio), coefficients (one row per frame); every
output by content against the sha256 in its done-record (damage that keeps a file's size is
invisible to the checks above); the labels (speaker, view, emotion, level, sentence, split)
against the clip id, the source paths and the data set's split rule; the face model (readable,
sha256 as ``dataset.json`` records it); no orphan files and no temp files left by an
interrupted run. The label checks live in :mod:`lesbench.pipelines.validate_labels`.

Paths come from :class:`~lesbench.prepared.PreparedDataset` (the layout ``dataset.json`` records,
or this lesbench's when that file cannot be read, which is itself reported).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lesbench import io, schema
from lesbench.atomic import is_temp_name
from lesbench.errors import DatasetError, MediaError
from lesbench.pipelines import manifest as mf
from lesbench.extract.frames_table import frames_schema
from lesbench.pipelines.prepare_config import FACE_STATUSES
from lesbench.pipelines.validate_labels import LabelRule
from lesbench.prepared import CLIP_KINDS, PreparedDataset

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

#: Which outputs each status promises.
PROMISES: dict[str, tuple[str, ...]] = {
    "ok": ("frames", "audio", "crops", "coeffs"),
    "no_audio": ("frames", "crops", "coeffs"),
    "silent_audio": ("frames", "audio", "crops", "coeffs"),
    "no_face": ("frames",),  # audio too when the clip had audio: checked separately
    "failed": (),
}
AUDIO_WIDTHS = {"mel": 80, "mfcc": 39}


@dataclass
class ValidationReport:
    """Violations found (``path: problem`` strings, in check order) and what was checked."""

    out: Path
    violations: list[str] = field(default_factory=list)
    n_clips: int = 0
    n_files_checked: int = 0
    max_violations: int = 200

    @property
    def ok(self) -> bool:
        return not self.violations

    def add(self, where: Any, problem: str) -> None:
        if len(self.violations) < self.max_violations:
            self.violations.append(f"{where}: {problem}")

    def add_error(self, exc: DatasetError) -> None:
        """A reader's error, which already names its file."""
        if len(self.violations) < self.max_violations:
            self.violations.append(str(exc))

    def format(self, limit: int = 20) -> str:
        if self.ok:
            return (f"{self.out}: valid ({self.n_clips} clips, {self.n_files_checked} files checked)")
        lines = [f"{self.out}: {len(self.violations)}{'+' if len(self.violations) >= self.max_violations else ''} "
                 f"violation(s); first {min(limit, len(self.violations))}:"]
        lines += [f"  {v}" for v in self.violations[:limit]]
        return "\n".join(lines)


def validate(out: str | Path, check_crops: bool = True, max_violations: int = 200,
             check_content: bool = True) -> ValidationReport:
    """Validate a prepared data set; never raises for a broken one (see the report).

    ``check_crops=False`` skips opening the crop videos; ``check_content=False`` skips hashing
    the outputs against their done-records (it reads every byte of the data set)."""
    import pyarrow.parquet as pq

    out = Path(out)
    rep = ValidationReport(out, max_violations=max_violations)
    if not out.is_dir():
        rep.add(out, "not a folder")
        return rep
    try:
        data = PreparedDataset.with_layout(out, PreparedDataset(out).info)
    except (DatasetError, OSError):  # reported below, from the file itself
        data = PreparedDataset.with_layout(out)
    dataset_json, clips_path, model_path = data.info_path, data.path("clips"), data.path("face_model")

    # -- dataset.json: read as it is, to report what is wrong with it ------------------------
    info: dict[str, Any] = {}
    if not dataset_json.is_file():
        rep.add(dataset_json, "missing")
    else:
        try:
            info = json.loads(dataset_json.read_text())
        except (OSError, ValueError) as exc:
            rep.add(dataset_json, f"not valid JSON ({exc})")
    fps = float(info.get("fps") or schema.FPS)
    if info:
        version = str(info.get("format_version", ""))
        if version.split(".")[0] != schema.DATASET_FORMAT_VERSION.split(".")[0]:
            rep.add(dataset_json, f"format_version {version!r}, this lesbench reads "
                                      f"{schema.DATASET_FORMAT_VERSION}")
        for key in ("lesbench_version", "source_root", "config", "fps", "sample_rate", "extractors"):
            if key not in info:
                rep.add(dataset_json, f"missing key {key!r}")
        for ext in info.get("extractors", []):
            for w in ext.get("weights", []):
                if not w.get("sha256"):
                    rep.add(dataset_json, f"extractor {ext.get('name')!r}: weight {w.get('name')!r} has no sha256")

    # -- clips.parquet -----------------------------------------------------------------------
    if not clips_path.is_file():
        rep.add(clips_path, "missing")
        return rep
    try:
        table = pq.read_table(clips_path)
    except Exception as exc:  # noqa: BLE001 - any read failure is a violation
        rep.add(clips_path, f"unreadable ({type(exc).__name__}: {exc})")
        return rep
    want = mf.manifest_schema()
    missing = [f.name for f in want if f.name not in table.schema.names]
    if missing:
        rep.add(clips_path, f"missing column(s) {missing}")
        return rep
    for f in want:
        if table.schema.field(f.name).type != f.type:
            rep.add(clips_path, f"column {f.name!r} is {table.schema.field(f.name).type}, expected {f.type}")
    rows = table.to_pylist()
    rep.n_clips = len(rows)
    ids = [r["clip_id"] for r in rows]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        rep.add(clips_path, f"duplicate clip_id(s) {dup[:5]}")
    if ids != sorted(ids):
        rep.add(clips_path, "rows are not sorted by clip_id")
    counts = info.get("counts", {}) if info else {}
    if counts and counts.get("clips") != len(rows):
        rep.add(dataset_json, f"counts.clips = {counts.get('clips')} but clips.parquet has {len(rows)} rows")

    labels = LabelRule.from_info(info)
    done_dir = out / mf.STATE_DIR / mf.DONE_DIR
    if check_content and rows and not done_dir.is_dir():
        rep.add(done_dir, "missing: no output can be verified by content (copy the data set with its "
                          "hidden .lesbench folder, or re-run `lesbench prepare`)")
        check_content = False
    for r in rows:
        _check_row(rep, data, r, fps, info, check_crops)
        labels.check(rep, r)
        if check_content:
            _check_content(rep, data, r)

    # -- face model, orphans, temp files -------------------------------------------------------
    if any(r["status"] in FACE_STATUSES for r in rows):
        if not model_path.is_file():
            rep.add(model_path, "missing (clips with a face exist)")
        else:
            try:
                with np.load(model_path, allow_pickle=False) as z:
                    if not z.files:
                        rep.add(model_path, "empty archive")
            except Exception as exc:  # noqa: BLE001
                rep.add(model_path, f"unreadable ({type(exc).__name__}: {exc})")
            want = (info.get("face_model") or {}).get("sha256") if info else None
            if check_content and want and mf.sha256_file(model_path) != want:
                rep.add(model_path, "content differs from the sha256 dataset.json records: the file is "
                                    "damaged or was replaced")
    known = set(ids)
    for kind in CLIP_KINDS:
        folder = data.path(kind)
        if folder.is_dir():
            clip_of = {p: cid for cid, p in data.clip_files(kind)}
            for p in sorted(folder.iterdir()):
                if is_temp_name(p.name):
                    continue  # reported below
                cid = clip_of.get(p)
                if cid not in known:
                    rep.add(p, f"orphan file: no clip {cid if cid is not None else p.name!r} in clips.parquet")
    for p in mf.stale_temps(out):
        rep.add(p, "temporary file left by an interrupted run (re-run `lesbench prepare` to clean up)")
    return rep


def _check_row(rep: ValidationReport, data: PreparedDataset, r: dict[str, Any], fps: float, info: dict,
               check_crops: bool) -> None:
    cid = r["clip_id"]
    where = f"clips.parquet[{cid}]"
    status = r["status"]
    if status not in schema.CLIP_STATUSES:
        rep.add(where, f"unknown status {status!r}")
        return
    if r["split"] not in schema.SPLITS:
        rep.add(where, f"unknown split {r['split']!r}")
    if status != "ok" and not r["error"]:
        rep.add(where, f"status {status!r} without an error message")
    files = {kind: data.clip_file(kind, cid) for kind in CLIP_KINDS}
    promised = set(PROMISES[status])
    if status == "no_face" and r["audio_source"]:
        promised.add("audio")
    for kind, p in files.items():
        if kind in promised and not p.is_file():
            rep.add(p, f"missing (clip status {status!r})")
        elif kind not in promised and p.exists():
            rep.add(p, f"present although clip status is {status!r}")
    if status == "failed":
        return
    n = r["n_frames"]
    if n is None or n <= 0:
        rep.add(where, f"n_frames is {n}")
        return
    if r["duration_s"] is None or not math.isfinite(r["duration_s"]):
        rep.add(where, "duration_s missing")
    elif abs(n - r["duration_s"] * fps) > 1.0 + 1e-6:
        rep.add(where, f"n_frames {n} but duration_s {r['duration_s']:.3f} * {fps:g} fps = {r['duration_s'] * fps:.2f}")
    frame_numbers = None
    if files["frames"].is_file():
        frame_numbers = _check_frames(rep, data, cid, n, fps, r)
    if "audio" in promised and files["audio"].is_file():
        _check_audio(rep, data, cid, n, frame_numbers)
    if "coeffs" in promised and files["coeffs"].is_file():
        _check_coeffs(rep, data, cid, n)
    if check_crops and "crops" in promised and files["crops"].is_file():
        _check_crops(rep, files["crops"], n, fps, info, has_audio=bool(r["audio_source"]))


def _read(rep: ValidationReport, data: PreparedDataset, kind: str, cid: str,
          columns: list[str] | None = None) -> "pa.Table | None":
    rep.n_files_checked += 1
    try:
        return data.read_arrow(kind, cid, columns)
    except DatasetError as exc:
        rep.add_error(exc)
        return None


def _check_frames(rep: ValidationReport, data: PreparedDataset, cid: str, n: int, fps: float,
                  r: dict) -> np.ndarray | None:
    import pyarrow.parquet as pq

    path = data.clip_file("frames", cid)
    try:
        got = pq.read_schema(path)
    except Exception as exc:  # noqa: BLE001
        rep.add(path, f"unreadable ({type(exc).__name__}: {exc})")
        return None
    want = frames_schema(with_clip_id=True)
    for f in want:
        if f.name not in got.names:
            rep.add(path, f"missing column {f.name!r}")
        elif got.field(f.name).type != f.type:
            rep.add(path, f"column {f.name!r} is {got.field(f.name).type}, expected {f.type}")
    cols = ["clip_id", "frame", "t", "face", "yaw", *schema.AU_NAMES]
    if any(c not in got.names for c in cols):
        return None
    t = _read(rep, data, "frames", cid, cols)
    if t is None:
        return None
    if t.num_rows != n:
        rep.add(path, f"{t.num_rows} rows, clips.parquet says n_frames = {n}")
    ids = set(t.column("clip_id").to_pylist())
    if ids != {cid}:
        rep.add(path, f"clip_id column holds {sorted(ids)[:3]}, expected only {cid!r}")
    frame = t.column("frame").to_numpy()
    if not np.array_equal(frame, np.arange(len(frame))):
        rep.add(path, "frame numbers are not 0..n-1 in order")
    times = t.column("t").to_numpy()
    if len(times) and np.max(np.abs(times - frame / fps)) > 1e-6:
        rep.add(path, f"t differs from frame / {fps:g} by up to {np.max(np.abs(times - frame / fps)):.2e} s")
    face = t.column("face").to_numpy(zero_copy_only=False)
    yaw = t.column("yaw").to_numpy(zero_copy_only=False)
    if np.any(np.isnan(yaw[face])):
        rep.add(path, "NaN pose on frames flagged face=True")
    if np.any(~np.isnan(yaw[~face])):
        rep.add(path, "numbers on frames flagged face=False (expected NaN)")
    ratio = float(face.mean()) if len(face) else 0.0
    if r["face_ratio"] is None or abs(ratio - r["face_ratio"]) > 1e-4:
        rep.add(path, f"face ratio {ratio:.4f} but clips.parquet says {r['face_ratio']}")
    aus = np.stack([t.column(a).to_numpy(zero_copy_only=False) for a in schema.AU_NAMES], axis=1)
    valid = aus[face]
    if valid.size and (np.isnan(valid).any() or valid.min() < 0 or valid.max() > 1):
        rep.add(path, f"AU values outside [0, 1] or NaN on face frames (min {np.nanmin(valid):.3f}, max {np.nanmax(valid):.3f})")
    return frame


def _check_audio(rep: ValidationReport, data: PreparedDataset, cid: str, n: int,
                 frame_numbers: np.ndarray | None) -> None:
    path = data.clip_file("audio", cid)
    t = _read(rep, data, "audio", cid)
    if t is None:
        return
    for col in ("clip_id", "frame", "t", "mel", "mfcc", "energy"):
        if col not in t.schema.names:
            rep.add(path, f"missing column {col!r}")
            return
    if t.num_rows != n:
        rep.add(path, f"{t.num_rows} audio rows for {n} video frames (must be one per frame)")
    if frame_numbers is not None and t.num_rows == len(frame_numbers):
        if not np.array_equal(t.column("frame").to_numpy(), frame_numbers):
            rep.add(path, "audio frame numbers differ from the video frames'")
    for col, width in AUDIO_WIDTHS.items():
        typ = t.schema.field(col).type
        size = getattr(typ, "list_size", None)
        if size != width:
            rep.add(path, f"column {col!r} is {typ}, expected fixed_size_list<float32>[{width}]")
            continue
        vals = t.column(col).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        if not np.all(np.isfinite(vals)):
            rep.add(path, f"non-finite values in {col!r}")
    energy = t.column("energy").to_numpy(zero_copy_only=False)
    if not np.all(np.isfinite(energy)) or (energy.size and energy.min() < 0):
        rep.add(path, "energy must be finite and >= 0")


def _check_coeffs(rep: ValidationReport, data: PreparedDataset, cid: str, n: int) -> None:
    path = data.clip_file("coeffs", cid)
    t = _read(rep, data, "coeffs", cid)
    if t is None:
        return
    for col in ("clip_id", "frame", "id", "exp", *schema.POSE_NAMES):
        if col not in t.schema.names:
            rep.add(path, f"missing column {col!r}")
            return
    if t.num_rows != n:
        rep.add(path, f"{t.num_rows} rows for {n} frames")


def _check_crops(rep: ValidationReport, path: Path, n: int, fps: float, info: dict, has_audio: bool) -> None:
    rep.n_files_checked += 1
    try:
        m = io.probe(path)
    except MediaError as exc:
        rep.add(path, f"unreadable crop video ({exc.problem})")
        return
    size = int(info.get("crop_size") or schema.CROP_SIZE)
    if (m.width, m.height) != (size, size):
        rep.add(path, f"crop video is {m.width}x{m.height}, expected {size}x{size}")
    if abs(m.fps - fps) > 0.01:
        rep.add(path, f"crop video at {m.fps:g} fps, expected {fps:g}")
    if m.n_frames != n:
        rep.add(path, f"crop video has {m.n_frames} frames, the clip {n}")
    if has_audio and not m.has_audio:
        rep.add(path, "crop video has no audio track although the clip has audio")


def _check_content(rep: ValidationReport, data: PreparedDataset, r: dict[str, Any]) -> None:
    """Every output of the clip against the size and sha256 in its done-records; files the
    clip has that no record lists cannot be verified, which is a violation too."""
    cid, out = r["clip_id"], data.root
    covered: set[str] = set()
    for part in ("clip", "coeffs"):
        record = mf.read_done(out, cid, part)
        if record is None:
            if mf.done_path(out, cid, part).exists():
                rep.add(mf.done_path(out, cid, part), "unreadable done-record")
            continue
        if record.clip_id != cid:
            rep.add(mf.done_path(out, cid, part), f"done-record of clip {record.clip_id!r}, expected {cid!r}")
            continue
        for rel, problem in mf.verify_outputs(out, record):
            if (out / rel).exists():  # a missing promised file is reported by the file checks
                rep.add(out / rel, problem)
        covered.update(record.outputs)
    for kind in CLIP_KINDS:
        p = data.clip_file(kind, cid)
        rel = p.relative_to(out).as_posix()
        if rel not in covered and p.is_file():
            rep.n_files_checked += 1
            rep.add(p, "no done-record lists this file, so its content cannot be verified "
                       "(re-run `lesbench prepare` to redo the clip)")
