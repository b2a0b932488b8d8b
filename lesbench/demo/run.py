"""``lesbench demo``: the whole product end to end on the synthetic demo data set.

    generate (MEAD layout) -> prepare (Dask, Parquet) -> LES build -> train LES-Talker and its
    one-hot / audio-only variants -> train the demo's emotion classifier -> generate edited
    clips -> evaluate every in-tree method -> leaderboard (Markdown printed; LaTeX + .bib + CSV
    + PNG written)

Emotion accuracy on the demo uses an 8-class AU classifier trained on the demo's own train
split (``lesbench train-classifier``, :mod:`lesbench.metrics.emotion_classifier`) instead of
the FER2013 default, which does not recognise the synthetic faces; results name it (name and
sha256).

Every step writes under ``out`` and is skipped when its output is already complete, so a demo
that was interrupted continues where it stopped (``--force`` redoes everything).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from lesbench import evaluation, io, schema
from lesbench.demo.reference import RESULTS_SUBDIR
from lesbench.demo.generate import generate_demo
from lesbench.leaderboard import build_leaderboard, render
from lesbench.les.report import report_text, write_report
from lesbench.les.space import LinearEmotionSpace, build_les
from lesbench.metrics.emotion_classifier import train_classifier
from lesbench.model.checks import edit_checks
from lesbench.model.generate import Generator, generate
from lesbench.model.runs import checkpoint_sha256
from lesbench.model.train import train
from lesbench.pipelines.prepare import prepare
from lesbench.prepared import PreparedDataset
from lesbench.records import json_safe
from lesbench.sanitize import safe_join
from lesbench.threads import torch_threads

STEPS: tuple[str, ...] = ("data", "prepare", "les", "train", "classifier", "edit", "evaluate", "leaderboard")

#: Methods evaluated by the demo, in table order; the trained ones name their run folder.
DEMO_METHODS: tuple[tuple[str, str | None], ...] = (
    ("ground-truth", None),
    ("static", None),
    ("renderer-oracle", None),
    ("retrieval", None),
    ("les-talker", "les-talker"),
    ("one-hot", "one-hot"),
    ("audio-only", "audio-only"),
)

#: The demo's protocol: mead-v1's metrics and crops on 8 test clips, sparser FID/CSIM frames
#: (metrics/protocols/demo-v1.yaml); its results are labelled data set ``lesbench-demo``.
DEMO_PROTOCOL = "demo-v1"

#: torch CPU threads while the demo evaluates (the 2-core machines its reference comes from).
EVALUATE_TORCH_THREADS = 2

#: Training condition of each trained run (same code, same config otherwise).
TRAINED_VARIANTS: dict[str, str] = {"les-talker": "les", "one-hot": "onehot", "audio-only": "audio-only"}


@dataclass
class DemoRun:
    out: Path
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def mead(self) -> Path:
        return self.out / "mead"

    @property
    def prepared(self) -> Path:
        return self.out / "prepared"

    @property
    def les(self) -> Path:
        return self.out / "les"

    def run_dir(self, name: str) -> Path:
        return self.out / "runs" / name

    @property
    def classifier(self) -> Path:
        """The demo's emotion classifier (``.safetensors``; its card ``.json`` beside it)."""
        return self.out / "classifier" / "emotion-au.safetensors"

    @property
    def edits(self) -> Path:
        return self.out / "edits"

    @property
    def results(self) -> Path:
        return self.out / "results"

    @property
    def leaderboard(self) -> Path:
        return self.out / "leaderboard"


def run_demo(
    out: str | Path = "demo-out",
    *,
    seed: int = 0,
    tiny: bool = False,
    workers: int | None = None,
    steps: Sequence[str] = STEPS,
    force: bool = False,
    epochs: int | None = None,
    max_clips: int | None = None,
    log: Callable[[str], None] = print,
) -> DemoRun:
    """Run the demo steps in order into ``out``; returns paths and per-step timings."""
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"unknown demo step(s) {unknown}; steps are {', '.join(STEPS)}")
    run = DemoRun(Path(out).expanduser().resolve())
    run.out.mkdir(parents=True, exist_ok=True)
    for step in STEPS:
        if step not in steps:
            continue
        log(f"\n== lesbench demo: {step} ==")
        t0 = time.perf_counter()
        _STEP_FUNCS[step](run, seed=seed, tiny=tiny, workers=workers, force=force, epochs=epochs,
                          max_clips=max_clips, log=log)
        run.timings[step] = round(time.perf_counter() - t0, 1)
        log(f"-- {step}: {run.timings[step]:.1f} s")
    (run.out / "demo-timings.json").write_text(json.dumps(run.timings, indent=2) + "\n")
    log("\n" + "  ".join(f"{k} {v:.0f}s" for k, v in run.timings.items())
        + f"  (total {sum(run.timings.values()):.0f} s)")
    return run


