"""Scoring clips one at a time: the metric instances and the face tracker are made once (per
Dask worker, or shared with the driver in a one-process run) and every video is decoded and
face-tracked once, its frames, audio and face table shared by every metric.

Frames: a metric that reads both videos gets *paired* frames (the protocol's pairing, then its
frame sampling of those pairs), so clips of different lengths are scored, never dropped. A clip
without an audio stream, without a face, or that cannot be decoded is reported per clip with the
reason; it never stops the run. A metric that finds out only in ``update``/``compute`` that it
cannot run here is skipped for the remaining clips (the other metrics go on).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lesbench.errors import LesbenchError, MediaError
from lesbench.metrics.base import Metric, MetricUnavailable
from lesbench.metrics.discover import ScoreItem
from lesbench.metrics.protocol import Protocol
from lesbench.metrics.report import ClipStatus, clip_value
from lesbench.metrics.video import FeatureCache, TrackerPool, VideoData
from lesbench.registry import METRICS
from lesbench.threads import torch_threads

log = logging.getLogger(__name__)

#: Inputs that need a reference clip.
REF_INPUTS = frozenset({"ref_video", "ref_face", "target_aus", "source", "ref_size"})


def make_metric(name: str, protocol: Protocol, device: str | None, options: dict[str, dict]) -> Metric:
    """Registered metric ``name`` built from ``protocol`` (its declared settings), with
    ``options[name]`` as extra constructor arguments."""
    return METRICS.get(name).from_protocol(protocol, device, options.get(name, {}))


@dataclass
class ClipOutcome:
    """What scoring one clip produced, merged by the driver in clip order: the clip's status,
    each metric's outcome and counts (name -> {clip key: counts}), metrics found unavailable, and dataset metrics' features
    ``(pred (N, D), ref (M, D))`` float64 (None where there were no frames)."""

    status: ClipStatus
    per_clip: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    dead: dict[str, str] = field(default_factory=dict)
    features: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = field(default_factory=dict)
    #: wall seconds this clip spent per stage (``decode pred``, ``track ref``, ``metric fid``...);
    #: timing only, never part of a score
    seconds: dict[str, float] = field(default_factory=dict)


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Any:
    """Add the wall time of the block to ``seconds[stage]``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - t0


@dataclass(frozen=True)
class ScorerSpec:
    """What a worker needs to build its own scorer (picklable): metric names to construct."""

    protocol: Protocol
    names: tuple[str, ...]
    units: dict[str, str]
    device: str | None
    options: dict[str, dict]
    cache_dir: str | None


class ClipScorer:
    """Scores clips one at a time with one set of metric instances and one face tracker, made
    once (per worker, or shared with the driver in a one-process run)."""

    def __init__(self, proto: Protocol, instances: dict[str, Metric], units: dict[str, str],
                 cache: FeatureCache | None, parallel: bool, dead: dict[str, str] | None = None) -> None:
        self.proto, self.instances, self.units, self.cache = proto, instances, units, cache
        self.parallel = parallel
        self.tracker = TrackerPool()
        #: metrics that became unavailable on this scorer: name -> reason
        self.dead: dict[str, str] = dict(dead or {})

    @classmethod
    def from_spec(cls, spec: ScorerSpec) -> "ClipScorer":
        instances: dict[str, Metric] = {}
        dead: dict[str, str] = {}
        for name in spec.names:
            try:
                instances[name] = make_metric(name, spec.protocol, spec.device, spec.options)
            except MetricUnavailable as exc:  # e.g. a remote worker without the weights
                dead[name] = f"on worker: {exc.reason}"
            except (LesbenchError, ImportError, OSError, TypeError) as exc:
                dead[name] = f"on worker: {type(exc).__name__}: {exc}"
        cache = FeatureCache(spec.cache_dir) if spec.cache_dir is not None else None
        return cls(spec.protocol, instances, spec.units, cache, parallel=True, dead=dead)

    def score(self, item: ScoreItem) -> ClipOutcome:
        key = item.key
        st = ClipStatus(key, str(item.pred), str(item.ref) if item.ref is not None else None, item.emotion, item.level)
        out = ClipOutcome(st)
        names = list(self.instances) + [n for n in self.dead if n not in self.instances]
        per_clip: dict[str, dict[str, Any]] = {n: {} for n in names}
        pv = VideoData(item.pred, item.audio, self.proto, self.tracker)
        rv = VideoData(item.ref, item.ref_audio, self.proto, self.tracker, self.cache) if item.ref is not None else None
        try:
            with _timed(out.seconds, "decode pred"):
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
                        out.features, gather=self.parallel, seconds=out.seconds)
        out.per_clip = {n: v[key] for n, v in per_clip.items() if key in v}
        for n, why in self.dead.items():
            out.per_clip.setdefault(n, {"skipped": f"metric unavailable: {why}"})
        out.dead = dict(self.dead)
        return out

    def close(self) -> None:
        self.tracker.close()


