"""``lesbench score``: run registered metrics on generated videos (and references) under a protocol.

    report = score("gen/", ref="mead/", metrics=["lmd", "sync", "au"], protocol="mead-v1")
    print(report.table())
    report.write_json("scores.json")

Inputs (PRED and REF alike):

- a **MEAD-layout tree** (``M003/video/front/angry/level_3/001.mp4``): clips keyed by
  ``clip_id`` (``M003_front_angry_3_001``), emotion and level from the path
  (``lesbench.pipelines.mead``);
- a **prepared data set** (``dataset.json`` present): the aligned ``crops/{clip_id}.mp4`` with
  their muxed audio, emotion/level from ``clips.parquet``;
- any other **folder of videos**: clips keyed by relative path without suffix; an emotion
  name (``angry``...) or ``level_N`` among the path parts is picked up; a file named like a
  MEAD clip id (``M003_front_angry_3_001.mp4``) is keyed by that id, so a flat folder of
  generated videos pairs with a MEAD reference tree.

PRED and REF clips pair by key, or by the clip id both keys name (an EAT-style file
``W009_con_3_028.mp4`` pairs with the MEAD clip ``W009_front_contempt_3_028``); clips only in
PRED are scored by the metrics that need no reference and listed. A clip list (``clips``, or
the protocol's ``clip_list``) and the protocol's ``test_clips.filter_speakers`` select the
clips scored; every clip left out is listed with the reason.

Frames: a metric that reads both videos gets *paired* frames — the protocol's pairing
(``linspace``: ``m = min`` of the two lengths, evenly spaced in the longer clip), then its
frame sampling of those pairs — so clips of different lengths are scored, never dropped.
Values that cannot be computed (PSNR of identical frames, frames or clips without a face) follow
the protocol's rule and are counted in :attr:`MetricResult.counts` / ``skipped``; counts are
sums, never averaged or given a confidence interval.

Each video is decoded and face-tracked ONCE (one MediaPipe tracker per process) and the result
is shared by every metric. With ``workers``/``scheduler`` clips are scored on Dask workers, each
with its own tracker and metric models made once; outcomes are merged in clip order and FID/KID
get every clip's features at the end, so the report does not depend on the number of workers
(docs/scoring-at-scale.md). A clip without an audio stream, without a
face, or that cannot be decoded is reported per clip with the reason; it never stops the run.
A metric that cannot run here (weights or package missing) is listed as unavailable with the
reason, whether it finds out when constructed or only in ``update``/``compute`` (it is then
skipped for the remaining clips; the other metrics go on). With ``cache_dir`` the reference
clips' face tables and Inception features are cached on disk (:class:`FeatureCache`).
Aggregates are means over clips (protocol ``aggregate: clips``) or over all frames of all clips
pooled (``aggregate: frames``), with a seeded percentile bootstrap CI that resamples clips.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from lesbench.errors import DatasetError, LesbenchError, MediaError
from lesbench.metrics.base import Metric, MetricResult, MetricUnavailable
from lesbench.metrics.protocol import Protocol, canonical_clip_id, load_protocol, read_clip_list
from lesbench.threads import torch_threads

log = logging.getLogger(__name__)

#: Metrics run when none are named (names not registered are reported as such).
DEFAULT_METRICS: tuple[str, ...] = ("fid", "psnr", "ssim", "lpips", "csim", "lmd", "sync", "lse", "au", "emotion")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
#: Inputs that need a reference clip.
REF_INPUTS = frozenset({"ref_video", "ref_face", "target_aus", "source", "ref_size"})


# --------------------------------------------------------------------------------------------
# Discovering clips
# --------------------------------------------------------------------------------------------


@dataclass
class ClipEntry:
    """One video found under PRED or REF: ``key`` pairs PRED with REF."""

    key: str
    video: Path
    audio: Path | None = None
    emotion: str | None = None
    level: int | None = None
    speaker: str | None = None


def discover(root: str | Path | dict[str, str | Path]) -> dict[str, ClipEntry]:
    """Clips under ``root`` keyed for pairing (see the module docstring); a ``{key: video}``
    mapping is taken as it is.

    Raises:
        DatasetError: ``root`` is missing or holds no video.
    """
    if isinstance(root, dict):
        out = {}
        for key, video in root.items():
            emotion, level = _parse_path_parts(Path(str(key)).parts)
            out[str(key)] = ClipEntry(str(key), Path(video), None, emotion, level)
        return out
    root = Path(root).expanduser()
    if root.is_file():
        return {root.stem: ClipEntry(root.stem, root)}
    if not root.is_dir():
        raise DatasetError(f"{root}: no such file or folder")
    if (root / "dataset.json").is_file():
        return _discover_prepared(root)
    entries = _discover_mead(root)
    if entries:
        return entries
    entries = _discover_folder(root)
    if not entries:
        raise DatasetError(f"{root}: no video files ({', '.join(VIDEO_SUFFIXES)}) found")
    return entries


def _discover_prepared(root: Path) -> dict[str, ClipEntry]:
    import pandas as pd

    crops = root / "crops"
    rows: dict[str, dict] = {}
    clips_file = root / "clips.parquet"
    if clips_file.is_file():
        for row in pd.read_parquet(clips_file).to_dict("records"):
            rows[str(row["clip_id"])] = row
    out: dict[str, ClipEntry] = {}
    for video in sorted(crops.glob("*.mp4")):
        row = rows.get(video.stem, {})
        level = row.get("level")
        out[video.stem] = ClipEntry(video.stem, video, None, row.get("emotion"),
                                    None if level is None or (isinstance(level, float) and math.isnan(level)) else int(level),
                                    row.get("speaker"))
    if not out:
        raise DatasetError(f"{root}: prepared data set without crops/*.mp4")
    return out


def _discover_mead(root: Path) -> dict[str, ClipEntry]:
    try:
        from lesbench.pipelines.mead import MeadDataset
        from lesbench.schema import VIEWS

        clips = MeadDataset(root, views=VIEWS).clips()
    except (ImportError, DatasetError):
        return {}
    return {c.clip_id: ClipEntry(c.clip_id, Path(c.video_path), Path(c.audio_path) if c.audio_path else None,
                                 c.emotion, c.level, c.speaker) for c in clips}


def _parse_path_parts(parts: Sequence[str]) -> tuple[str | None, int | None]:
    try:
        from lesbench.pipelines.mead import normalise_emotion, parse_level
    except ImportError:  # pragma: no cover - the reader ships with lesbench
        return None, None
    emotion = level = None
    for part in parts:
        emotion = normalise_emotion(part) or emotion
        lv = parse_level(part)
        level = lv if lv is not None else level
    return emotion, level


def _discover_folder(root: Path) -> dict[str, ClipEntry]:
    from lesbench.schema import EMOTIONS

    out: dict[str, ClipEntry] = {}
    for video in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES):
        rel = video.relative_to(root).with_suffix("")
        key = rel.as_posix()
        emotion, level = _parse_path_parts(rel.parts[:-1])
        speaker = None
        bits = video.stem.split("_")
        # a MEAD clip id as file name: {speaker}_{view...}_{emotion}_{level}_{sentence}
        if len(bits) >= 5 and bits[-3] in EMOTIONS and bits[-2].isdigit():
            key, emotion, level, speaker = video.stem, bits[-3], int(bits[-2]), bits[0]
        out[key] = ClipEntry(key, video, None, emotion, level, speaker)
    return out


# --------------------------------------------------------------------------------------------
# Per-video data, decoded and tracked once
# --------------------------------------------------------------------------------------------


@dataclass
class VideoData:
    """Frames, audio and face table of one video (each loaded on first use, then kept)."""

    entry: ClipEntry
    protocol: Protocol
    tracker_factory: Any
    #: Where this video's face table is cached across runs (reference clips only; None: no cache).
    cache: "FeatureCache | None" = None
    _frames: np.ndarray | None = None
    _audio: np.ndarray | None = None
    _audio_error: str | None = None
    _audio_done: bool = False
    _face: Any = None

    @property
    def frames(self) -> np.ndarray:
        if self._frames is None:
            from lesbench import io

            self._frames = io.read_frames(self.entry.video, fps=self.protocol.fps)
        return self._frames

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    @property
    def audio(self) -> np.ndarray | None:
        """16 kHz mono float32, or None (reason in :attr:`audio_error`)."""
        if not self._audio_done:
            from lesbench import io

            self._audio_done = True
            try:
                self._audio = io.read_audio_for_video(self.entry.video, self.entry.audio, sr=self.protocol.sample_rate)
                if self._audio.size == 0 or not np.any(self._audio):
                    self._audio, self._audio_error = None, "silent audio"
            except MediaError as exc:
                self._audio_error = "no audio stream" if exc.kind == "no_audio_stream" else f"audio unreadable: {exc.problem}"
        return self._audio

    @property
    def audio_error(self) -> str | None:
        _ = self.audio
        return self._audio_error

    @property
    def face(self) -> Any:
        """Frames table (``lesbench.extract.face`` columns) of :attr:`frames`."""
        if self._face is None:
            def track() -> Any:
                return self.tracker_factory().track(self.frames, fps=self.protocol.fps, analysis_size=640)

            self._face = self.cache.face(self.entry.video, self.protocol, track) if self.cache else track()
        return self._face

    @property
    def face_ratio(self) -> float:
        f = np.asarray(self.face["face"], bool)
        return float(f.mean()) if len(f) else 0.0


class FeatureCache:
    """On-disk cache of what reference clips cost to compute: their face tables (MediaPipe) and
    Inception features, so that scoring several methods against the same reference clips
    (``lesbench evaluate``) tracks and embeds each reference clip once.

    Entries are keyed by the file (resolved path, size, mtime) and everything that changes the
    result (frame rate, face-stage version, analysis size; Inception weights sha256 and the frame
    indices); writes are atomic (a temporary file per writer, then a rename), so several Dask
    workers can share one cache. Only reference clips are cached: generated clips change.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @staticmethod
    def _key(path: Path, *parts: Any) -> str:
        import hashlib

        st = Path(path).stat()
        text = "|".join([str(Path(path).resolve()), str(st.st_size), str(st.st_mtime_ns), *map(str, parts)])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def face(self, video: Path, protocol: Protocol, compute: Any) -> Any:
        """The face table of ``video`` (``compute()`` on a miss; cached as Parquet)."""
        import pandas as pd

        from lesbench.extract.frames_table import VERSION as FACE_VERSION

        path = self.root / "face" / f"{self._key(video, protocol.fps, FACE_VERSION, 640)}.parquet"
        if path.is_file():
            try:
                return pd.read_parquet(path)
            except Exception as exc:  # noqa: BLE001 - a damaged cache entry is recomputed
                log.warning("%s: unreadable cache entry (%s); recomputing", path, exc)
        table = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _unique_tmp(path)
        table.to_parquet(tmp)
        tmp.replace(path)
        return table

    def inception(self, video: Path, indices: np.ndarray, weights_sha: str, compute: Any) -> np.ndarray:
        """(N, 2048) float64 Inception features of ``video``'s frames ``indices``."""
        import hashlib

        idx = hashlib.sha256(np.asarray(indices, np.int64).tobytes()).hexdigest()[:16]
        path = self.root / "inception" / f"{self._key(video, weights_sha, idx)}.npy"
        if path.is_file():
            try:
                return np.load(path)
            except Exception as exc:  # noqa: BLE001
                log.warning("%s: unreadable cache entry (%s); recomputing", path, exc)
        feats = np.asarray(compute(), np.float64)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _unique_tmp(path)
        with open(tmp, "wb") as f:
            np.save(f, feats)
        tmp.replace(path)
        return feats


