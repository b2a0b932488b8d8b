"""``lesbench evaluate``: run one method on a prepared data set's test split and score it.

For every test clip (``split == "test"``, status ok, in the protocol's views):

- source image = first frame of the aligned crop of the same speaker's neutral clip (same view,
  first by clip id, a different clip than the target when there is one) — the usual one-shot
  setting; recorded per clip;
- audio = the test clip's audio (16 kHz mono, from its crop video), emotion and level = the
  test clip's;
- the method generates ``n_frames`` = the ground-truth crop's frame count at 25 fps, written
  to ``{workdir}/videos/{method}/{clip_id}.mp4`` with the audio muxed; a method that serves
  existing files (``external``) keeps each file's own length (the scorer pairs frames by the
  protocol's ``linspace`` rule, as it does for every paired metric) and, when a file needs no
  resizing, is scored from that file directly (no lossy re-encoding);
- the generated clips are scored against the ground-truth crops with the protocol
  (:mod:`lesbench.metrics.score`).

One results file per method and benchmark is written (format: :data:`lesbench.leaderboard.
RESULT_REQUIRED`): scores with 95% confidence intervals and metric versions, the protocol
(name, version, sha256 of its definition), the data set (name, sha256 of dataset.json and
clips.parquet), the method's revision / checkpoint sha256 / seed / options, per-clip failures,
and the environment (lesbench version, git revision, date, hardware). One failing clip is
recorded and skipped, never fatal.

    res = evaluate("static", "prepared/", out="results/")
    res.path          # results/mead-v1/<dataset>/static.json
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lesbench import __version__, schema
from lesbench.errors import LesbenchError
from lesbench.sanitize import safe_join, safe_name

#: ``scorer(pred, ref, protocol, metrics, clips, device) -> {metric: record}``; a record is a
#: dict with ``value``, ``ci95`` (or None), ``version``, ``higher_is_better``, ``n`` — or
#: ``unavailable`` (a reason) instead of ``value``.
Scorer = Callable[..., dict[str, dict[str, Any]]]


@dataclass
class EvaluationResult:
    record: dict[str, Any]
    path: Path | None
    videos: dict[str, Path] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------------- provenance

def git_revision(path: str | Path | None = None) -> str | None:
    """HEAD commit of the git checkout containing lesbench (None outside a checkout)."""
    here = Path(path) if path else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    rev = out.stdout.strip()
    if out.returncode != 0 or not rev:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, timeout=10)
    return rev + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def hardware_info(device: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "device": device or "cpu",
        "gpu": None,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # torch is a core dependency, but the evaluator does not need it
        info["torch"] = None
    info["summary"] = f"{info['cpu_count']} CPU ({info['machine']})" + (f", {info['gpu']}" if info["gpu"] else "")
    return info


def _sha256_file(path: Path) -> str | None:
    from lesbench.weights import file_sha256

    return file_sha256(path) if path.is_file() else None


def _set_seed(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


# ----------------------------------------------------------------------------------- protocol

def _load_protocol(protocol: str | Path) -> tuple[Any, dict[str, Any]]:
    """Load with the metric suite's loader; return (protocol object, JSON-able summary)."""
    from lesbench.metrics.protocol import load_protocol

    p = load_protocol(str(protocol))
    raw = getattr(p, "raw", {}) or {}
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
    summary = {"name": p.name, "version": str(p.version), "id": getattr(p, "id", f"{p.name}@{p.version}"),
               "sha256": digest, "source": str(getattr(p, "source", "") or "")}
    return p, summary


