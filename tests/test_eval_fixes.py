"""Evaluation fixes: MEAD levels reach LES-Talker as ``mead_level``, metrics that turn out to be
unavailable while scoring do not stop a score run, demo data is labelled ``lesbench-demo``, the
``demo-v1`` protocol's clip selection, and the reference-clip feature cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lesbench.baselines.base import GenerationRequest, PreparedData
from lesbench.metrics.base import Metric, MetricUnavailable
from lesbench.metrics.protocol import load_protocol

pd = pytest.importorskip("pandas")
io_mod = pytest.importorskip("lesbench.io")


# ------------------------------------------------------------------ 1. LES-Talker MEAD levels


class _Direction:
    """Fitted level scale of one emotion: MEAD level k lies at LES level k_scale / level-3 scale."""

    level_scales = {1: 0.3, 2: 0.6, 3: 0.9}

    def level_fraction(self, mead_level: int) -> float:
        return self.level_scales[mead_level] / self.level_scales[3]


class _Space:
    directions = {"happy": _Direction()}
    emotions = ["happy"]

    def vector(self, weights, units=None, offsets=None):
        return np.array([weights.get("happy", 0.0)] * 17, np.float32)


class _RecordingGenerator:
    """Stands in for a loaded run: the real ``Generator.request`` builds the request from the
    keyword arguments the method passes, exactly as ``Generator.generate`` would."""

    condition = "les"
    emotions = ["happy"]
    space = _Space()

    def __init__(self) -> None:
        self.requests = []

    def generate(self, source_image, audio, emotion=None, level=None, *, n_frames=None, sample_rate=16000,
                 seed=0, **request_kwargs):
        from lesbench.model.generate import Generator

        self.requests.append(Generator.request(self, emotion, level, **request_kwargs))
        return np.zeros((n_frames, 8, 8, 3), np.uint8)


@pytest.mark.parametrize("level, expected", [(1, 1 / 3), (2, 2 / 3), (3, 1.0)])
def test_les_talker_passes_mead_levels_as_mead_level(tmp_path, level, expected):
    import inspect

    from lesbench.baselines.les_talker import LESTalkerMethod
    from lesbench.model.generate import Generator

    # the real API: generate() forwards extra keywords to request(), which takes mead_level
    assert "request_kwargs" in inspect.signature(Generator.generate).parameters
    assert "mead_level" in inspect.signature(Generator.request).parameters
    run = tmp_path / "run"
    run.mkdir()
    method = LESTalkerMethod(checkpoint=run)
    method._generator = _RecordingGenerator()
    req = GenerationRequest(clip_id="c", speaker="W009", view="front", emotion="happy", level=level, sentence="001",
                            n_frames=5, fps=25.0, source_image=np.zeros((8, 8, 3), np.uint8), source_clip_id="s",
                            audio=np.zeros(3200, np.float32))
    out = method.generate(req)
    assert out.shape == (5, 8, 8, 3)
    assert method._generator.requests[-1].weights == {"happy": pytest.approx(expected)}
    # MEAD level 3 passed as an LES level would be rejected (3 > 2): the bug this guards against
    from lesbench.les.space import LESError

    with pytest.raises(LESError):
        Generator.request(_RecordingGenerator(), "happy", 3.0)


def test_les_talker_neutral_has_no_level(tmp_path):
    from lesbench.baselines.les_talker import LESTalkerMethod

    method = LESTalkerMethod(checkpoint=tmp_path)
    method._generator = _RecordingGenerator()
    req = GenerationRequest(clip_id="c", speaker="W009", view="front", emotion="neutral", level=1, sentence="001",
                            n_frames=3, fps=25.0, source_image=np.zeros((8, 8, 3), np.uint8), source_clip_id="s")
    method.generate(req)
    assert method._generator.requests[-1].weights == {}


# ------------------------------------------------------------------ 3. unavailable during update


class _FailsInUpdate(Metric):
    """Like LPIPS without the lpips package when loading is deferred to the first update."""

    name = "lpips"
    version = "test"
    higher_is_better = False
    inputs = ("pred_video", "ref_video")

    def reset(self) -> None:
        self.calls = 0

    def update(self, pred_video, ref_video) -> None:
        raise MetricUnavailable("lpips", "the 'lpips' package cannot be imported (test)")

    def compute(self) -> float:  # pragma: no cover - never reached
        return 0.0


@pytest.fixture(scope="module")
def two_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("avail")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size=(6, 32, 32, 3)).astype(np.uint8)
    for name, noise in (("a", 3), ("b", 9)):
        for d, k in (("pred", noise), ("ref", 0)):
            frames = np.clip(base.astype(int) + k, 0, 255).astype(np.uint8)
            io_mod.write_video(root / d / f"{name}.mp4", frames, fps=25)
    return root / "pred", root / "ref"


def test_metric_unavailable_in_update_keeps_the_other_metrics(two_folders, monkeypatch):
    import lesbench.metrics.score as score_mod

    real_make = score_mod.make_metric

    def make(name, protocol, device, options):
        return _FailsInUpdate() if name == "lpips" else real_make(name, protocol, device, options)

    monkeypatch.setattr(score_mod, "make_metric", make)
    pred, ref = two_folders
    report = score_mod.score(pred, ref=ref, metrics=["psnr", "lpips", "ssim"])
    assert "cannot be imported" in report.metrics["lpips"].unavailable
    assert report.metrics["lpips"].value is None
    for name in ("psnr", "ssim"):
        assert report.metrics[name].unavailable is None and report.metrics[name].value is not None
    assert report.metrics["psnr"].per_clip["a"] > report.metrics["psnr"].per_clip["b"]  # less noise
    # the reason is kept per clip as well, and the table lists the metric as unavailable
    assert all("metric unavailable" in v["skipped"] for v in report.metrics["lpips"].per_clip.values())
    assert "lpips: the 'lpips' package" in report.table()


def test_real_lpips_without_the_package_is_reported_unavailable(two_folders):
    pytest.importorskip("torch")
    try:
        import lpips  # noqa: F401
        pytest.skip("lpips is installed here")
    except ImportError:
        pass
    from lesbench.evaluation.results import normalise_report
    from lesbench.metrics.score import score

    pred, ref = two_folders
    report = score(pred, ref=ref, metrics=["psnr", "lpips"])
    out = normalise_report(report)
    assert "lpips" in out["lpips"]["unavailable"] and "value" not in out["lpips"]
    assert out["psnr"]["value"] > 20


# ------------------------------------------------------------------ 4./5. demo label, demo-v1


def _fake_prepared(root: Path, source_root: Path | None, speakers=("W009", "W015"), sentences=("001", "002")) -> Path:
    root.mkdir(parents=True)
    rows = []
    for spk in speakers:
        for emo, lv in (("neutral", 1), ("happy", 1), ("happy", 3)):
            for sn in sentences:
                rows.append(dict(clip_id=f"{spk}_front_{emo}_{lv}_{sn}", speaker=spk, view="front", emotion=emo,
                                 level=lv, sentence=sn, split="test", status="ok"))
    pd.DataFrame(rows).to_parquet(root / "clips.parquet")
    info = {"format_version": "1.0", "dataset": "mead"}
    if source_root is not None:
        info["source_root"] = str(source_root)
    (root / "dataset.json").write_text(json.dumps(info))
    return root


def test_demo_data_is_labelled_lesbench_demo(tmp_path):
    from lesbench.evaluation.selection import dataset_label

    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "demo.json").write_text(json.dumps({"generator": "lesbench.demo", "generator_version": "1"}))
    prep = _fake_prepared(tmp_path / "prep", demo)
    info = PreparedData.open(prep).info
    assert dataset_label(info, prep) == "lesbench-demo"
    # a real MEAD tree (no demo.json) keeps the reader's name
    real = tmp_path / "mead"
    real.mkdir()
    prep2 = _fake_prepared(tmp_path / "prep2", real)
    assert dataset_label(PreparedData.open(prep2).info, prep2) == "mead"
    # the demo's marker also counts when prepare recorded it, even if the demo tree is gone
    assert dataset_label({"dataset": "mead", "source_root": str(tmp_path / "gone"), "demo": {"generator": "lesbench.demo"}},
                         prep2) == "lesbench-demo"


def test_demo_protocol_selects_one_clip_per_condition(tmp_path):
    from lesbench.evaluation.selection import test_clips

    prep = _fake_prepared(tmp_path / "prep", None)
    data = PreparedData.open(prep)
    demo, mead = load_protocol("demo-v1"), load_protocol("mead-v1")
    assert demo.name == "demo-v1" and demo.clips_per_condition == 1 and mead.clips_per_condition is None
    assert demo.fid_method == "eig" and mead.fid_method == "sqrtm"
    # same metric definitions as mead-v1 except frame subsampling of the costly image metrics
    sub = ("fid", "kid", "ssim", "lpips", "csim")
    assert demo.sampling("fid").every == 10 and mead.sampling("fid").every == 1
    for f in ("crop_size", "fps", "sample_rate", "pairing", "au_default_threshold", "sync_max_shift", "emotion_classifier"):
        assert getattr(demo, f) == getattr(mead, f)
    assert {k: v for k, v in demo.frames.items() if k not in sub} == {k: v for k, v in mead.frames.items() if k not in sub}
    assert len(test_clips(data, mead)) == 12
    rows = test_clips(data, demo)
    # one level-3 clip per emotion plus neutral; sentence 001; the speaker alternates over emotions
    assert [(r["emotion"], r["level"]) for r in sorted(rows, key=lambda r: (r["emotion"], r["level"]))] == \
           [("happy", 3), ("neutral", 1)]
    assert all(r["sentence"] == "001" for r in rows)
    assert {r["speaker"] for r in rows} == {"W009", "W015"}


def test_protocol_rejects_bad_clip_selection(tmp_path):
    from lesbench.errors import LesbenchError

    import importlib.resources as res

    raw = (res.files("lesbench.metrics") / "protocols" / "demo-v1.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(raw.replace("per_condition: 1", "per_condition: 0"))
    with pytest.raises(LesbenchError, match="per_condition"):
        load_protocol(bad)


# ------------------------------------------------------------------ 5. reference-feature cache


def test_feature_cache_computes_once_and_keys_on_the_file(tmp_path):
    from lesbench.metrics.video import FeatureCache

    video = tmp_path / "ref.mp4"
    io_mod.write_video(video, np.full((4, 16, 16, 3), 100, np.uint8), fps=25)
    cache = FeatureCache(tmp_path / "cache")
    proto = load_protocol("mead-v1")
    calls = []

    def track():
        calls.append(1)
        return pd.DataFrame({"frame": np.arange(4, dtype=np.int32), "face": [True] * 4,
                             "landmarks": [np.arange(6, dtype=np.float32) + i for i in range(4)]})

    a = cache.face(video, proto, track)
    b = cache.face(video, proto, track)
    assert len(calls) == 1
    np.testing.assert_array_equal(np.stack(b["landmarks"]), np.stack(a["landmarks"]))
    feats = []

    def embed():
        feats.append(1)
        return np.arange(8.0).reshape(2, 4)

    x = cache.inception(video, np.array([0, 2]), "sha", embed)
    y = cache.inception(video, np.array([0, 2]), "sha", embed)
    cache.inception(video, np.array([0, 1]), "sha", embed)  # other frames: another entry
    assert len(feats) == 2 and np.array_equal(x, y)
    io_mod.write_video(video, np.full((5, 16, 16, 3), 50, np.uint8), fps=25)  # the file changed
    cache.face(video, proto, track)
    assert len(calls) == 2


def test_demo_results_are_filed_and_shown_as_lesbench_demo(tmp_path):
    from lesbench.evaluation import evaluate
    from lesbench.leaderboard import build_leaderboard, render

    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "demo.json").write_text(json.dumps({"generator": "lesbench.demo"}))
    prep = _fake_prepared(tmp_path / "prep", demo, speakers=("W009",), sentences=("001",))
    (prep / "crops").mkdir()
    rng = np.random.default_rng(1)
    for cid in pd.read_parquet(prep / "clips.parquet")["clip_id"]:
        io_mod.write_video(prep / "crops" / f"{cid}.mp4", rng.integers(0, 255, (5, 32, 32, 3)).astype(np.uint8), fps=25,
                           audio=(0.1 * rng.standard_normal(3200)).astype(np.float32))

    def scorer(items, protocol, metrics, device=None):
        return {"psnr": {"value": float(len(items)), "ci95": None, "version": "t", "higher_is_better": True, "n": len(items)}}

    res = evaluate("static", prep, protocol="demo-v1", out=tmp_path / "results", scorer=scorer)
    assert res.path == tmp_path / "results" / "demo-v1" / "lesbench-demo" / "static.json"
    assert res.record["benchmark"] == "demo-v1" and res.record["dataset"]["name"] == "lesbench-demo"
    md = render(build_leaderboard(tmp_path / "results", benchmark="demo-v1", include_reported=False), "md")
    assert "`demo-v1` on `lesbench-demo`" in md and "`mead`" not in md
