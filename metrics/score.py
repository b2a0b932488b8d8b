"""``lesbench score``: run registered metrics on generated videos (and references) under a protocol.

    report = score("gen/", ref="mead/", metrics=["lmd", "sync", "au"], protocol="mead-v1")
    print(report.table())
    report.write_json("scores.json")

    report = score_items([ScoreItem("M003_front_angry_3_001", gen, ref, "angry", 3)], protocol="mead-v1")

:func:`score` finds the clips under PRED and REF (:mod:`lesbench.metrics.discover`: MEAD trees,
prepared data sets, folders of videos; a clip list and the protocol's speaker filter select
them) and hands them to :func:`score_items`, which ``lesbench evaluate`` calls with the clips it
generated. Each clip is scored by :mod:`lesbench.metrics.scorer` (every video decoded and
face-tracked once); :mod:`lesbench.metrics.report` summarises the outcomes.

With ``workers``/``scheduler`` clips are scored on Dask workers, each with its own tracker and
metric models made once; outcomes are merged in clip order and FID/KID get every clip's features
at the end, so the report does not depend on the number of workers (docs/scoring-at-scale.md).
A metric that cannot run here (weights or package missing) is listed as unavailable with the
reason, whether it finds out when constructed or only in ``update``/``compute`` (it is then
skipped for the remaining clips; the other metrics go on). With ``cache_dir`` the reference
clips' face tables and Inception features are cached on disk (:class:`FeatureCache`).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Sequence

from lesbench import __version__
from lesbench.errors import LesbenchError
from lesbench.metrics.base import Metric, MetricResult, MetricUnavailable
from lesbench.metrics.discover import ScoreItem, discover_items
from lesbench.metrics.protocol import Protocol, load_protocol
from lesbench.metrics.report import ClipStatus, ScoreReport, summarise
from lesbench.metrics.scorer import (REF_INPUTS, ClipOutcome, ClipScorer, ScorerSpec, failed_outcome, make_metric,
                                     score_task)
from lesbench.metrics.video import FeatureCache
from lesbench.extract.face import landmarker_model_path
from lesbench.registry import METRICS
from lesbench.weights import file_sha256
from lesbench.weights import resolve as resolve_weight

#: Metrics run when none are named (names not registered are reported as such).
DEFAULT_METRICS: tuple[str, ...] = ("fid", "psnr", "ssim", "lpips", "csim", "lmd", "sync", "lse", "au", "emotion")


def _weights_sha(names: Iterable[str]) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = file_sha256(resolve_weight(name))
        except Exception as exc:  # noqa: BLE001 - recorded, not fatal
            out[name] = f"unresolved: {exc}"
    return out


def metric_weights(m: Metric) -> dict[str, str]:
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




def score(pred: str | Path | dict[str, Path], ref: str | Path | dict[str, Path] | None = None, metrics: Sequence[str] | None = None,
          protocol: str | Path | Protocol = "mead-v1", device: str | None = None,
          metric_options: dict[str, dict] | None = None, progress: bool = False,
          cache_dir: str | Path | None = None, clips: str | Path | Sequence[str] | None = None,
          workers: int | None = None, scheduler: str | None = None) -> ScoreReport:
    """Score the videos under ``pred`` (against ``ref``) with ``metrics`` under ``protocol``.

    The clips are found by :func:`~lesbench.metrics.discover.discover_items` and scored by
    :func:`score_items` (which documents ``metrics``, ``device``, ``metric_options``,
    ``cache_dir``, ``workers`` and ``scheduler``).

    ``clips``: score only these clips: a text file (one clip id or EAT-style name per line,
    :func:`~lesbench.metrics.protocol.read_clip_list`) or a sequence of ids; default: the
    protocol's ``clip_list`` (None: every clip).
    """
    t0 = time.perf_counter()
    proto = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    found = discover_items(pred, ref, proto, clips)

    def where(x: Any) -> str | None:
        return None if x is None else (f"{len(x)} videos" if isinstance(x, dict) else str(x))

    report = score_items(found.items, metrics=metrics, protocol=proto, device=device, metric_options=metric_options,
                         progress=progress, cache_dir=cache_dir, workers=workers, scheduler=scheduler,
                         with_ref=ref is not None)
    report.pred, report.ref = str(where(pred)), where(ref)
    report.unpaired, report.excluded, report.clip_list = found.unpaired, found.excluded, found.clip_list
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def score_items(items: Sequence[ScoreItem], metrics: Sequence[str] | None = None,
                protocol: str | Path | Protocol = "mead-v1", device: str | None = None,
                metric_options: dict[str, dict] | None = None, progress: bool = False,
                cache_dir: str | Path | None = None, workers: int | None = None, scheduler: str | None = None,
                with_ref: bool | None = None, timings: dict[str, float] | None = None) -> ScoreReport:
    """Score ``items`` (each a generated clip, its reference, target emotion and level) with
    ``metrics`` (default: the protocol's, else :data:`DEFAULT_METRICS`) under ``protocol``.

    ``workers``: score clips in parallel on a local Dask cluster of that many processes;
    ``scheduler``: on the Dask cluster at this address (``tcp://host:8786``) instead; neither:
    in this process. Each worker makes its own tracker and models once; the report is the same
    whatever the number of workers (clips are merged in key order; FID/KID features are
    gathered and computed once, in float64). ``device``: ``auto`` (or None: CUDA when present),
    ``cpu``, ``cuda``.

    ``cache_dir``: where reference clips' face tables and Inception features are cached
    (:class:`FeatureCache`), so repeated runs against the same references reuse them.

    ``metric_options``: extra constructor arguments per metric name (e.g.
    ``{"lse": {"weights_path": "syncnet_v2.model"}}``,
    ``{"controllability": {"directions": {...}}}``).

    ``with_ref``: whether references were given (default: whether any item has one); metrics
    that need one are unavailable without.

    ``timings``: a dict to receive where the time went, in seconds summed over clips (on a
    cluster: worker seconds): ``decode pred``, ``decode ref``, ``audio``, ``track pred``,
    ``track ref``, ``metric <name>`` for each metric, and ``models`` (building the metrics
    here). Timing only: it never changes the report.
    """
    t0 = time.perf_counter()
    device = resolve_device(device)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    proto = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    names = list(metrics) if metrics else list(proto.default_metrics or DEFAULT_METRICS)
    options = metric_options or {}
    items = sorted(items, key=lambda it: it.key)
    keys = [it.key for it in items]
    if len(set(keys)) != len(keys):
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        raise LesbenchError(f"score: clip keys must be unique; repeated: {repeated}")
    has_ref = any(it.ref is not None for it in items) if with_ref is None else with_ref

    results: dict[str, MetricResult] = {}
    instances: dict[str, Metric] = {}
    units: dict[str, str] = {}
    t_models = time.perf_counter()
    for name in names:
        if name not in METRICS:
            results[name] = MetricResult(name, "-", None, unavailable="not a registered metric "
                                         f"(known: {', '.join(METRICS.names())})")
            continue
        try:
            m = make_metric(name, proto, device, options)
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
        if needs_ref and not has_ref:
            results[name] = MetricResult(name, str(m.version), m.higher_is_better,
                                         unavailable="needs reference videos (--ref)")
            continue
        instances[name] = m
        units[name] = proto.sampling(name).unit if name in proto.frames else getattr(m, "unit", "clip")
        results[name] = MetricResult(name, str(m.version), m.higher_is_better,
                                     weights=metric_weights(m))

    if timings is not None:
        timings["models"] = timings.get("models", 0.0) + time.perf_counter() - t_models
    cache = FeatureCache(cache_dir) if cache_dir is not None else None
    outcomes: dict[str, ClipOutcome] = {}
    if workers is None and scheduler is None:
        # in this process: the scorer shares the driver's metric instances (one model load)
        scorer = ClipScorer(proto, instances, units, cache, parallel=False)
        try:
            for i, item in enumerate(items):
                if progress:
                    print(f"[{i + 1}/{len(items)}] {item.key}", flush=True)
                outcomes[item.key] = scorer.score(item)
        finally:
            scorer.close()
    else:
        from lesbench.cluster import DaskPool, LazyWorkerState  # imports dask's distributed

        spec = ScorerSpec(proto, tuple(instances), units, device, options,
                          str(cache_dir) if cache_dir is not None else None)
        plugin = f"lesbench-score-{uuid.uuid4().hex[:8]}"
        with DaskPool(workers=workers, scheduler=scheduler, progress=progress) as pool:
            pool.register(LazyWorkerState(ClipScorer.from_spec, spec), name=plugin)
            for i, res, err in pool.map(score_task, items, args=(plugin,), keys=keys, desc="score"):
                outcomes[keys[i]] = res if err is None else failed_outcome(items[i], instances, err)
    if timings is not None:
        for out in outcomes.values():
            for stage, sec in out.seconds.items():
                timings[stage] = timings.get(stage, 0.0) + sec
    t_merge = time.perf_counter()
    statuses = _merge(keys, outcomes, instances, units, results, proto)
    if timings is not None:  # dataset metrics' final computation, summaries and bootstrap CIs
        timings["summarise"] = timings.get("summarise", 0.0) + time.perf_counter() - t_merge

    weights = {}
    try:
        if any(getattr(m, "needs_face", False) for m in instances.values()):
            weights["mediapipe-face-landmarker"] = file_sha256(landmarker_model_path())
    except Exception as exc:  # noqa: BLE001 - provenance only
        weights["mediapipe-face-landmarker"] = f"unresolved: {exc}"
    for res in results.values():
        weights.update(res.weights)
    n_ref = sum(it.ref is not None for it in items)
    return ScoreReport(proto.as_dict(), f"{len(items)} videos", f"{n_ref} videos" if has_ref else None, results,
                       statuses, weights, __version__, round(time.perf_counter() - t0, 3))


def _merge(keys: list[str], outcomes: dict[str, ClipOutcome], instances: dict[str, Metric], units: dict[str, str],
           results: dict[str, MetricResult], proto: Protocol) -> list[ClipStatus]:
    """Merge the clips' outcomes in key order, whatever order the tasks finished in, so results do
    not depend on the number of workers (dataset metrics receive their features in this order
    too), and fill ``results``; the clips' statuses in key order."""
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
        summarise(name, m, res, units[name], per_clip[name], clip_counts[name], proto)
    return statuses