def dataset_label(info: dict[str, Any], data: str | Path) -> str:
    """Name of the evaluated data set in results and tables.

    A prepared set of lesbench's synthetic demo is labelled ``lesbench-demo`` even though it was
    read with the MEAD reader, so demo numbers are never shown as MEAD numbers. It is recognised
    by a ``demo`` entry in ``dataset.json`` (the demo card, when prepare records it) or by the
    demo generator's ``demo.json`` in the recorded source root (or reader root).
    """
    if info.get("name"):
        return str(info["name"])
    if info.get("demo"):
        return "lesbench-demo"
    reader = info.get("reader") if isinstance(info.get("reader"), dict) else {}
    roots = {info.get("source_root"), reader.get("root")} - {None, ""}
    for root in roots:
        card = Path(str(root)) / "demo.json"
        if card.is_file():
            try:
                gen = json.loads(card.read_text()).get("generator", "lesbench.demo")
            except (OSError, ValueError, AttributeError):
                gen = "lesbench.demo"  # a demo.json that is not ours to parse still marks demo data
            if str(gen).startswith("lesbench"):
                return "lesbench-demo"
    return str(info.get("dataset") or Path(data).resolve().name)


# ----------------------------------------------------------------------------------- selection

def test_clips(data: Any, protocol: Any, clips: Any = None) -> list[dict[str, Any]]:
    """Rows of the test split, in the protocol's views (when the data has any of them), sorted
    by clip id; with the protocol's ``clips_per_condition`` = N, only the first N clips of each
    speaker x view x emotion x level (``demo-v1``: one level-3 clip per emotion, plus neutral).
    Only the protocol's ``levels`` are kept (neutral clips always); with the protocol's
    ``filter_speakers`` only its ``test_speakers``; with a clip list (``clips``: a file or ids,
    else the protocol's ``clip_list``) only the listed clips."""
    test = data.split("test")
    if getattr(protocol, "filter_speakers", False) and "speaker" in test.columns:
        test = test[test["speaker"].astype(str).isin(tuple(protocol.test_speakers))]
    listed = listed_clips(protocol, clips)
    if listed is not None:
        test = test[test["clip_id"].astype(str).isin(listed)]
    views = tuple(getattr(protocol, "views", ()) or ())
    if views and "view" in test.columns and test["view"].isin(views).any():
        test = test[test["view"].isin(views)]
    levels = tuple(getattr(protocol, "levels", ()) or ())
    if levels and "level" in test.columns:  # neutral has level 1 only: it is always kept
        test = test[test["level"].isin(levels) | (test["emotion"] == "neutral")]
    rows = sorted(test.to_dict("records"), key=lambda r: str(r["clip_id"]))
    per = getattr(protocol, "clips_per_condition", None)
    if per:
        by = tuple(getattr(protocol, "clips_by", ("speaker", "view", "emotion", "level")))
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(tuple(str(r.get(k, "")) for k in by), []).append(r)
        kept = []
        for i, cond in enumerate(sorted(groups)):
            cands = groups[cond]
            if "speaker" not in by:  # rotate the speaker over conditions: all speakers represented
                speakers = sorted({str(r["speaker"]) for r in cands})
                first = speakers[i % len(speakers)]
                cands = [r for r in cands if str(r["speaker"]) == first] + \
                        [r for r in cands if str(r["speaker"]) != first]
            kept += cands[: int(per)]
        rows = sorted(kept, key=lambda r: str(r["clip_id"]))
    return rows


def listed_clips(protocol: Any, clips: Any = None) -> tuple[str, ...] | None:
    """Clip ids of the clip list ``clips`` (a file, or a sequence of ids/EAT names), else of the
    protocol's ``clip_list``; None when there is none."""
    from lesbench.metrics.protocol import canonical_clip_id, read_clip_list

    source = clips if clips is not None else getattr(protocol, "clip_list", None)
    if source is None:
        return None
    if isinstance(source, (str, Path)):
        return read_clip_list(source)
    return tuple(canonical_clip_id(str(c)) or str(c) for c in source)