def _step_data(run: DemoRun, *, seed: int, tiny: bool, workers: int | None, force: bool, log, **_) -> None:
    card = run.mead / "demo.json"
    if card.is_file() and not force:
        meta = json.loads(card.read_text())
        if meta.get("seed") == seed and bool(meta.get("config", {}).get("tiny", tiny)) == tiny:
            log(f"demo data already in {run.mead} (seed {seed}); keeping it")
            return
    summary = generate_demo(run.mead, seed=seed, tiny=tiny, workers=workers, overwrite=True, progress=True)
    log(summary.describe())


def _step_prepare(run: DemoRun, *, workers: int | None, force: bool, log, **_) -> None:
    # prepare() skips clips whose done-record matches, so re-running is cheap.
    summary = prepare(run.mead, run.prepared, dataset="mead", workers=workers, force=force, log=log)
    log(summary.format())


def _step_les(run: DemoRun, *, force: bool, log, **_) -> None:
    if (run.les / "les.json").is_file() and not force:
        log(f"LES already built in {run.les}")
        return
    space = build_les(run.prepared)
    space.save(run.les)
    write_report(space, run.les)
    log(report_text(space))


def _step_train(run: DemoRun, *, seed: int, force: bool, epochs: int | None, log, **_) -> None:
    for name, condition in TRAINED_VARIANTS.items():
        run_dir = run.run_dir(name)
        if (run_dir / "model.safetensors").is_file() and not force:
            log(f"{name}: already trained in {run_dir}")
            continue
        log(f"training {name} (condition={condition})")
        overrides = {"condition": condition, "seed": seed}
        result = train(run.prepared, run_dir, overrides=overrides, les=run.les, epochs=epochs)
        last = result.history[-1] if result.history else {}
        log(f"{name}: {len(result.history)} epochs; last epoch " + ", ".join(
            f"{k}={v:.4g}" for k, v in last.items() if isinstance(v, float)))


def _step_classifier(run: DemoRun, *, seed: int, force: bool, log, **_) -> None:
    """AU-feature emotion classifier on the prepared train split; held-out accuracy logged.

    The training epochs are the classifier's own default (40; a few seconds on 2 cores), not
    the demo's ``epochs``, which is LES-Talker's."""
    card_path = run.classifier.with_suffix(".json")
    if run.classifier.is_file() and card_path.is_file() and not force:
        held = json.loads(card_path.read_text()).get("heldout", {})
        log(f"emotion classifier already trained in {run.classifier} "
            f"(held-out clip accuracy {held.get('clip_accuracy', float('nan')):.3f})")
        return
    result = train_classifier(run.prepared, out=run.classifier, features="au", seed=seed, log=log)
    held = result.card["heldout"]
    log(f"emotion classifier {run.classifier}: held-out clip accuracy {held['clip_accuracy']:.3f} "
        f"on {held['n_clips']} clips of speakers {', '.join(held['speakers'])} "
        f"(frame accuracy {held['frame_accuracy']:.3f}; chance 0.125)")


def _step_edit(run: DemoRun, *, log, **_) -> None:
    """A few edited clips: one test speaker's neutral frame, happy at three levels, angry brows."""
    data = PreparedDataset(run.prepared)
    ok = data.clips()
    ok = ok[ok["split"] == "test"]
    neutral = ok[ok["emotion"] == "neutral"]
    if neutral.empty:
        log("no neutral test clip to edit; skipping")
        return
    row = neutral.iloc[0]
    source = data.crop(row["clip_id"])
    audio = row["audio_path"] or row["video_path"]
    checkpoint = run.run_dir("les-talker")
    gen = Generator(checkpoint)
    known = set(LinearEmotionSpace.load(run.les).emotions)
    requests = [(f"happy_{lv:.2f}", dict(emotion="happy", level=lv)) for lv in (0.33, 0.66, 1.0)
                if "happy" in known]
    brows = next((e for e in ("angry", "surprised", "sad") if e in known), None)
    if brows:
        requests.append((f"{brows}_brows_only", dict(emotion=brows, level=1.0, units=["brows"])))
    if {"happy", "surprised"} <= known:
        requests.append(("happy+surprised", dict(mix={"happy": 0.5, "surprised": 0.5})))
    run.edits.mkdir(parents=True, exist_ok=True)
    for name, kwargs in requests:
        path = safe_join(run.edits, f"{row['speaker']}_{name}.mp4", what="speaker",
                         source=data.path("clips"))
        generate(checkpoint, source, audio, path, generator=gen, **kwargs)
        log(f"wrote {path}")
    _edit_checks(run, gen, source, neutral[neutral["speaker"] == row["speaker"]], log=log)
    gen.close()


