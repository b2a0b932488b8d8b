"""`lesbench demo` end to end on the tiny data set (the README's first command, small)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lesbench.demo.run import run_demo


def test_tiny_demo_runs_through_generation(tmp_path):
    out = tmp_path / "demo"
    steps = ("data", "prepare", "les", "train", "classifier", "edit")
    run = run_demo(out, tiny=True, workers=1, epochs=2, steps=steps, log=lambda _m: None)
    assert set(run.timings) == set(steps)
    clips = pd.read_parquet(run.prepared / "clips.parquet")
    assert len(clips) == 8 and (clips["status"] == "ok").all()
    # the demo marker travels into dataset.json, so demo results are never labelled MEAD
    assert json.loads((run.prepared / "dataset.json").read_text())["demo"]["generator"] == "lesbench.demo"
    assert json.loads((run.les / "les.json").read_text())
    for name in ("les-talker", "one-hot", "audio-only"):
        assert (run.run_dir(name) / "model.safetensors").is_file()
    # the demo's emotion classifier: AU MLP trained on W011, held-out accuracy on W009's 4 clips
    card = json.loads(run.classifier.with_suffix(".json").read_text())
    assert run.classifier.is_file() and card["features"] == "au"
    assert card["train"]["speakers"] == ["W011"] and card["heldout"]["n_clips"] == 4
    edits = sorted(p.name for p in run.edits.glob("*.mp4"))
    assert "W009_happy_1.00.mp4" in edits and len(edits) >= 4

    from lesbench.io import probe

    info = probe(run.edits / "W009_happy_1.00.mp4")
    assert info.has_video and info.has_audio and (info.width, info.height) == (256, 256)
    # the acceptance checks were measured on rendered clips (a 2-epoch model: values, not verdicts)
    checks = json.loads((run.edits / "checks.json").read_text())
    assert len(checks["levels"]["prototype_au"]) == 5
    assert all(0.0 <= v <= 1.0 for v in checks["levels"]["prototype_au"])
    assert set(checks["unit"]["upper_face_held"]) == {"AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU45"}
    assert set(checks["mix"]["AU12"]) == {"happy", "surprised", "mix"}
    assert "sync" not in checks and any(n.startswith("sync: skipped") for n in checks["notes"])  # ~1 s clips
    assert all((run.edits / "checks" / name).is_file() for name in checks["clips"].values())

    # a second run finds every step's output and redoes nothing
    again = run_demo(out, tiny=True, workers=1, epochs=2, steps=("data", "les", "train", "classifier"),
                     log=lambda _m: None)
    assert sum(again.timings.values()) < 5.0


def test_cli_lists_the_same_steps():
    from lesbench.commands.demo import _STEPS
    from lesbench.demo.run import STEPS

    assert _STEPS == STEPS and STEPS.index("train") < STEPS.index("classifier") < STEPS.index("edit")


def test_evaluate_step_scores_emotion_with_the_demo_classifier(tmp_path, monkeypatch):
    import lesbench.evaluation as ev
    from lesbench.demo.run import DEMO_METHODS, DemoRun, _step_evaluate

    calls = []
    monkeypatch.setattr(ev, "evaluate", lambda method, data, **kw: calls.append((method, kw)))
    run = DemoRun(tmp_path)
    _step_evaluate(run, seed=0, force=False, max_clips=None, log=lambda _m: None)
    assert [m for m, _ in calls] == [m for m, _ in DEMO_METHODS]
    assert all(kw["metric_options"] is None for _, kw in calls)  # no classifier yet: the default
    run.classifier.parent.mkdir(parents=True)
    run.classifier.write_bytes(b"stands in for the trained file")
    calls.clear()
    _step_evaluate(run, seed=0, force=False, max_clips=None, log=lambda _m: None)
    assert len(calls) == len(DEMO_METHODS)
    assert all(kw["metric_options"] == {"emotion": {"classifier": str(run.classifier)}} for _, kw in calls)


def test_unknown_step_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown demo step"):
        run_demo(tmp_path, steps=("data", "evalute"))