def choose_source(data: Any, row: dict[str, Any]) -> str:
    """The clip whose first crop frame is the source image of test clip ``row``."""
    clips = data.clips
    same = clips[(clips["speaker"] == row["speaker"]) & (clips["emotion"] == "neutral")]
    if "view" in clips.columns and (same["view"] == row.get("view")).any():
        same = same[same["view"] == row.get("view")]
    ids = sorted(str(c) for c in same["clip_id"])
    others = [c for c in ids if c != row["clip_id"]]
    if others:
        return others[0]
    if ids:
        return ids[0]
    return str(row["clip_id"])  # no neutral clip of this speaker: the clip's own first frame


# ----------------------------------------------------------------------------------- scoring

def default_scorer(pred: dict[str, Path], ref: dict[str, Path], protocol: Any, metrics: list[str] | None,
                   clips: list[dict[str, Any]], device: str | None = None,
                   cache_dir: str | Path | None = None,
                   metric_options: dict[str, dict[str, Any]] | None = None,
                   workers: int | None = None, scheduler: str | None = None) -> dict[str, dict[str, Any]]:
    """Score with :func:`lesbench.metrics.score.score` and normalise its report.

    ``cache_dir``: cache of the reference clips' face tables and Inception features, shared by
    every method evaluated into the same results folder (tracked/embedded once, not per method).
    ``metric_options``: extra constructor arguments per metric name, passed to ``score``.
    ``workers`` / ``scheduler``: score the clips on Dask workers (see ``score``).

    The reference is the prepared data set itself (its crops, with emotion and level from
    ``clips.parquet``) so that emotion/AU metrics know each clip's target.
    """
    from lesbench.metrics.score import score

    ref_root: Any = ref
    parents = {Path(p).resolve().parent.parent for p in ref.values()}
    if len(parents) == 1 and (next(iter(parents)) / schema.DATASET_JSON).is_file():
        ref_root = next(iter(parents))
    # a metric that cannot run here (weights or package missing, found at construction or
    # while scoring) comes back from score() marked unavailable with its reason
    report = score(pred, ref=ref_root, metrics=list(metrics) if metrics else None, protocol=protocol, device=device,
                   cache_dir=cache_dir, metric_options=metric_options, clips=list(pred),
                   workers=workers, scheduler=scheduler)
    return normalise_report(report)


#: (metric, output key) -> leaderboard name for multi-output metrics.
OUTPUT_NAMES: dict[tuple[str, str], str] = {
    ("lmd", "m_lmd"): "m-lmd", ("lmd", "f_lmd"): "f-lmd",
    ("lse", "lse_c"): "lse-c", ("lse", "lse_d"): "lse-d", ("lse", "offset"): "lse-offset",
    ("sync", "offset"): "av-offset", ("sync", "abs_offset"): "av-abs-offset", ("sync", "confidence"): "av-sync",
    ("au", "accuracy"): "au-acc", ("au", "f1"): "au-f1", ("au", "mae"): "au-mae",
    ("emotion", "acc_emo"): "emotion-acc", ("emotion", "acc_emo_frame"): "emotion-acc-frame",
    ("controllability", "spearman"): "level-spearman",
}


def output_name(metric: str, key: str) -> str:
    """Leaderboard name of output ``key`` of ``metric`` (``lmd``/``m_lmd`` -> ``m-lmd``)."""
    if key in ("", metric):
        return metric
    return OUTPUT_NAMES.get((metric, key), f"{metric}-{key}".replace("_", "-"))


def _direction(metric: str, key: str, default: bool | None) -> bool | None:
    try:
        from lesbench.metrics.score import _better  # the metric suite's own per-output directions
    except ImportError:
        return default
    return _better(metric, key, default)