def _edit_checks(run: DemoRun, gen, source: Path, clips, *, log) -> None:
    """LES-Talker's acceptance checks on rendered video -> ``edits/checks.json``
    (:func:`lesbench.model.checks.edit_checks`): ~6 s of the speaker's neutral speech."""
    pieces, seconds = [], 0.0
    for _, clip in clips.iterrows():
        samples = io.read_audio_for_video(clip["video_path"], clip["audio_path"] or None, sr=schema.SAMPLE_RATE)
        pieces.append(samples)
        seconds += len(samples) / schema.SAMPLE_RATE
        if seconds >= 6.0:
            break
    speech = np.concatenate(pieces)
    # the sync estimate needs ~3 s of speech (the tiny demo's clips are ~1 s)
    report = edit_checks(gen, source, speech, run.edits / "checks", sync_emotions=None if seconds >= 3.0 else (),
                         log=log)
    if seconds < 3.0:
        report["notes"].append(f"sync: skipped, only {seconds:.1f} s of neutral speech")
    path = run.edits / "checks.json"
    path.write_text(json.dumps(json_safe(report), indent=2) + "\n")
    log(f"acceptance checks on rendered video: {path}")


def _step_evaluate(run: DemoRun, *, seed: int, force: bool, max_clips: int | None, log, **_) -> None:
    metric_options: dict[str, dict] = {}
    if run.classifier.is_file():
        metric_options["emotion"] = {"classifier": str(run.classifier)}
        log(f"emotion accuracy with the demo's classifier {run.classifier}")
    else:
        log(f"no demo emotion classifier ({run.classifier}; step 'classifier'): emotion accuracy uses "
            "the FER2013 default, which does not recognise the synthetic faces")
    for method, run_name in DEMO_METHODS:
        options = {"checkpoint": str(run.run_dir(run_name))} if run_name else {}
        done = _current_results(run, method, run_name)
        if done is not None and not force:
            log(f"{method}: results already in {done}; keeping them")
            continue
        log(f"evaluating {method}")
        # A fixed torch thread count: float32 reductions (Inception for FID, ...) split over
        # another number of threads add up in another order, and the demo's numbers would
        # depend on the machine's core count.
        with torch_threads(EVALUATE_TORCH_THREADS):
            result = evaluation.evaluate(method, run.prepared, protocol=DEMO_PROTOCOL, out=run.results,
                                         seed=seed, method_options=options, max_clips=max_clips,
                                         progress=log, metric_options=metric_options or None)
        log(f"{method}: {result.path}" if hasattr(result, "path") else str(result))


def _current_results(run: DemoRun, method: str, run_name: str | None) -> Path | None:
    """``method``'s results file when it exists and, for a trained method, was measured on the
    checkpoint now in its run folder (same content digest); else None (evaluate again)."""
    path = run.out / RESULTS_SUBDIR / f"{method}.json"
    if not path.is_file():
        return None
    try:
        recorded = (json.loads(path.read_text()).get("generation") or {}).get("checkpoint_sha256")
    except (OSError, ValueError):
        return None
    if run_name is not None:
        ckpt = run.run_dir(run_name)
        if not ckpt.is_dir() or recorded != checkpoint_sha256(ckpt):
            return None
    return path


def _step_leaderboard(run: DemoRun, *, log, **_) -> None:
    lb = build_leaderboard(results=run.results, benchmark=DEMO_PROTOCOL, include_reported=False)
    run.leaderboard.mkdir(parents=True, exist_ok=True)
    for fmt, suffix in (("md", "md"), ("latex", "tex"), ("bib", "bib"), ("csv", "csv"), ("png", "png")):
        data = render(lb, fmt)
        path = run.leaderboard / f"leaderboard.{suffix}"
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    log(render(lb, "md"))
    log(f"tables written to {run.leaderboard} (md, tex + bib, csv, png)")


_STEP_FUNCS: dict[str, Callable[..., None]] = {
    "data": _step_data,
    "prepare": _step_prepare,
    "les": _step_les,
    "train": _step_train,
    "classifier": _step_classifier,
    "edit": _step_edit,
    "evaluate": _step_evaluate,
    "leaderboard": _step_leaderboard,
}