def score_task(item: ScoreItem, plugin: str) -> ClipOutcome:
    """Score ``item`` with the scorer this Dask worker holds under ``plugin``."""
    from lesbench.cluster import worker_plugin  # imports dask's distributed: only on workers

    return worker_plugin(plugin).get().score(item)


def failed_outcome(item: ScoreItem, instances: dict[str, Metric], err: BaseException) -> ClipOutcome:
    """A clip whose task failed on the cluster (e.g. its worker died twice): every metric
    skips it with the reason."""
    st = ClipStatus(item.key, str(item.pred), str(item.ref) if item.ref is not None else None, item.emotion,
                    item.level)
    why = f"scoring task failed: {type(err).__name__}: {err}"
    st.issues.append(why)
    return ClipOutcome(st, per_clip={n: {"skipped": why} for n in instances})


@dataclass
class _CachedFeatures:
    """Reference features standing in for reference frames (Inception metrics)."""

    features: np.ndarray


def _score_clip(key: str, st: ClipStatus, pv: VideoData, rv: VideoData | None, proto: Protocol,
                instances: dict[str, Metric], units: dict[str, str], per_clip: dict[str, dict[str, Any]],
                dead: dict[str, str] | None = None,
                clip_counts: dict[str, dict[str, dict[str, int]]] | None = None,
                features: dict[str, tuple[np.ndarray | None, np.ndarray | None]] | None = None,
                gather: bool = False, seconds: dict[str, float] | None = None) -> None:
    """Score one clip with every metric. Per-clip metrics leave their outcome in ``per_clip``
    and ``clip_counts``. Dataset metrics with per-clip features (FID, KID) leave
    ``features[name] = (pred, ref)`` for the caller to add in clip order; other dataset metrics
    are updated here, which only ``gather=False`` (one process, clips in order) allows.
    ``seconds``: wall seconds per stage are added here (decoding, tracking, audio, each metric)."""
    seconds = {} if seconds is None else seconds
    dead = {} if dead is None else dead
    clip_counts = {} if clip_counts is None else clip_counts
    features = {} if features is None else features
    ref_ok = rv is not None
    if rv is not None:
        try:
            with _timed(seconds, "decode ref"):
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
        with _timed(seconds, "audio"):
            audio = pv.audio
        if audio is None and ref_ok and rv is not None and rv.audio is not None:
            audio = rv.audio
            st.issues.append(f"pred has {pv.audio_error}; using the reference's audio")
        st.has_audio = audio is not None
        if audio is None:
            st.issues.append(f"no_audio: {pv.audio_error}")
    if need_face:
        with _timed(seconds, "track pred"):
            st.face_ratio = pv.face_ratio
        if st.face_ratio == 0:
            st.issues.append("no_face: no face found in the generated video")
        if ref_ok and rv is not None:
            with _timed(seconds, "track ref"):
                ref_ratio = rv.face_ratio
        if ref_ok and rv is not None and ref_ratio == 0:
            st.issues.append("no_face: no face found in the reference video")

    for name, m in instances.items():
        with _timed(seconds, f"metric {name}"):
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
            optional = tuple(getattr(m, "optional_inputs", ()))
            for inp in tuple(m.inputs) + optional:
                if inp in optional and inp in REF_INPUTS and not ref_ok:
                    args[inp] = None
                elif inp == "pred_video":
                    args[inp] = pv.frames[pred_idx]
                elif inp == "ref_video":
                    idx = ref_idx
                    if rv.cache is not None and hasattr(m, "update_features") and hasattr(m, "features"):
                        # Inception metrics: the reference clip's features come from the cache
                        args[inp] = _CachedFeatures(rv.cache.inception(  # type: ignore[union-attr]
                            rv.video, idx, m.feature_key,  # type: ignore[union-attr,attr-defined]
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
                    per_clip[name][key] = True if units[name] == "dataset" else clip_value(m, clip_counts, name, key)
                elif units[name] == "dataset":
                    m.update(**args)
                    per_clip[name][key] = True
                else:
                    m.reset()
                    m.update(**args)
                    per_clip[name][key] = clip_value(m, clip_counts, name, key)
                # per-clip remarks a metric wants shown (e.g. sync: no mouth motion)
                st.issues.extend(f"{name}: {note}" for note in getattr(m, "clip_notes", ()) or ())
            except MetricUnavailable as exc:
                dead[name] = exc.reason
                per_clip[name][key] = {"skipped": f"metric unavailable: {exc.reason}"}
                log.warning("%s unavailable: %s", name, exc.reason)
            except (ValueError, LesbenchError) as exc:
                per_clip[name][key] = {"skipped": str(exc)}
                st.issues.append(f"{name}: {exc}")
