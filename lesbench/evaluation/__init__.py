"""``lesbench evaluate``: run one method on a prepared data set's test split and score it.

For every test clip (``split == "test"``, status ok, in the protocol's views):

- source image = first frame of the aligned crop of the same speaker's neutral clip (same view,
  first by clip id, a different clip than the target when there is one) — the usual one-shot
  setting; recorded per clip;
- audio = the test clip's audio (16 kHz mono, from its crop video), emotion and level = the
  test clip's;
- the method generates ``n_frames`` = the ground-truth crop's frame count at 25 fps, written
  to ``{workdir}/videos/{method}/{clip_id}.mp4`` with the audio muxed; a method that serves
  existing files (``keeps_own_length``, e.g. ``external``) keeps each file's own length (the
  scorer pairs frames by the protocol's ``linspace`` rule, as it does for every paired metric)
  and, when a file needs no resizing, is scored from that file directly (no lossy re-encoding);
- the generated clips are scored against the ground-truth crops with the protocol: evaluate
  passes its own clips (clip id, generated video, crop, emotion, level) to
  :func:`lesbench.metrics.score.score_items`.

One results file per method and benchmark is written (format: :data:`lesbench.leaderboard.
RESULT_REQUIRED`; output names and directions as the metrics declare them): scores with 95%
confidence intervals and metric versions, the protocol (name, version, sha256 of its
definition), the data set (name, sha256 of dataset.json and clips.parquet), the method's
revision / checkpoint sha256 / seed / options, per-clip failures, and the environment (lesbench
version, git revision, date, hardware). One failing clip is recorded and skipped, never fatal.
A method names its own results file (:attr:`~lesbench.baselines.base.Method.result_name`:
``external`` files its videos under the card of the method that made them).

    res = evaluate("static", "prepared/", out="results/")
    res.path          # results/mead-v1/<dataset>/static.json
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lesbench import __version__, schema
from lesbench.baselines.base import GenerationRequest, Method, PreparedData
from lesbench.errors import LesbenchError
from lesbench.io import probe, write_video
from lesbench.leaderboard import card_keys, validate_result
from lesbench.metrics.discover import ScoreItem
from lesbench.metrics.protocol import Protocol, load_protocol
from lesbench.metrics.score import score_items
from lesbench.evaluation.provenance import git_revision, hardware_info, set_seed, sha256_file
from lesbench.registry import METHODS
from lesbench.evaluation.results import describe_metric_options, instrument_record, normalise_report
from lesbench.sanitize import safe_join, safe_name
from lesbench.evaluation.selection import choose_source, dataset_label, listed_clips, test_clips
from lesbench.sweep.yardstick import evaluate_controllability

#: ``scorer(items, protocol, metrics, device) -> {output name: record}`` (plus the keyword
#: ``metric_options`` when there are any); ``items`` are :class:`ScoreItem` (clip id, generated
#: video, ground-truth crop, emotion, level); a record is a dict with ``value``, ``ci95`` (or
#: None), ``version``, ``higher_is_better``, ``n``, or ``unavailable`` (a reason) instead of ``value``.
Scorer = Callable[..., dict[str, dict[str, Any]]]


@dataclass
class EvaluationResult:
    record: dict[str, Any]
    path: Path | None
    videos: dict[str, Path] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


@dataclass
class _Generated:
    """What generating the test clips gave: the items to score and what to record."""

    items: list[ScoreItem] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    #: clip -> [generated, reference] frames where they differ (paired by the protocol)
    lengths: dict[str, list[int]] = field(default_factory=dict)
    seconds: float = 0.0


def _load_protocol(protocol: str | Path) -> tuple[Protocol, dict[str, Any]]:
    """The protocol and its JSON-able summary (name, version, id, sha256 of its content, source)."""
    p = load_protocol(str(protocol))
    digest = hashlib.sha256(json.dumps(p.raw or {}, sort_keys=True, default=str).encode()).hexdigest()
    return p, {"name": p.name, "version": str(p.version), "id": p.id, "sha256": digest, "source": str(p.source or "")}


def default_scorer(items: list[ScoreItem], protocol: Protocol, metrics: list[str] | None, device: str | None = None,
                   cache_dir: str | Path | None = None, metric_options: dict[str, dict[str, Any]] | None = None,
                   workers: int | None = None, scheduler: str | None = None,
                   timings: dict[str, float] | None = None) -> dict[str, dict[str, Any]]:
    """Score ``items`` with :func:`lesbench.metrics.score.score_items`; one record per output.

    ``cache_dir``: cache of the reference clips' face tables and Inception features, shared by
    every method evaluated into the same results folder (tracked/embedded once, not per method).
    ``metric_options``: extra constructor arguments per metric name. ``workers`` / ``scheduler``:
    score the clips on Dask workers. A metric that cannot run here (weights or package missing,
    found at construction or while scoring) comes back marked unavailable with its reason.
    ``timings``: receives the seconds per scoring stage (:func:`score_items`).
    """
    report = score_items(items, metrics=list(metrics) if metrics else None, protocol=protocol, device=device,
                         cache_dir=cache_dir, metric_options=metric_options, workers=workers, scheduler=scheduler,
                         timings=timings)
    return normalise_report(report)


def _generate(instance: Method, prepared: PreparedData, rows: list[dict[str, Any]], video_dir: Path,
              say: Callable[[str], None]) -> _Generated:
    """Ask ``instance`` for every test clip of ``rows``; one failing clip is recorded, never fatal.

    A method that :attr:`~Method.keeps_own_length` keeps each output's frame count (paired with the
    reference by the scorer) and is scored from its own file when it gives one."""
    out = _Generated()
    skip = instance.missing_clips()
    own_length = instance.keeps_own_length
    for i, row in enumerate(rows):
        clip_id = str(row["clip_id"])
        if clip_id in skip:
            out.failures[clip_id] = "no generated video for this test clip"
            continue
        try:
            crop = prepared.crop_path(clip_id)
            n_frames = int(probe(crop).n_frames)
            src_id = choose_source(prepared, row)
            request_audio = prepared.read_audio(clip_id)
            req = GenerationRequest(
                clip_id=clip_id, speaker=str(row["speaker"]), view=str(row.get("view", "front")),
                emotion=str(row["emotion"]), level=int(row["level"]), sentence=str(row.get("sentence", "")),
                n_frames=n_frames, fps=float(schema.FPS), source_image=prepared.read_first_frame(src_id),
                source_clip_id=src_id, audio=request_audio, sample_rate=schema.SAMPLE_RATE,
            )
            t0 = time.time()
            direct = instance.video_file(req) if own_length else None
            if direct is not None:  # scored from the method's own file: no re-encoding
                path, n_gen = Path(direct), int(probe(direct).n_frames)
            else:
                frames = np.asarray(instance.generate(req))
                n_gen = int(frames.shape[0]) if frames.ndim == 4 else -1
                if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or n_gen < 1 \
                        or (n_gen != n_frames and not own_length):
                    raise LesbenchError(
                        f"{instance.name} returned {frames.dtype} {frames.shape}; expected uint8 ({n_frames}, H, W, 3)")
                path = write_video(video_dir / f"{clip_id}.mp4", frames, fps=schema.FPS, audio=request_audio,
                                   sr=schema.SAMPLE_RATE)
            out.seconds += time.time() - t0
            if n_gen != n_frames:
                out.lengths[clip_id] = [n_gen, n_frames]
            out.items.append(ScoreItem(clip_id, Path(path), crop, row.get("emotion"),
                                       None if row.get("level") is None else int(row["level"])))
            out.sources[clip_id] = src_id
            say(f"[{i + 1}/{len(rows)}] {clip_id}: generated {n_gen} frames"
                + (f" (reference {n_frames})" if n_gen != n_frames else ""))
        except Exception as exc:  # one bad clip never stops the run; it is recorded
            if isinstance(exc, KeyboardInterrupt):
                raise
            out.failures[clip_id] = f"{type(exc).__name__}: {exc}"
            say(f"[{i + 1}/{len(rows)}] {clip_id}: FAILED ({exc})")
    return out


def _clip_list_record(proto: Protocol, clips: Any, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The clip list used (``clips``, else the protocol's): path, sha256, listed, missing."""
    listed = listed_clips(proto, clips)
    if listed is None:
        return None
    found = {str(r["clip_id"]) for r in rows}
    source = clips if clips is not None else proto.clip_list
    return {"path": str(source) if isinstance(source, (str, Path)) else None,
            "sha256": sha256_file(Path(source)) if isinstance(source, (str, Path)) else None,
            "n_listed": len(listed), "missing": [c for c in listed if c not in found]}


