"""A metric declares its outputs once; the score report, evaluate's results, the sweep and the
leaderboard read that one declaration. Metrics build themselves from the protocol."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest

from lesbench.baselines.base import Method
from lesbench.baselines.external import ExternalVideos
from lesbench.errors import LesbenchError
from lesbench.leaderboard import build_leaderboard, display, metric_order, render
from lesbench.metrics.base import Metric, MetricResult, Output
from lesbench.metrics.discover import ScoreItem, discover_items
from lesbench.metrics.image import PSNR, SSIM
from lesbench.metrics.landmarks import LandmarkDistance
from lesbench.metrics.outputs import metric_outputs, output_direction, output_name
from lesbench.metrics.protocol import load_protocol
from lesbench.metrics.score import score, score_items
from lesbench.registry import METRICS
from lesbench.evaluation.results import normalise_report
from lesbench.sweep.yardstick import OUTPUTS as SWEEP_OUTPUTS


class _Fake(Metric):
    """A registered metric with one headline output and one plain output."""

    name = "fake"
    outputs: ClassVar[tuple[Output, ...]] = (Output("a", "fake-a", "Fake A", "lower", 1, "px"),
                                             Output("b", "fake-b", None, "higher", 3))

    def reset(self) -> None:
        pass


def _record(method: str, scores: dict[str, tuple[float, bool | None]]) -> dict:
    """A minimal valid results file of ``method`` on benchmark mead-v1, data set ``tiny``."""
    return {
        "format_version": "1", "method": method, "card": method, "benchmark": "mead-v1",
        "protocol": {"name": "mead-v1", "version": "1.0", "id": "mead-v1@1.0", "sha256": "0" * 64},
        "dataset": {"name": "tiny", "n_test_clips": 2},
        "scores": {m: {"value": v, "ci95": None, "version": "1", "higher_is_better": hib, "n": 2}
                   for m, (v, hib) in scores.items()},
        "generation": {"method": method, "seed": 0, "revision": None, "checkpoint": None, "checkpoint_sha256": None},
        "environment": {"lesbench_version": "0.1.0", "git_revision": "abc1234", "date": "2026-01-01T00:00:00+00:00",
                        "hardware": {"summary": "2 CPU"}},
    }


@pytest.fixture
def fake_metric(monkeypatch):
    monkeypatch.setitem(METRICS._entries, "fake", _Fake)
    return _Fake


def test_every_declared_output_has_one_owner_and_a_direction():
    table = metric_outputs()
    assert len(table) == sum(len(METRICS.get(n).outputs) for n in METRICS.names())  # names unique
    for name, mo in table.items():
        assert mo.output.name == name and mo.output.direction in ("higher", "lower", "target")
        assert output_name(mo.metric, mo.output.key) == name
    # the metric's own flag is the direction its outputs share, None when they differ
    assert METRICS.get("fid").higher_is_better is False and METRICS.get("psnr").higher_is_better is True
    assert METRICS.get("lse").higher_is_better is None and METRICS.get("sync").higher_is_better is None
    # labelled columns first (in column order), the others after, by name
    names = list(table)
    labelled = [n for n in names if table[n].output.label]
    assert names[: len(labelled)] == labelled
    assert names[len(labelled):] == sorted(names[len(labelled):])
    assert labelled[:3] == ["psnr", "ssim", "lpips"] and "sync-confidence-z" not in labelled


def test_undeclared_keys_fall_back_to_the_metric_and_its_direction():
    assert output_name("lmd", "m_lmd") == "m-lmd" and output_name("psnr", "psnr") == "psnr"
    assert output_name("lmd", "brand_new") == "lmd-brand-new"
    assert output_direction("lmd", "brand_new", False) is False
    assert output_direction("sync", "offset", True) is None  # declared: target, whatever the default
    assert output_name("not-registered", "x_y") == "not-registered-x-y"


def test_the_sweep_reports_under_the_declared_names():
    assert [o.name for o in SWEEP_OUTPUTS] == ["level-spearman", "level-linearity", "unit-isolation"]
    assert [o.key for o in SWEEP_OUTPUTS] == ["spearman", "r2", "isolation"]


def test_a_declaration_reaches_results_and_leaderboard(fake_metric, tmp_path):
    res = MetricResult("fake", "1", None, value={"a": 1.25, "b": 0.5, "n_frames": 7}, ci95={"a": (1.0, 1.5), "b": None},
                       counts={"n_clips": 2})
    records = normalise_report({"fake": res})
    assert set(records) == {"fake-a", "fake-b"}  # counts are not outputs
    assert records["fake-a"]["higher_is_better"] is False and records["fake-b"]["higher_is_better"] is True
    assert records["fake-a"]["ci95"] == [1.0, 1.5] and records["fake-a"]["n"] == 2

    assert display("fake-a").label == "Fake A" and display("fake-a").decimals == 1
    assert "fake-a" in metric_order() and "fake-b" not in metric_order()
    for method, a in (("static", 2.44), ("retrieval", 2.36)):
        rec = _record(method, {"fake-a": (a, False), "psnr": (20.0, True)})
        path = tmp_path / "mead-v1" / "tiny" / f"{method}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec))
    md = render(build_leaderboard(tmp_path, include_reported=False), "md")
    header = next(line for line in md.splitlines() if line.startswith("| Method"))
    assert header.index("PSNR ↑") < header.index("Fake A ↓")  # psnr's column comes first
    # one decimal as declared, lower is better: 2.4 (retrieval) is bold, 2.4 rounded from 2.44 is too
    assert "**2.4**" in md and md.count("**2.4**") == 2


def test_metrics_take_their_protocol_settings():
    eat = load_protocol("eat-mead")
    ssim = SSIM.from_protocol(eat)
    assert (ssim.window, ssim.win_size, ssim.sample_covariance) == ("uniform", 7, True)
    psnr = PSNR.from_protocol(eat, options={"cap_db": 50.0})  # options win over the protocol
    assert psnr.identical == "skip" and psnr.cap_db == 50.0
    lmd = LandmarkDistance.from_protocol(load_protocol("mead-v1"))
    assert (lmd.landmarks, lmd.crop_size, lmd.pairing, lmd.definition) == ("mediapipe478", 256, "linspace", "lesbench")


def test_score_on_folders_equals_score_on_the_items_it_found(tmp_path):
    from lesbench import io

    rng = np.random.default_rng(3)
    base = rng.integers(0, 255, size=(6, 32, 32, 3)).astype(np.uint8)
    for name, noise in (("happy/level_3/a", 4), ("angry/level_1/b", 12)):
        for d, k in (("pred", noise), ("ref", 0)):
            frames = np.clip(base.astype(int) + k * rng.standard_normal(base.shape), 0, 255).astype(np.uint8)
            io.write_video(tmp_path / d / f"{name}.mp4", frames, fps=25)
    proto = load_protocol("demo-v1")
    found = discover_items(tmp_path / "pred", tmp_path / "ref", proto)
    assert [(it.key, it.emotion, it.level, it.ref is not None) for it in found.items] == [
        ("angry/level_1/b", "angry", 1, True), ("happy/level_3/a", "happy", 3, True)]
    a = score(tmp_path / "pred", ref=tmp_path / "ref", metrics=["psnr", "ssim"], protocol=proto)
    b = score_items(list(reversed(found.items)), metrics=["psnr", "ssim"], protocol=proto)
    for name in ("psnr", "ssim"):
        assert a.metrics[name].value == b.metrics[name].value and a.metrics[name].per_clip == b.metrics[name].per_clip
    assert a.metrics["psnr"].per_clip["happy/level_3/a"] > a.metrics["psnr"].per_clip["angry/level_1/b"]
    assert [c.key for c in b.clips] == ["angry/level_1/b", "happy/level_3/a"]  # clip order, not call order
    # without references, a metric that needs one says so
    alone = score_items([ScoreItem(it.key, it.pred) for it in found.items], metrics=["psnr"], protocol=proto)
    assert alone.metrics["psnr"].unavailable == "needs reference videos (--ref)"
    with pytest.raises(LesbenchError, match="unique"):
        score_items(found.items + found.items[:1], metrics=["psnr"], protocol=proto)


def test_a_method_names_its_results_and_checks_itself(tmp_path):
    class Plain(Method):
        name = "plain"

    m = Plain()
    assert (m.result_name, m.card_key, m.missing_clips(), m.keeps_own_length) == ("plain", "plain", set(), False)
    assert m.describe_inputs() is None and m.video_file(None) is None  # generates every clip
    m.check({"other"})  # nothing to check
    ext = ExternalVideos(videos=tmp_path, card="eat")
    assert (ext.result_name, ext.card_key, ext.keeps_own_length) == ("eat", "eat", True)
    ext.check({"eat", "sadtalker"})
    with pytest.raises(LesbenchError, match="'eatt' is not a method card. Did you mean 'eat'"):
        ExternalVideos(videos=tmp_path, card="eatt").check({"eat", "sadtalker"})


def test_a_prepared_folder_is_read_through_its_manifest(tmp_path):
    import pandas as pd

    from lesbench import io
    from lesbench.metrics.discover import discover

    root = tmp_path / "prep"
    frames = np.full((3, 32, 32, 3), 100, np.uint8)
    for cid in ("W009_front_happy_3_001", "W009_front_neutral_1_001", "W009_front_sad_2_002"):
        io.write_video(root / "crops" / f"{cid}.mp4", frames, fps=25)
    (root / "dataset.json").write_text(json.dumps({"format_version": "1.0", "name": "tiny"}))
    pd.DataFrame({"clip_id": ["W009_front_happy_3_001", "W009_front_neutral_1_001"], "speaker": ["W009", "W009"],
                  "emotion": ["happy", "neutral"], "level": [3, 1], "split": ["test", "test"],
                  "status": ["ok", "failed"]}).to_parquet(root / "clips.parquet")
    found = discover(root)
    # every crop on disk, whatever its status; emotion and level from the manifest, None without a row
    assert {k: (e.emotion, e.level, e.speaker) for k, e in found.items()} == {
        "W009_front_happy_3_001": ("happy", 3, "W009"), "W009_front_neutral_1_001": ("neutral", 1, "W009"),
        "W009_front_sad_2_002": (None, None, None)}
    assert found["W009_front_happy_3_001"].video == root / "crops" / "W009_front_happy_3_001.mp4"