def normalise_report(report: Any) -> dict[str, dict[str, Any]]:
    """Turn a ScoreReport (or a mapping/list of :class:`MetricResult`) into name -> record.

    Multi-output metrics become one record per output (:func:`output_name`); counts
    (``n_*``) and non-numeric outputs are left out.
    """
    results = getattr(report, "results", report)
    items = list(results.values()) if isinstance(results, dict) else list(results)
    out: dict[str, dict[str, Any]] = {}
    for r in items:
        name = str(getattr(r, "name"))
        value = getattr(r, "value", None)
        unavailable = getattr(r, "unavailable", None)
        hib = getattr(r, "higher_is_better", None)
        base = {"version": str(getattr(r, "version", "")), "weights": dict(getattr(r, "weights", {}) or {})}
        per_clip = getattr(r, "per_clip", {}) or {}
        counts = dict(getattr(r, "counts", {}) or {})
        # clips with a value (a multi-output metric's per-clip values are dicts, skipped clips too)
        n = counts.get("n_clips") or sum(1 for v in per_clip.values()
                                         if v is not None and not (isinstance(v, dict) and "skipped" in v)) or None
        skipped = dict(getattr(r, "skipped", {}) or {})
        if counts or skipped:  # counts are sums (never a CI); they go with every output
            base["counts"] = {**counts, **({"skipped": skipped} if skipped else {})}
        if unavailable or value is None:
            out[name] = {**base, "higher_is_better": hib, "unavailable": str(unavailable or "no value")}
            continue
        ci = getattr(r, "ci95", None)
        values = value if isinstance(value, dict) else {"": value}
        for key, v in values.items():
            if key.startswith("n_") or isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
                continue
            if not np.isfinite(float(v)):
                continue
            sub_ci = ci.get(key) if isinstance(ci, dict) else (ci if key == "" else None)
            out[output_name(name, key)] = {
                **base, "value": float(v), "ci95": [float(sub_ci[0]), float(sub_ci[1])] if sub_ci else None,
                "higher_is_better": _direction(name, key, hib), "n": n, "metric": name, "output": key or name,
            }
    return out