def _write_record(record: dict[str, Any], path: Path) -> None:
    validate_result(record, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


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
    say = progress or (lambda _msg: None)
    started = time.time()
    proto, proto_summary = _load_protocol(protocol)
    metric_record = describe_metric_options(metric_options)  # bad classifier file: fail before generating
    instance: Method = METHODS.get(method)(seed=seed, device=device, **dict(method_options or {}))
    instance.check(card_keys())
    card, result_name = instance.card_key, instance.result_name
    # names from the protocol file and the method card become folders under ``out``: checked
    # here, before anything is generated, so a bad name writes nothing anywhere
    safe_name(result_name, what="method name", source="method card" if result_name != method else None)
    safe_name(proto_summary["name"], what="protocol name", source=proto_summary["source"] or None)
    base_out = Path(out) if out is not None else None
    if workdir:
        workdir = Path(workdir)
    elif base_out is not None:
        workdir = safe_join(base_out / "work", result_name, what="method name")
    else:  # no output folder: generated videos go to a temporary folder, never the cwd
        workdir = Path(tempfile.mkdtemp(prefix=f"lesbench-{result_name}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    prepared = PreparedData.open(data, cache_dir=workdir.parent / "cache")
    dataset_name = dataset_label(prepared.info, data)
    dataset_folder = safe_name(dataset_name, what="data set name", source=prepared.paths["dataset"], replace=True)
    for clip_id in prepared.clips["clip_id"]:  # file names of videos and caches, under workdir
        safe_name(f"{clip_id}.mp4", what="clip id", source=prepared.paths["clips"])

    set_seed(seed)
    instance.setup(prepared)
    rows = test_clips(prepared, proto, clips)
    clip_list_record = _clip_list_record(proto, clips, rows)
    if not rows:
        raise LesbenchError(f"{prepared.paths['clips']}: no usable test clip (split == 'test', status ok"
                            + (", in the clip list" if clip_list_record is not None else "") + ")")
    if max_clips is not None:
        rows = rows[: int(max_clips)]

    video_dir = workdir / "videos"
    video_dir.mkdir(parents=True, exist_ok=True)
    gen = _generate(instance, prepared, rows, video_dir, say)
    if not gen.items:
        raise LesbenchError(f"{method}: every test clip failed; first error: {next(iter(gen.failures.values()), '?')}")

    say(f"scoring {len(gen.items)} clips with protocol {proto_summary['id']}")
    scorer_kwargs: dict[str, Any] = {"metric_options": dict(metric_options)} if metric_options else {}
    stages: dict[str, float] = {}  # where the scoring time went (default scorer only)
    if scorer is None:  # reference-clip features cached next to the methods' work folders
        cluster = {k: v for k, v in (("workers", workers), ("scheduler", scheduler)) if v is not None}
        scorer = functools.partial(default_scorer, cache_dir=workdir.parent / "cache" / "score", timings=stages,
                                   **cluster)
    # a protocol may name its own default metrics (eat-mead: those EAT's code reports)
    metrics = list(metrics) if metrics else (list(proto.default_metrics) or None)
    t_score = time.time()
    scores = scorer(gen.items, proto, metrics, device, **scorer_kwargs)
    seconds_scoring = time.time() - t_score
    seconds_sweep = 0.0
    values = {k: v for k, v in scores.items() if "unavailable" not in v}
    unavailable = {k: v["unavailable"] for k, v in scores.items() if "unavailable" in v}
    ctrl_record: dict[str, Any] = {"applicable": None, "reason": "not requested"}
    if control and (not metrics or "controllability" in metrics):
        say("controllability sweep")
        t_sweep = time.time()
        # The clip scorer's controllability metric (projections of the test clips' AUs at their
        # MEAD levels, given LES directions) is not the sweep (the method asked for LES levels and
        # unit edits): the sweep's outputs, under the same declared names, are what is reported.
        unavailable.pop("controllability", None)
        c_scores, c_unavailable, ctrl_record = evaluate_controllability(
            instance, prepared, les=les, bootstrap_n=proto.bootstrap_n, bootstrap_seed=proto.bootstrap_seed,
            progress=say, config=None if isinstance(control, bool) else control)
        values.update(c_scores)
        unavailable.update(c_unavailable)
        seconds_sweep = time.time() - t_sweep

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
            "dataset_json_sha256": sha256_file(paths["dataset"]),
            "clips_parquet_sha256": sha256_file(paths["clips"]),
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
            "n_generated": len(gen.items),
            "failures": dict(sorted(gen.failures.items())),
            # clip -> [generated, reference] frames where they differ (paired by the protocol)
            "lengths_differ": dict(sorted(gen.lengths.items())),
            "sources": dict(sorted(gen.sources.items())),
            "source_rule": "first frame of the same speaker's first other neutral clip (same view)",
            "seconds_generating": round(gen.seconds, 3),
        },
        "controllability": ctrl_record,
        "environment": {
            "lesbench_version": __version__,
            "git_revision": git_revision(),
            "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            "hardware": hardware_info(device),
            "seconds_total": round(time.time() - started, 3),
            # where the time went: wall seconds per step, and per scoring stage summed over clips
            # (on a cluster: worker seconds); timing only, no score depends on it
            "seconds": {"generating": round(gen.seconds, 3), "scoring": round(seconds_scoring, 3),
                        "sweep": round(seconds_sweep, 3),
                        "scoring_stages": {k: round(v, 3) for k, v in sorted(stages.items())}},
        },
    }
    # every emotion instrument's card, and a caveat where the classifier reads what the method trains on
    record.update(instrument_record(record))
    out_path = None
    if base_out is not None:
        out_path = safe_join(base_out, proto_summary["name"], dataset_folder, f"{result_name}.json")
        _write_record(record, out_path)
    else:
        validate_result(record)
    videos = {it.key: it.pred for it in gen.items}
    return EvaluationResult(record=record, path=out_path, videos=videos, failures=gen.failures)