def _unique_tmp(path: Path) -> Path:
    """A temporary name beside ``path`` that no other process or worker writes to at the same
    time (workers may compute the same cache entry at once; the last rename wins, whole)."""
    return path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}.tmp")


class _TrackerPool:
    """One FaceTracker for the whole run, created on first use."""

    def __init__(self) -> None:
        self.tracker = None

    def __call__(self) -> Any:
        if self.tracker is None:
            from lesbench.extract.face import FaceTracker

            self.tracker = FaceTracker()
        return self.tracker

    def close(self) -> None:
        if self.tracker is not None:
            self.tracker.close()
            self.tracker = None


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@dataclass
class ClipStatus:
    key: str
    pred: str
    ref: str | None
    emotion: str | None = None
    level: int | None = None
    n_frames: int | None = None
    #: reference frames, and frame pairs the paired metrics read (protocol pairing)
    n_ref_frames: int | None = None
    n_paired: int | None = None
    has_audio: bool | None = None
    face_ratio: float | None = None
    issues: list[str] = field(default_factory=list)


@dataclass
class ScoreReport:
    """Everything a score run produced (``as_dict`` is the JSON written by ``--json``)."""

    protocol: dict[str, Any]
    pred: str
    ref: str | None
    metrics: dict[str, MetricResult]
    clips: list[ClipStatus]
    weights: dict[str, str]
    lesbench_version: str
    seconds: float
    unpaired: list[str] = field(default_factory=list)
    #: clips found under PRED but not scored (clip list, speaker filter): key -> reason
    excluded: dict[str, str] = field(default_factory=dict)
    #: the clip list used: path, sha256, listed, missing (listed clips without a video)
    clip_list: dict[str, Any] | None = None

    @property
    def results(self) -> dict[str, MetricResult]:
        """Alias of :attr:`metrics` (what ``lesbench.evaluation`` reads)."""
        return self.metrics

    def as_dict(self) -> dict[str, Any]:
        from lesbench.records import json_safe as clean

        return clean({
            "lesbench_version": self.lesbench_version,
            "protocol": self.protocol,
            "pred": self.pred,
            "ref": self.ref,
            "weights": self.weights,
            "metrics": {k: asdict(m) for k, m in self.metrics.items()},
            "clips": [asdict(c) for c in self.clips],
            "unpaired": self.unpaired,
            "excluded": self.excluded,
            "clip_list": self.clip_list,
            "seconds": self.seconds,
        })

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2, sort_keys=False), encoding="utf-8")
        tmp.replace(path)
        return path

    def table(self) -> str:
        """Readable summary: one line per metric value, then unavailable metrics and clip issues."""
        lines = [f"protocol {self.protocol.get('id')}  pred {self.pred}  ref {self.ref or '-'}  "
                 f"clips {len(self.clips)}", ""]
        head = f"{'metric':<28}{'value':>12}  {'95% CI':<22}{'n':>5}  {'better':<7}version"
        lines += [head, "-" * len(head)]
        for name, m in self.metrics.items():
            if m.unavailable is not None:
                continue
            values = m.value if isinstance(m.value, dict) else {name: m.value}
            cis = m.ci95 if isinstance(m.ci95, dict) else {}
            n = m.counts.get("n_clips", "-")
            for key, val in values.items():
                if not isinstance(val, (int, float)):
                    continue
                ci = cis.get(key) if isinstance(m.value, dict) else m.ci95
                ci_s = f"[{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""
                label = name if key == name else f"{name}.{key}"
                better = {True: "higher", False: "lower", None: "-"}[_better(name, key, m.higher_is_better)]
                lines.append(f"{label:<28}{val:>12.4g}  {ci_s:<22}{n!s:>5}  {better:<7}{m.version}")
        counted = [(k, m) for k, m in self.metrics.items() if m.unavailable is None and (m.counts or m.skipped)]
        if counted:
            lines += ["", "counts (sums over clips; not averaged):"]
            for k, m in counted:
                text = "  ".join(f"{c}={v}" for c, v in m.counts.items())
                if m.skipped:
                    text += "  skipped: " + "; ".join(f"{why} ({v})" for why, v in m.skipped.items())
                lines.append(f"  {k:<26}{text}")
        missing = {k: m for k, m in self.metrics.items() if m.unavailable is not None}
        if missing:
            lines += ["", "unavailable:"] + [f"  {k}: {m.unavailable}" for k, m in missing.items()]
        issues = [c for c in self.clips if c.issues]
        if issues:
            lines += ["", "clip issues:"] + [f"  {c.key}: {'; '.join(c.issues)}" for c in issues]
        if self.unpaired:
            lines += ["", f"not paired with a reference: {len(self.unpaired)} clip(s)"]
        if self.excluded:
            reasons: dict[str, int] = {}
            for why in self.excluded.values():
                reasons[why] = reasons.get(why, 0) + 1
            lines += ["", f"not scored: {len(self.excluded)} clip(s): "
                      + "; ".join(f"{why} ({v})" for why, v in reasons.items())]
        if self.clip_list and self.clip_list.get("missing"):
            lines += [f"listed in {self.clip_list['path']} without a generated video: "
                      f"{len(self.clip_list['missing'])} clip(s)"]
        return "\n".join(lines)