def describe_metric_options(metric_options: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """JSON-able record of ``metric_options``; an option naming a file records its path and
    sha256, and an emotion classifier also its name, features and held-out accuracy (from its
    card). A file option that does not exist raises :class:`LesbenchError` naming it, before
    anything is generated."""
    out: dict[str, dict[str, Any]] = {}
    for metric, opts in (metric_options or {}).items():
        if not isinstance(opts, dict):
            raise LesbenchError(f"metric_options[{metric!r}] must be a mapping of constructor arguments, "
                                f"got {type(opts).__name__}")
        rec: dict[str, Any] = {}
        for key, value in opts.items():
            if metric == "emotion" and key == "classifier" and isinstance(value, (str, Path)):
                rec[key] = describe_emotion_classifier(value)
            elif isinstance(value, Path) or (isinstance(value, str) and Path(value).suffix and Path(value).is_file()):
                path = Path(value)
                if not path.is_file():
                    raise LesbenchError(f"{path}: file given for metric {metric!r} option {key!r} does not exist")
                rec[key] = {"path": str(path.resolve()), "sha256": _sha256_file(path)}
            else:
                rec[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        out[str(metric)] = rec
    return out


def describe_emotion_classifier(classifier: str | Path) -> dict[str, Any]:
    """Name, path, sha256, features and held-out accuracy of a ``train-classifier`` file (the
    FER2013 default names -> ``{"name": ...}`` only; its sha256 is in the emotion scores' weights)."""
    from lesbench.metrics.emotion import _FER_NAMES

    if str(classifier) in _FER_NAMES:
        return {"name": str(classifier)}
    path = Path(classifier)
    if not path.is_file():
        raise LesbenchError(f"{path}: emotion classifier file not found (train one with lesbench train-classifier)")
    card: dict[str, Any] = {}
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            card = json.loads((f.metadata() or {}).get("card", "{}"))
    except Exception as exc:  # noqa: BLE001 - the metric reports a file it cannot load; here it is provenance
        raise LesbenchError(f"{path}: not a readable emotion classifier ({type(exc).__name__}: {exc})") from exc
    held = card.get("heldout", {}) if isinstance(card, dict) else {}
    return {"name": card.get("name", path.stem), "path": str(path.resolve()), "sha256": _sha256_file(path),
            "features": card.get("features"), "trained_on": (card.get("dataset") or {}).get("path"),
            "heldout_clip_accuracy": held.get("clip_accuracy"), "heldout_speakers": held.get("speakers")}


# ----------------------------------------------------------------------------------- main

def evaluate(
    method: str,
    data: str | Path,
    protocol: str | Path = "mead-v1",
    out: str | Path | None = "lesbench-results",
    workdir: str | Path | None = None,
    seed: int = 0,
    device: str | None = None,
    metrics: list[str] | None = None,
    method_options: dict[str, Any] | None = None,
    scorer: Scorer | None = None,
    max_clips: int | None = None,
    progress: Callable[[str], None] | None = None,
    les: str | Path | None = None,
    control: Any = True,
    metric_options: dict[str, dict[str, Any]] | None = None,
    clips: str | Path | list[str] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
) -> EvaluationResult:
    """Generate the test split with ``method`` and score it; write the results file to ``out``.

    ``method``: a name in :data:`lesbench.registry.METHODS`. ``method_options`` go to the
    method's constructor (``checkpoint`` for LES-Talker; ``videos``, ``card``, ``scheme``... for
    ``external``). ``workdir`` holds generated videos and caches (default
    ``{out}/work/{method}``). ``max_clips`` evaluates only the first N test clips (for smoke
    runs; recorded). ``scorer`` replaces the metric suite (tests). ``control``: also run the
    controllability sweep (:mod:`lesbench.sweep`; a ``SweepConfig`` runs it with that config) for
    methods with ``controllable``, when ``metrics`` is None or names ``controllability``, measured
    in the LES ``les`` (default: the LES recorded in the method's checkpoint).
    ``metric_options``: extra constructor arguments per metric, e.g. ``{"emotion": {"classifier":
    "clf.safetensors"}}`` (a ``lesbench train-classifier`` file); recorded in the results file
    under ``metric_options`` (files with their sha256) and passed to the scorer — to a custom
    ``scorer`` as the keyword ``metric_options`` (only when given).
    ``clips``: evaluate only these test clips (a text file with one clip id or EAT-style name
    per line, or a list); default: the protocol's ``clip_list``, else every test clip. Listed
    clips that are not test clips are recorded under ``dataset.clip_list.missing``.
    """
    from lesbench.baselines.base import Method, PreparedData
    from lesbench.io import probe, write_video
    from lesbench.registry import METHODS

    say = progress or (lambda _msg: None)
    started = time.time()
    proto, proto_summary = _load_protocol(protocol)
    metric_record = describe_metric_options(metric_options)  # bad classifier file: fail before generating
    options = dict(method_options or {})
    cls = METHODS.get(method)
    instance: Method = cls(seed=seed, device=device, **options)
    card = getattr(instance, "card_key", None) or cls.card or method
    result_name = card if method == "external" else method
    # names from the protocol file and the method card become folders under ``out``: checked
    # here, before anything is generated, so a bad name writes nothing anywhere
    safe_name(result_name, what="method name", source="method card" if method == "external" else None)
    safe_name(proto_summary["name"], what="protocol name", source=proto_summary["source"] or None)
    base_out = Path(out) if out is not None else None
    if workdir:
        workdir = Path(workdir)
    elif base_out is not None:
        workdir = safe_join(base_out / "work", result_name, what="method name")
    else:  # no output folder: generated videos go to a temporary folder, never the cwd
        import tempfile

        workdir = Path(tempfile.mkdtemp(prefix=f"lesbench-{result_name}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    prepared = PreparedData.open(data, cache_dir=workdir.parent / "cache")
    dataset_name = dataset_label(prepared.info, data)
    dataset_folder = safe_name(dataset_name, what="data set name", source=prepared.paths["dataset"], replace=True)
    for clip_id in prepared.clips["clip_id"]:  # file names of videos and caches, under workdir
        safe_name(f"{clip_id}.mp4", what="clip id", source=prepared.paths["clips"])

    _set_seed(seed)
    instance.setup(prepared)
    rows = test_clips(prepared, proto, clips)
    listed = listed_clips(proto, clips)
    clip_list_record: dict[str, Any] | None = None
    if listed is not None:
        found = {str(r["clip_id"]) for r in rows}
        source = clips if clips is not None else proto.clip_list
        clip_list_record = {
            "path": str(source) if isinstance(source, (str, Path)) else None,
            "sha256": _sha256_file(Path(source)) if isinstance(source, (str, Path)) else None,
            "n_listed": len(listed), "missing": [c for c in listed if c not in found]}
    if not rows:
        raise LesbenchError(f"{prepared.paths['clips']}: no usable test clip (split == 'test', status ok"
                            + (", in the clip list" if listed is not None else "") + ")")
    if max_clips is not None:
        rows = rows[: int(max_clips)]

    video_dir = workdir / "videos"
    video_dir.mkdir(parents=True, exist_ok=True)
    pred: dict[str, Path] = {}
    ref: dict[str, Path] = {}
    sources: dict[str, str] = {}
    failures: dict[str, str] = {}
    gen_seconds = 0.0
    skip = set(getattr(getattr(instance, "match", None), "missing", []) or [])
    # methods serving existing videos keep their own length (paired by the scorer) and may be
    # scored from their files directly; lengths that differ are recorded
    own_length = bool(getattr(instance, "keeps_own_length", False))
    lengths: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        clip_id = str(row["clip_id"])
        if clip_id in skip:
            failures[clip_id] = "no generated video for this test clip"
            continue
        try:
            crop = prepared.crop_path(clip_id)
            info = probe(crop)
            n_frames = int(info.n_frames)
            src_id = choose_source(prepared, row)
            request_audio = prepared.read_audio(clip_id)
            from lesbench.baselines.base import GenerationRequest

            req = GenerationRequest(
                clip_id=clip_id, speaker=str(row["speaker"]), view=str(row.get("view", "front")),
                emotion=str(row["emotion"]), level=int(row["level"]), sentence=str(row.get("sentence", "")),
                n_frames=n_frames, fps=float(schema.FPS), source_image=prepared.read_first_frame(src_id),
                source_clip_id=src_id, audio=request_audio, sample_rate=schema.SAMPLE_RATE,
            )
            t0 = time.time()
            direct = instance.video_file(req) if own_length and hasattr(instance, "video_file") else None
            if direct is not None:  # scored from the method's own file: no re-encoding
                path, n_gen = Path(direct), int(probe(direct).n_frames)
            else:
                frames = np.asarray(instance.generate(req))
                n_gen = int(frames.shape[0]) if frames.ndim == 4 else -1
                if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or n_gen < 1 \
                        or (n_gen != n_frames and not own_length):
                    raise LesbenchError(
                        f"{method} returned {frames.dtype} {frames.shape}; expected uint8 ({n_frames}, H, W, 3)")
                path = write_video(video_dir / f"{clip_id}.mp4", frames, fps=schema.FPS, audio=request_audio,
                                   sr=schema.SAMPLE_RATE)
            gen_seconds += time.time() - t0
            if n_gen != n_frames:
                lengths[clip_id] = [n_gen, n_frames]
            pred[clip_id] = path
            ref[clip_id] = crop
            sources[clip_id] = src_id
            say(f"[{i + 1}/{len(rows)}] {clip_id}: generated {n_gen} frames"
                + (f" (reference {n_frames})" if n_gen != n_frames else ""))
        except Exception as exc:  # one bad clip never stops the run; it is recorded
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures[clip_id] = f"{type(exc).__name__}: {exc}"
            say(f"[{i + 1}/{len(rows)}] {clip_id}: FAILED ({exc})")
    if not pred:
        raise LesbenchError(f"{method}: every test clip failed; first error: {next(iter(failures.values()), '?')}")

    say(f"scoring {len(pred)} clips with protocol {proto_summary['id']}")
    scorer_kwargs: dict[str, Any] = {"metric_options": dict(metric_options)} if metric_options else {}
    if scorer is None:  # reference-clip features cached next to the methods' work folders
        cluster = {k: v for k, v in (("workers", workers), ("scheduler", scheduler)) if v is not None}
        scorer = functools.partial(default_scorer, cache_dir=workdir.parent / "cache" / "score", **cluster)
    scored_rows = [r for r in rows if str(r["clip_id"]) in pred]
    # a protocol may name its own default metrics (eat-mead: those EAT's code reports)
    metrics = list(metrics) if metrics else (list(getattr(proto, "default_metrics", ()) or ()) or None)
    scores = scorer(pred, ref, proto, metrics, scored_rows, device, **scorer_kwargs)
    values = {k: v for k, v in scores.items() if "unavailable" not in v}
    unavailable = {k: v["unavailable"] for k, v in scores.items() if "unavailable" in v}
    ctrl_record: dict[str, Any] = {"applicable": None, "reason": "not requested"}
    if control and (not metrics or "controllability" in metrics):
        from lesbench.sweep import evaluate_controllability

        say("controllability sweep")
        unavailable.pop("controllability", None)  # the sweep measures it, not the clip scorer
        c_scores, c_unavailable, ctrl_record = evaluate_controllability(
            instance, prepared, les=les, bootstrap_n=int(getattr(proto, "bootstrap_n", 1000)),
            bootstrap_seed=int(getattr(proto, "bootstrap_seed", 0)), progress=say,
            config=None if isinstance(control, bool) else control)
        values.update(c_scores)
        unavailable.update(c_unavailable)

    prov = instance.provenance()
    paths = prepared.paths
    record: dict[str, Any] = {
        "format_version": "1",
        "method": result_name,
        "card": card,
        "benchmark": proto_summary["name"],
        "protocol": proto_summary,
        "dataset": {
            "name": dataset_name,
            "root": str(Path(data).resolve()),
            "dataset_json_sha256": _sha256_file(paths["dataset"]),
            "clips_parquet_sha256": _sha256_file(paths["clips"]),
            "n_test_clips": len(rows),
            "max_clips": max_clips,
            "clip_list": clip_list_record,
        },
        "scores": dict(sorted(values.items())),
        "unavailable": dict(sorted(unavailable.items())),
        "metric_options": metric_record,
        "generation": {
            "method": method,
            "seed": int(seed),
            "revision": prov.get("revision"),
            "checkpoint": prov.get("checkpoint"),
            "checkpoint_sha256": prov.get("checkpoint_sha256"),
            "provenance": prov,
            "n_generated": len(pred),
            "failures": dict(sorted(failures.items())),
            # clip -> [generated, reference] frames where they differ (paired by the protocol)
            "lengths_differ": dict(sorted(lengths.items())),
            "sources": dict(sorted(sources.items())),
            "source_rule": "first frame of the same speaker's first other neutral clip (same view)",
            "seconds_generating": round(gen_seconds, 3),
        },
        "controllability": ctrl_record,
        "environment": {
            "lesbench_version": __version__,
            "git_revision": git_revision(),
            "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            "hardware": hardware_info(device),
            "seconds_total": round(time.time() - started, 3),
        },
    }
    from lesbench.leaderboard import validate_result

    out_path = None
    if base_out is not None:
        out_path = safe_join(base_out, proto_summary["name"], dataset_folder, f"{result_name}.json")
        validate_result(record, out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
        tmp.replace(out_path)
    else:
        validate_result(record)
    return EvaluationResult(record=record, path=out_path, videos=pred, failures=failures)