def _better(name: str, key: str, default: bool | None) -> bool | None:
    lower = {"lse_d", "m_lmd", "f_lmd", "m_lvd", "f_lvd", "mae", "abs_offset", "fid", "kid", "lpips"}
    higher = {"lse_c", "confidence", "confidence_z", "confidence_pct", "accuracy", "f1", "pearson", "spearman", "r2"}
    if key in lower:
        return False
    if key in higher:
        return True
    if key == "offset" or key.startswith("n_"):
        return None
    return default


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def bootstrap_ci(values: Sequence[float], n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap CI of the mean over clips (seeded); None with fewer than 2 values."""
    x = [v for v in values if v is not None and np.isfinite(v)]
    return bootstrap_ci_weighted(x, [1.0] * len(x), n, seed, level)


def bootstrap_ci_weighted(values: Sequence[float], weights: Sequence[float], n: int = 1000, seed: int = 0,
                          level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap CI of a pooled mean ``sum(v w) / sum(w)`` (clip means ``v`` over
    ``w`` frames each), resampling clips (seeded); None with fewer than 2 clips."""
    v = np.asarray(values, np.float64)
    w = np.asarray(weights, np.float64)
    keep = np.isfinite(v) & (w > 0)
    v, w = v[keep], w[keep]
    if len(v) < 2:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n, len(v)))
    means = (v[idx] * w[idx]).sum(axis=1) / w[idx].sum(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def _split_counts(value: Any) -> tuple[Any, dict[str, int]]:
    """``(value without its n_* entries, those entries as int counts)`` (counts are summed,
    never averaged)."""
    if not isinstance(value, dict):
        return value, {}
    counts = {k: int(v) for k, v in value.items() if k.startswith("n_") and isinstance(v, (int, float, np.number))
              and np.isfinite(v)}
    return {k: v for k, v in value.items() if not k.startswith("n_")}, counts


def _scalars(value: Any) -> dict[str, float]:
    if isinstance(value, dict):
        return {k: float(v) for k, v in value.items() if isinstance(v, (int, float, np.floating, np.integer))
                and not isinstance(v, bool)}
    return {"": float(value)}


def _weights_sha(names: Iterable[str]) -> dict[str, str]:
    from lesbench.weights import file_sha256, resolve as resolve_weight

    out = {}
    for name in names:
        try:
            out[name] = file_sha256(resolve_weight(name))
        except Exception as exc:  # noqa: BLE001 - recorded, not fatal
            out[name] = f"unresolved: {exc}"
    return out


def _metric_weights(m: Metric) -> dict[str, str]:
    """Weight name -> sha256 of what metric instance ``m`` uses: the weights of the classifier it
    loaded when its ``describe()`` names one (EmotionAccuracy with a ``train-classifier`` file
    records that file, not the FER2013 default), else its class's weight names resolved."""
    try:
        clf = m.describe().get("classifier")
    except Exception:  # noqa: BLE001 - provenance only; fall back to the class's weight names
        clf = None
    if isinstance(clf, dict) and isinstance(clf.get("weights"), dict) and clf["weights"]:
        return {str(k): str(v) for k, v in clf["weights"].items()}
    return _weights_sha(m.weights)


def resolve_device(device: str | None) -> str | None:
    """``auto``/None -> None (each network picks CUDA when present, else CPU; resolved where it
    runs, so a worker with a GPU uses it), ``cpu``/``cuda``/``cuda:N`` as given.

    Raises:
        ValueError: another name, or ``cuda`` asked for where torch sees no GPU.
    """
    if device is None or device == "auto":
        return None
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU here (use --device auto or cpu)")
    return device


def _make_metric(name: str, protocol: Protocol, device: str | None, options: dict[str, dict]) -> Metric:
    from lesbench.registry import METRICS

    cls = METRICS.get(name)
    kwargs: dict[str, Any] = {"device": device}
    if name == "sync":
        kwargs.update(max_shift=protocol.sync_max_shift, sr=protocol.sample_rate, fps=protocol.fps)
    elif name == "lse":
        kwargs.update(vshift=protocol.lse_vshift, crop_scale=protocol.lse_crop_scale)
    elif name == "lmd":
        kwargs.update(landmarks=protocol.lmd_landmarks, crop_size=protocol.crop_size, pairing=protocol.pairing)
        if protocol.lmd_definition != "lesbench":  # only named when not the default definition
            kwargs.update(definition=protocol.lmd_definition)
    elif name == "fid":
        kwargs.update(method=protocol.fid_method, channel_order=protocol.fid_channel_order)
    elif name == "kid":
        kwargs.update(channel_order=protocol.fid_channel_order)
    elif name == "psnr":
        kwargs.update(identical=protocol.psnr_identical, cap_db=protocol.psnr_cap_db)
    elif name == "ssim":
        kwargs.update(window=protocol.ssim_window, win_size=protocol.ssim_win_size,
                      sample_covariance=protocol.ssim_sample_covariance)
    elif name == "au":
        kwargs.update(thresholds=protocol.au_threshold_vector(), pairing=protocol.pairing)
    kwargs.update(options.get(name, {}))
    return cls(**kwargs)


def _select_clips(pred_entries: dict[str, ClipEntry], proto: Protocol,
                  clips: str | Path | Sequence[str] | None
                  ) -> tuple[dict[str, ClipEntry], dict[str, str], dict[str, Any] | None]:
    """Apply the clip list (``clips``, else the protocol's ``clip_list``) and the protocol's
    speaker filter: ``(kept entries, excluded key -> reason, clip-list record)``."""
    source = clips if clips is not None else proto.clip_list
    listed: tuple[str, ...] | None = None
    record: dict[str, Any] | None = None
    if source is not None:
        if isinstance(source, (str, Path)):
            from lesbench.weights import file_sha256

            listed = read_clip_list(source)
            record = {"path": str(source), "sha256": file_sha256(Path(source)), "n_listed": len(listed)}
        else:
            listed = tuple(canonical_clip_id(c) or str(c) for c in source)
            record = {"path": None, "n_listed": len(listed)}
    keep: dict[str, ClipEntry] = {}
    excluded: dict[str, str] = {}
    found: set[str] = set()
    for key, entry in pred_entries.items():
        cid = canonical_clip_id(key) or key
        speaker = entry.speaker or (cid.split("_", 1)[0] if canonical_clip_id(key) else None)
        if proto.filter_speakers and proto.test_speakers and speaker not in proto.test_speakers:
            excluded[key] = (f"speaker {speaker} is not a test speaker of {proto.name}" if speaker
                             else f"speaker unknown (file name), {proto.name} scores test speakers only")
            continue
        if listed is not None and cid not in listed:
            excluded[key] = "not in the clip list"
            continue
        found.add(cid)
        keep[key] = entry
    if record is not None and listed is not None:
        record["missing"] = [c for c in listed if c not in found]
    return keep, excluded, record


def _pair_refs(pred_entries: dict[str, ClipEntry], ref_entries: dict[str, ClipEntry]) -> dict[str, ClipEntry]:
    """PRED key -> its REF entry: same key, else the same clip id (EAT-style names vs MEAD ids)."""
    by_id: dict[str, ClipEntry | None] = {}
    for key, entry in ref_entries.items():
        cid = canonical_clip_id(key)
        if cid is not None:
            by_id[cid] = None if cid in by_id else entry  # ambiguous ids pair with nothing
    out: dict[str, ClipEntry] = {}
    for key in pred_entries:
        if key in ref_entries:
            out[key] = ref_entries[key]
            continue
        cid = canonical_clip_id(key)
        if cid is not None and by_id.get(cid) is not None:
            out[key] = by_id[cid]  # type: ignore[assignment]
    return out


def score(pred: str | Path | dict[str, Path], ref: str | Path | dict[str, Path] | None = None, metrics: Sequence[str] | None = None,
          protocol: str | Path | Protocol = "mead-v1", device: str | None = None,
          metric_options: dict[str, dict] | None = None, progress: bool = False,
          cache_dir: str | Path | None = None, clips: str | Path | Sequence[str] | None = None,
          workers: int | None = None, scheduler: str | None = None) -> ScoreReport:
    """Score the videos under ``pred`` (against ``ref``) with ``metrics`` under ``protocol``.

    ``workers``: score clips in parallel on a local Dask cluster of that many processes;
    ``scheduler``: on the Dask cluster at this address (``tcp://host:8786``) instead; neither:
    in this process. Each worker makes its own tracker and models once; the report is the same
    whatever the number of workers (clips are merged in clip order; FID/KID features are
    gathered and computed once, in float64). ``device``: ``auto`` (or None: CUDA when present),
    ``cpu``, ``cuda``.

    ``cache_dir``: where reference clips' face tables and Inception features are cached
    (:class:`FeatureCache`), so repeated runs against the same references reuse them.

    ``metric_options``: extra constructor arguments per metric name (e.g.
    ``{"lse": {"weights_path": "syncnet_v2.model"}}``,
    ``{"controllability": {"directions": {...}}}``).

    ``clips``: score only these clips: a text file (one clip id or EAT-style name per line,
    :func:`~lesbench.metrics.protocol.read_clip_list`) or a sequence of ids; default: the
    protocol's ``clip_list`` (None: every clip).
    """
    import lesbench
    from lesbench.registry import METRICS

    t0 = time.perf_counter()
    device = resolve_device(device)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    proto = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    names = list(metrics) if metrics else list(proto.default_metrics or DEFAULT_METRICS)
    options = metric_options or {}
    pred_entries, excluded, clip_record = _select_clips(discover(pred), proto, clips)
    ref_entries = _pair_refs(pred_entries, discover(ref)) if ref is not None else {}

    results: dict[str, MetricResult] = {}
    instances: dict[str, Metric] = {}
    units: dict[str, str] = {}
    for name in names:
        if name not in METRICS:
            results[name] = MetricResult(name, "-", None, unavailable="not a registered metric "
                                         f"(known: {', '.join(METRICS.names())})")
            continue
        try:
            m = _make_metric(name, proto, device, options)
        except MetricUnavailable as exc:
            cls = METRICS.get(name)
            results[name] = MetricResult(name, getattr(cls, "version", "-"), getattr(cls, "higher_is_better", None),
                                         unavailable=exc.reason)
            continue
        except (LesbenchError, ImportError, OSError) as exc:
            results[name] = MetricResult(name, "-", None, unavailable=f"{type(exc).__name__}: {exc}")
            continue
        except TypeError as exc:  # this lesbench's metric lacks a setting the protocol names
            results[name] = MetricResult(name, "-", None, unavailable=f"protocol {proto.id} asks for a setting "
                                         f"this lesbench's {name!r} metric does not have ({exc})")
            continue
        needs_ref = bool(REF_INPUTS & set(m.inputs))
        if needs_ref and ref is None:
            results[name] = MetricResult(name, str(m.version), m.higher_is_better,
                                         unavailable="needs reference videos (--ref)")
            continue
        instances[name] = m
        units[name] = proto.sampling(name).unit if name in proto.frames else getattr(m, "unit", "clip")
        results[name] = MetricResult(name, str(m.version), m.higher_is_better,
                                     weights=_metric_weights(m))

    cache = FeatureCache(cache_dir) if cache_dir is not None else None
    unpaired = sorted(set(pred_entries) - set(ref_entries)) if ref is not None else []
    keys = sorted(pred_entries)
    jobs = [(key, pred_entries[key], ref_entries.get(key)) for key in keys]
    outcomes: dict[str, _ClipOutcome] = {}
    if workers is None and scheduler is None:
        # in this process: the scorer shares the driver's metric instances (one model load)
        scorer = _ClipScorer(proto, instances, units, cache, parallel=False)
        try:
            for i, job in enumerate(jobs):
                if progress:
                    print(f"[{i + 1}/{len(jobs)}] {job[0]}", flush=True)
                outcomes[job[0]] = scorer.score(job)
        finally:
            scorer.close()
    else:
        from lesbench.cluster import DaskPool, LazyWorkerState

        spec = _ScorerSpec(proto, tuple(instances), units, device, options,
                           str(cache_dir) if cache_dir is not None else None)
        name = f"lesbench-score-{uuid.uuid4().hex[:8]}"
        with DaskPool(workers=workers, scheduler=scheduler, progress=progress) as pool:
            pool.register(LazyWorkerState(_ClipScorer.from_spec, spec), name=name)
            for i, res, err in pool.map(_score_task, jobs, args=(name,), keys=keys, desc="score"):
                outcomes[keys[i]] = res if err is None else _failed_outcome(jobs[i], instances, err)

    # Merged in clip order whatever order the tasks finished in, so results do not depend on
    # the number of workers: dataset metrics receive their features in this order too.
    statuses: list[ClipStatus] = []
    # metrics that found out only while scoring that they cannot run here (MetricUnavailable
    # from update/compute, e.g. LPIPS without the lpips package): name -> reason (of the first
    # clip in order). They are reported as unavailable; the other metrics go on.
    dead: dict[str, str] = {}
    per_clip: dict[str, dict[str, Any]] = {n: {} for n in instances}
    clip_counts: dict[str, dict[str, dict[str, int]]] = {n: {} for n in instances}
    for key in keys:
        out = outcomes[key]
        statuses.append(out.status)
        for n, why in out.dead.items():
            dead.setdefault(n, why)
        for n, value in out.per_clip.items():
            per_clip[n][key] = value
        for n, c in out.counts.items():  # name -> {key: counts}
            clip_counts.setdefault(n, {}).update(c)
        for n, (pf, rf) in out.features.items():
            if n not in dead:
                instances[n].update_features(pred=pf, ref=rf)  # type: ignore[attr-defined]

    for name, m in instances.items():
        res = results[name]
        if name in dead:
            res.unavailable = dead[name]
            continue
        _summarise(name, m, res, units[name], per_clip[name], clip_counts[name], proto)

    weights = {}
    try:
        from lesbench.weights import file_sha256
        from lesbench.extract.face import landmarker_model_path

        if any(getattr(m, "needs_face", False) for m in instances.values()):
            weights["mediapipe-face-landmarker"] = file_sha256(landmarker_model_path())
    except Exception as exc:  # noqa: BLE001 - provenance only
        weights["mediapipe-face-landmarker"] = f"unresolved: {exc}"
    for res in results.values():
        weights.update(res.weights)
    def where(x: Any) -> str | None:
        return None if x is None else (f"{len(x)} videos" if isinstance(x, dict) else str(x))

    return ScoreReport(proto.as_dict(), str(where(pred)), where(ref), results, statuses, weights,
                       lesbench.__version__, round(time.perf_counter() - t0, 3), unpaired,
                       dict(sorted(excluded.items())), clip_record)


def _summarise(name: str, m: Metric, res: MetricResult, unit: str, clips: dict[str, Any],
               counts: dict[str, dict[str, int]], proto: Protocol) -> None:
    """Fill ``res`` from the per-clip outcomes ``clips`` (key -> ``{"value"}``, ``{"skipped"}``
    or True for a dataset metric's update) and per-clip ``counts``."""
    total: dict[str, int] = {}
    for c in counts.values():
        for k, v in c.items():
            total[k] = total.get(k, 0) + int(v)
    skipped: dict[str, int] = {}
    for v in clips.values():
        if isinstance(v, dict) and "skipped" in v:
            skipped[str(v["skipped"])] = skipped.get(str(v["skipped"]), 0) + 1
    res.skipped = skipped
    try:
        if unit == "dataset":
            value, extra = _split_counts(m.compute())
            total.update(extra)
            total.update(_metric_counts(m))
            res.value = value if isinstance(value, dict) else float(value)
            res.per_clip = {k: ("ok" if v is True else v) for k, v in clips.items()}
            res.counts = {"n_clips": sum(1 for v in clips.values() if v is True), **total}
            return
        ok = {k: v for k, v in clips.items() if isinstance(v, dict) and "value" in v}
        res.per_clip = {k: (v["value"] if isinstance(v, dict) and "value" in v else v) for k, v in clips.items()}
        res.counts = {"n_clips": len(ok), **total}
        if not ok:
            res.unavailable = "no clip could be scored (see clip issues)"
            return
        keys = list(_scalars(next(iter(ok.values()))["value"]))
        aggregate = proto.sampling(name).aggregate if name in proto.frames else "clips"
        agg: dict[str, float] = {}
        cis: dict[str, tuple[float, float] | None] = {}
        for k in keys:
            vals = {c: _scalars(v["value"]).get(k, float("nan")) for c, v in ok.items()}
            finite = {c: x for c, x in vals.items() if np.isfinite(x)}
            if len(finite) < len(vals):  # counted, never silently left out
                res.counts[f"n_clips_no_value{'_' + k if k else ''}"] = len(vals) - len(finite)
            if aggregate == "frames":
                frames = [counts.get(c, {}).get("n_frames") for c in finite]
                if any(x is None for x in frames):
                    raise ValueError(f"{name}: aggregate 'frames' needs per-frame counts, which this metric "
                                     "does not report")
                w = [float(x) for x in frames if x is not None]
                wsum = float(sum(w))
                agg[k] = float(np.dot(list(finite.values()), w) / wsum) if wsum > 0 else float("nan")
                cis[k] = bootstrap_ci_weighted(list(finite.values()), w, proto.bootstrap_n, proto.bootstrap_seed,
                                               proto.bootstrap_level)
            else:
                agg[k] = float(np.mean(list(finite.values()))) if finite else float("nan")
                cis[k] = bootstrap_ci(list(finite.values()), proto.bootstrap_n, proto.bootstrap_seed,
                                      proto.bootstrap_level)
        if keys == [""]:
            res.value, res.ci95 = agg[""], cis[""]
        else:
            res.value, res.ci95 = agg, cis
    except MetricUnavailable as exc:
        res.value, res.ci95, res.unavailable = None, None, exc.reason
    except (ValueError, LesbenchError) as exc:
        res.unavailable = f"could not compute: {exc}"


def _metric_counts(m: Metric) -> dict[str, int]:
    """Counts a metric instance reports through ``frame_counts()`` (frames in its mean, values
    it could not compute), or {}."""
    fn = getattr(m, "frame_counts", None)
    return {k: int(v) for k, v in (fn() or {}).items()} if callable(fn) else {}


def _clip_value(m: Metric, clip_counts: dict[str, dict[str, dict[str, int]]], name: str, key: str) -> dict[str, Any]:
    """One clip's outcome of a per-clip metric: ``{"value": ...}`` or, when nothing could be
    computed, ``{"skipped": reason}``; its counts (``n_*`` outputs, ``frame_counts()``) go to
    ``clip_counts[name][key]``."""
    counts = _metric_counts(m)
    try:
        value, extra = _split_counts(m.compute())
    except ValueError:
        clip_counts.setdefault(name, {})[key] = counts
        raise
    counts.update(extra)
    clip_counts.setdefault(name, {})[key] = counts
    scalars = _scalars(value)
    if scalars and not any(np.isfinite(v) for v in scalars.values()):
        why = ", ".join(f"{k}={v}" for k, v in counts.items() if k != "n_frames" and v)
        return {"skipped": f"no computable value ({why})" if why else "no computable value"}
    return {"value": value}


@dataclass
class _ClipOutcome:
    """What scoring one clip produced, merged by the driver in clip order: the clip's status,
    each metric's outcome and counts (name -> {clip key: counts}), metrics found unavailable, and dataset metrics' features
    ``(pred (N, D), ref (M, D))`` float64 (None where there were no frames)."""

    status: ClipStatus
    per_clip: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    dead: dict[str, str] = field(default_factory=dict)
    features: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class _ScorerSpec:
    """What a worker needs to build its own scorer (picklable): metric names to construct."""

    protocol: Protocol
    names: tuple[str, ...]
    units: dict[str, str]
    device: str | None
    options: dict[str, dict]
    cache_dir: str | None


class _ClipScorer:
    """Scores clips one at a time with one set of metric instances and one face tracker, made
    once (per worker, or shared with the driver in a one-process run)."""

    def __init__(self, proto: Protocol, instances: dict[str, Metric], units: dict[str, str],
                 cache: FeatureCache | None, parallel: bool, dead: dict[str, str] | None = None) -> None:
        self.proto, self.instances, self.units, self.cache = proto, instances, units, cache
        self.parallel = parallel
        self.tracker = _TrackerPool()
        #: metrics that became unavailable on this scorer: name -> reason
        self.dead: dict[str, str] = dict(dead or {})

    @classmethod
    def from_spec(cls, spec: _ScorerSpec) -> "_ClipScorer":
        instances: dict[str, Metric] = {}
        dead: dict[str, str] = {}
        for name in spec.names:
            try:
                instances[name] = _make_metric(name, spec.protocol, spec.device, spec.options)
            except MetricUnavailable as exc:  # e.g. a remote worker without the weights
                dead[name] = f"on worker: {exc.reason}"
            except (LesbenchError, ImportError, OSError, TypeError) as exc:
                dead[name] = f"on worker: {type(exc).__name__}: {exc}"
        cache = FeatureCache(spec.cache_dir) if spec.cache_dir is not None else None
        return cls(spec.protocol, instances, spec.units, cache, parallel=True, dead=dead)

    def score(self, job: tuple[str, ClipEntry, ClipEntry | None]) -> _ClipOutcome:
        key, pe, re_ = job
        st = ClipStatus(key, str(pe.video), str(re_.video) if re_ else None,
                        pe.emotion or (re_.emotion if re_ else None),
                        pe.level if pe.level is not None else (re_.level if re_ else None))
        out = _ClipOutcome(st)
        names = list(self.instances) + [n for n in self.dead if n not in self.instances]
        per_clip: dict[str, dict[str, Any]] = {n: {} for n in names}
        pv = VideoData(pe, self.proto, self.tracker)
        rv = VideoData(re_, self.proto, self.tracker, self.cache) if re_ else None
        try:
            st.n_frames = int(len(pv.frames))
        except MediaError as exc:
            st.issues.append(f"pred video unreadable: {exc.problem}")
            out.per_clip = {n: {"skipped": "generated video unreadable"} for n in names}
            return out
        # One torch thread wherever a clip is scored: float32 reductions split over another
        # number of threads add up in another order, and the report must not depend on where
        # (or on how many workers) it was computed. Parallelism comes from the workers.
        with torch_threads(1):
            _score_clip(key, st, pv, rv, self.proto, self.instances, self.units, per_clip, self.dead, out.counts,
                        out.features, gather=self.parallel)
        out.per_clip = {n: v[key] for n, v in per_clip.items() if key in v}
        for n, why in self.dead.items():
            out.per_clip.setdefault(n, {"skipped": f"metric unavailable: {why}"})
        out.dead = dict(self.dead)
        return out

    def close(self) -> None:
        self.tracker.close()


def _score_task(job: tuple[str, ClipEntry, ClipEntry | None], plugin: str) -> _ClipOutcome:
    from lesbench.cluster import worker_plugin

    return worker_plugin(plugin).get().score(job)


def _failed_outcome(job: tuple[str, ClipEntry, ClipEntry | None], instances: dict[str, Metric],
                    err: BaseException) -> _ClipOutcome:
    """A clip whose task failed on the cluster (e.g. its worker died twice): every metric
    skips it with the reason."""
    key, pe, re_ = job
    st = ClipStatus(key, str(pe.video), str(re_.video) if re_ else None, pe.emotion, pe.level)
    why = f"scoring task failed: {type(err).__name__}: {err}"
    st.issues.append(why)
    return _ClipOutcome(st, per_clip={n: {"skipped": why} for n in instances})


@dataclass
class _CachedFeatures:
    """Reference features standing in for reference frames (Inception metrics)."""

    features: np.ndarray


def _score_clip(key: str, st: ClipStatus, pv: VideoData, rv: VideoData | None, proto: Protocol,
                instances: dict[str, Metric], units: dict[str, str], per_clip: dict[str, dict[str, Any]],
                dead: dict[str, str] | None = None,
                clip_counts: dict[str, dict[str, dict[str, int]]] | None = None,
                features: dict[str, tuple[np.ndarray | None, np.ndarray | None]] | None = None,
                gather: bool = False) -> None:
    """Score one clip with every metric. Per-clip metrics leave their outcome in ``per_clip``
    and ``clip_counts``. Dataset metrics with per-clip features (FID, KID) leave
    ``features[name] = (pred, ref)`` for the caller to add in clip order; other dataset metrics
    are updated here, which only ``gather=False`` (one process, clips in order) allows."""
    dead = {} if dead is None else dead
    clip_counts = {} if clip_counts is None else clip_counts
    features = {} if features is None else features
    ref_ok = rv is not None
    if rv is not None:
        try:
            st.n_ref_frames = int(len(rv.frames))
        except MediaError as exc:
            st.issues.append(f"reference video unreadable: {exc.problem}")
            ref_ok = False
    if ref_ok and rv is not None:
        st.n_paired = min(len(pv.frames), len(rv.frames))
        if len(pv.frames) != len(rv.frames):
            st.issues.append(f"lengths differ ({len(pv.frames)} generated vs {len(rv.frames)} reference frames): "
                             f"{st.n_paired} frame pairs by {proto.pairing}")
    need_audio = any(getattr(m, "needs_audio", False) or "audio" in m.inputs for m in instances.values())
    need_face = any(getattr(m, "needs_face", False) for m in instances.values())
    audio = None
    if need_audio:
        audio = pv.audio
        if audio is None and ref_ok and rv is not None and rv.audio is not None:
            audio = rv.audio
            st.issues.append(f"pred has {pv.audio_error}; using the reference's audio")
        st.has_audio = audio is not None
        if audio is None:
            st.issues.append(f"no_audio: {pv.audio_error}")
    if need_face:
        st.face_ratio = pv.face_ratio
        if st.face_ratio == 0:
            st.issues.append("no_face: no face found in the generated video")
        if ref_ok and rv is not None and rv.face_ratio == 0:
            st.issues.append("no_face: no face found in the reference video")

    for name, m in instances.items():
        if name in dead:
            per_clip[name][key] = {"skipped": f"metric unavailable: {dead[name]}"}
            continue
        inputs = set(m.inputs)
        if REF_INPUTS & inputs and not ref_ok:
            per_clip[name][key] = {"skipped": "no reference clip"} if rv is None else {"skipped": "reference unreadable"}
            continue
        if ("audio" in inputs or getattr(m, "needs_audio", False)) and audio is None:
            per_clip[name][key] = {"skipped": "no audio"}
            continue
        if getattr(m, "needs_face", False):
            if st.face_ratio == 0 or (("ref_face" in inputs or "target_aus" in inputs) and rv is not None
                                      and rv.face_ratio == 0):
                per_clip[name][key] = {"skipped": "no face"}
                continue
        sampling = proto.sampling(name)
        if "pred_video" in inputs and "ref_video" in inputs and rv is not None:
            # paired metric: the protocol's pairing of the two clips, then its sampling of the pairs
            pred_idx, ref_idx = proto.paired_frame_indices(name, len(pv.frames), len(rv.frames))
        else:
            pred_idx = sampling.indices(len(pv.frames))
            ref_idx = sampling.indices(len(rv.frames)) if ref_ok and rv is not None else np.zeros(0, np.int64)
        args: dict[str, Any] = {}
        for inp in m.inputs:
            if inp == "pred_video":
                args[inp] = pv.frames[pred_idx]
            elif inp == "ref_video":
                idx = ref_idx
                if rv.cache is not None and hasattr(m, "update_features") and hasattr(m, "features"):
                    # Inception metrics: the reference clip's features come from the cache
                    args[inp] = _CachedFeatures(rv.cache.inception(  # type: ignore[union-attr]
                        rv.entry.video, idx, m.feature_key,  # type: ignore[union-attr,attr-defined]
                        lambda: m.features(rv.frames[idx])))  # type: ignore[union-attr,attr-defined]
                else:
                    args[inp] = rv.frames[idx]  # type: ignore[union-attr]
            elif inp == "audio":
                args[inp] = audio
            elif inp == "source":
                args[inp] = rv.frames[0]  # type: ignore[union-attr]
            elif inp == "pred_face":
                args[inp] = pv.face
            elif inp in ("ref_face", "target_aus"):
                args[inp] = rv.face  # type: ignore[union-attr]
            elif inp == "emotion":
                args[inp] = st.emotion
            elif inp == "level":
                args[inp] = st.level
            elif inp == "pred_size":
                args[inp] = pv.size
            elif inp == "ref_size":
                args[inp] = rv.size  # type: ignore[union-attr]
        if ("emotion" in args and args["emotion"] is None) or ("level" in args and args["level"] is None):
            per_clip[name][key] = {"skipped": "emotion/level unknown (not in the path)"}
            continue
        try:
            if units[name] == "dataset" and hasattr(m, "features") and hasattr(m, "update_features"):
                pred_frames = args.get("pred_video")
                pf = m.features(pred_frames) if pred_frames is not None and len(pred_frames) else None  # type: ignore[attr-defined]
                rf = args.get("ref_video")
                if isinstance(rf, _CachedFeatures):
                    rf = rf.features
                elif rf is not None:
                    rf = m.features(rf) if len(rf) else None  # type: ignore[attr-defined]
                features[name] = (pf, rf)
                per_clip[name][key] = True
            elif units[name] == "dataset" and gather:
                raise MetricUnavailable(name, "a dataset-level metric without per-clip features cannot run on "
                                        "several workers (run without --workers/--scheduler)")
            elif any(isinstance(v, _CachedFeatures) for v in args.values()):
                # features for the reference, frames for the prediction
                if units[name] != "dataset":
                    m.reset()
                pred_frames = args.get("pred_video")
                pred_feats = m.features(pred_frames) if pred_frames is not None and len(pred_frames) else None  # type: ignore[attr-defined]
                m.update_features(pred=pred_feats, ref=args["ref_video"].features)  # type: ignore[attr-defined]
                per_clip[name][key] = True if units[name] == "dataset" else _clip_value(m, clip_counts, name, key)
            elif units[name] == "dataset":
                m.update(**args)
                per_clip[name][key] = True
            else:
                m.reset()
                m.update(**args)
                per_clip[name][key] = _clip_value(m, clip_counts, name, key)
            # per-clip remarks a metric wants shown (e.g. sync: no mouth motion)
            st.issues.extend(f"{name}: {note}" for note in getattr(m, "clip_notes", ()) or ())
        except MetricUnavailable as exc:
            dead[name] = exc.reason
            per_clip[name][key] = {"skipped": f"metric unavailable: {exc.reason}"}
            log.warning("%s unavailable: %s", name, exc.reason)
        except (ValueError, LesbenchError) as exc:
            per_clip[name][key] = {"skipped": str(exc)}
            st.issues.append(f"{name}: {exc}")
