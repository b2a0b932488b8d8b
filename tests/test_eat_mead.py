"""The ``eat-mead`` protocol reproduces EAT's evaluation code (yuangan/evaluation_eat), and every
paired metric pairs clips of different lengths instead of dropping them.

References here are EAT's definitions computed by hand on the same decoded frames: scikit-image
called with that code's arguments (``peak_signal_noise_ratio(gt, fake)``,
``structural_similarity(gt, fake, channel_axis=-1)`` — ``multichannel=True`` before 0.19), the
frame pairing ``np.linspace(0, n, min(n_fake, n_gt), endpoint=False)``, and the pooled mean over
all frames of all clips.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lesbench import io
from lesbench.errors import LesbenchError
from lesbench.metrics.base import Metric
from lesbench.metrics.fid import FID
from lesbench.metrics.fid_features import to_channel_order
from lesbench.metrics.image import PSNR, SSIM, apply_identical_rule, psnr_frames, ssim_frames
from lesbench.metrics.landmarks import LandmarkDistance
from lesbench.metrics.protocol import canonical_clip_id, load_protocol, read_clip_list
from lesbench.metrics.report import bootstrap_ci, bootstrap_ci_weighted
from lesbench.metrics.score import score


def _frames(n: int, seed: int, size: int = 48) -> np.ndarray:
    """``n`` smooth textured uint8 RGB frames (H.264 keeps them close, not identical)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for t in range(n):
        phase = rng.uniform(0, 2 * np.pi, 3)
        img = np.stack([np.sin(6 * xx + 4 * yy + t * 0.3 + p) for p in phase], -1)
        out.append(((img + 1) * 110 + 15).astype(np.uint8))
    return np.stack(out)


def _eat_pairs(fake: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EAT's pairing, written from its definition: m = min length, linspace indices in each."""
    m = min(len(fake), len(gt))
    fi = np.linspace(0, len(fake), m, False).astype(np.int32)
    gi = np.linspace(0, len(gt), m, False).astype(np.int32)
    return fake[fi], gt[gi]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """pred/ref folders with MEAD-named files: W009 clip 001 of unequal length (12 vs 9
    frames), W009 clip 002 with a byte-identical prediction (every PSNR infinite), clip 003 of
    equal length, and M012 clip 001 (not a test speaker)."""
    root = tmp_path_factory.mktemp("eat_mead")
    pred, ref = root / "pred", root / "ref"
    pred.mkdir()
    ref.mkdir()
    io.write_video(ref / "W009_front_happy_3_001.mp4", _frames(9, 1), fps=25)
    io.write_video(pred / "W009_front_happy_3_001.mp4", _frames(12, 2), fps=25)
    io.write_video(ref / "W009_front_sad_3_002.mp4", _frames(6, 3), fps=25)
    shutil.copy(ref / "W009_front_sad_3_002.mp4", pred / "W009_front_sad_3_002.mp4")
    io.write_video(ref / "W009_front_angry_3_003.mp4", _frames(7, 4), fps=25)
    io.write_video(pred / "W009_front_angry_3_003.mp4", _frames(7, 5), fps=25)
    io.write_video(ref / "M012_front_angry_3_001.mp4", _frames(5, 6), fps=25)
    io.write_video(pred / "M012_front_angry_3_001.mp4", _frames(5, 7), fps=25)
    return pred, ref


def _decoded(path: Path) -> np.ndarray:
    return io.read_frames(path, fps=25)


# ------------------------------------------------------------------------- protocol and loader


def test_eat_mead_protocol_states_eats_settings():
    p = load_protocol("eat-mead")
    assert p.id == "eat-mead@1.0" and p.test_speakers == ("M003", "M030", "W009", "W015")
    assert p.filter_speakers and p.pairing == "linspace"
    assert (p.ssim_window, p.ssim_win_size, p.ssim_sample_covariance) == ("uniform", 7, True)
    assert p.sampling("psnr").aggregate == "frames" and p.sampling("ssim").aggregate == "frames"
    assert p.sampling("lmd").aggregate == "clips"  # EAT: mean over valid videos
    assert (p.lmd_landmarks, p.lmd_definition) == ("dlib68", "eat")
    assert p.sampling("fid").frames_per_clip == 5 and p.fid_channel_order == "bgr"
    assert p.psnr_identical == "skip"
    assert p.default_metrics == ("psnr", "ssim", "lmd", "fid", "lse")  # what EAT's code reports
    m = load_protocol("mead-v1")  # lesbench's own setting is unchanged apart from the stated rules
    assert (m.ssim_window, m.lmd_definition, m.fid_channel_order, m.psnr_identical) == \
        ("gaussian", "lesbench", "rgb", "cap")
    assert m.sampling("psnr").aggregate == "clips" and not m.filter_speakers and m.default_metrics == ()
    assert "EAT" in m.description and "NOT numerically comparable" in m.description


@pytest.mark.parametrize("field,value,match", [
    ("psnr", {"identical": "zero"}, "psnr.identical"),
    ("ssim", {"window": "box"}, "ssim.window"),
    ("ssim", {"window": "uniform", "win_size": 8}, "ssim.win_size"),
    ("fid", {"channel_order": "gbr"}, "fid.channel_order"),
    ("lmd", {"definition": "paper"}, "lmd.definition"),
])
def test_protocol_rejects_bad_eat_settings(tmp_path, field, value, match):
    import yaml

    raw = dict(load_protocol("eat-mead").raw)
    raw[field] = value
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(LesbenchError, match=match):
        load_protocol(bad)


def test_fid_sampling_is_eats_five_frames_over_the_paired_frames():
    p = load_protocol("eat-mead")
    for n_fake, n_gt in ((100, 97), (40, 130), (3, 8), (25, 25)):
        # EAT: pair (linspace over each clip), then sample min(length, 5) of the pairs by linspace
        length = min(n_fake, n_gt)
        fake_ids = np.linspace(0, n_fake, length, False).astype(np.int32)
        gt_ids = np.linspace(0, n_gt, length, False).astype(np.int32)
        samp = np.linspace(0, length, min(length, 5), False).astype(np.int32)
        ip, ir = p.paired_frame_indices("fid", n_fake, n_gt)
        assert ip.tolist() == fake_ids[samp].tolist() and ir.tolist() == gt_ids[samp].tolist()
    assert p.paired_frame_indices("fid", 100, 97)[1].tolist() == [0, 19, 38, 58, 77]
    # mead-v1 reads every paired frame
    assert len(load_protocol("mead-v1").paired_frame_indices("fid", 100, 97)[0]) == 97


def test_fid_feeds_rgb_frames_as_bgr_under_eat_mead():
    seen: list[np.ndarray] = []

    class Recorder:
        sha256 = "0" * 64

        def __call__(self, frames: np.ndarray) -> np.ndarray:
            seen.append(frames.copy())
            return np.zeros((len(frames), 2048))

    frames = np.zeros((2, 4, 4, 3), np.uint8)
    frames[..., 0] = 200  # pure red in RGB
    m = FID(extractor=Recorder(), channel_order="bgr", load=False)
    m.update(pred_video=frames)
    assert seen[0][..., 2].min() == 200 and seen[0][..., 0].max() == 0  # red now in the last channel
    assert m.version.endswith("/bgr-input") and m.frame_counts() == {"n_pred_frames": 2, "n_ref_frames": 0}
    FID(extractor=Recorder(), load=False).update(pred_video=frames)
    assert seen[1][..., 0].min() == 200  # rgb: unchanged
    assert np.array_equal(to_channel_order(frames, "bgr")[..., ::-1], frames)


# ------------------------------------------------------------------------- PSNR and SSIM kernels


def test_ssim_uniform_window_equals_skimage_with_eats_arguments():
    fake, gt = _frames(3, 10, 40), _frames(3, 11, 40)
    ours = ssim_frames(fake, gt, window="uniform")
    # structural_similarity(gt, fake, multichannel=True) in EAT's code = channel_axis=-1 today
    ref = [structural_similarity(gt[i], fake[i], channel_axis=-1) for i in range(3)]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    # and it is not mead-v1's Gaussian SSIM
    assert np.abs(ssim_frames(fake, gt) - ours).max() > 1e-3
    assert SSIM(window="uniform").version == "rgb-uniform7-sample-255/1"


def test_psnr_rule_for_identical_frames_is_applied_and_counted():
    gt = _frames(4, 12, 16)
    fake = gt.copy()
    fake[1] = np.clip(gt[1].astype(int) + 5, 0, 255).astype(np.uint8)
    d = fake[1].astype(float) - gt[1].astype(float)
    hand = 10 * np.log10(255.0**2 / np.mean(d * d))  # the definition, by hand
    assert psnr_frames(fake, gt)[1] == pytest.approx(hand, abs=1e-12)
    assert hand == pytest.approx(peak_signal_noise_ratio(gt[1], fake[1]), abs=1e-12)
    vals, n = apply_identical_rule(psnr_frames(fake, gt), "skip")
    assert n == 3 and vals.tolist() == pytest.approx([hand])
    m = PSNR(identical="skip")
    m.update(fake, gt)
    assert m.compute() == pytest.approx(hand) and m.frame_counts() == {"n_frames": 1, "n_identical": 3}
    m = PSNR(identical="cap", cap_db=100)
    m.update(fake, gt)
    assert m.compute() == pytest.approx((3 * 100 + hand) / 4) and m.frame_counts() == {"n_frames": 4, "n_identical": 3}
    m = PSNR(identical="skip")
    m.update(gt, gt)
    with pytest.raises(ValueError, match="n_identical=4"):
        m.compute()


def test_pooled_bootstrap_with_equal_weights_is_the_plain_one():
    v = [1.0, 2.0, 4.0, 8.0]
    assert bootstrap_ci_weighted(v, [3, 3, 3, 3], 200, 1) == pytest.approx(bootstrap_ci(v, 200, 1))
    low, high = bootstrap_ci_weighted(v, [1, 1, 1, 100], 200, 1)
    assert low <= (1 + 2 + 4 + 800) / 103 <= high


# ------------------------------------------------------------------------- score, end to end


def _eat_reference(pred: Path, ref: Path, names: list[str]) -> tuple[float, float, list[int]]:
    """EAT's test_psnr_ssim.py by its definition: pooled over all frames of all clips (an
    infinite PSNR is left out here, as eat-mead's skip rule states)."""
    ps, ss, lengths = [], [], []
    for name in names:
        fake, gt = _eat_pairs(_decoded(pred / name), _decoded(ref / name))
        lengths.append(len(fake))
        for f, g in zip(fake, gt):
            with np.errstate(divide="ignore"):  # identical frames: inf, as in EAT's code
                ps.append(peak_signal_noise_ratio(g, f))
            ss.append(structural_similarity(g, f, channel_axis=-1))
    ps_arr = np.asarray(ps)
    return float(ps_arr[np.isfinite(ps_arr)].mean()), float(np.mean(ss)), lengths


def test_eat_mead_psnr_ssim_equal_eats_pooled_definition(clips):
    pred, ref = clips
    report = score(pred, ref=ref, metrics=["psnr", "ssim"], protocol="eat-mead")
    names = ["W009_front_angry_3_003.mp4", "W009_front_happy_3_001.mp4", "W009_front_sad_3_002.mp4"]
    psnr_ref, ssim_ref, lengths = _eat_reference(pred, ref, names)
    assert lengths == [7, 9, 6]  # the 12-vs-9 clip is paired on 9 frames, not dropped
    psnr, ssim = report.metrics["psnr"], report.metrics["ssim"]
    assert psnr.value == pytest.approx(psnr_ref, abs=1e-9)
    assert ssim.value == pytest.approx(ssim_ref, abs=1e-9)
    # counts are counts: frames in the mean, identical frames, clips; no CI on any of them
    assert psnr.counts == {"n_clips": 2, "n_frames": 16, "n_identical": 6}
    assert ssim.counts == {"n_clips": 3, "n_frames": 22}
    assert sum(psnr.skipped.values()) == 1 and "n_identical=6" in next(iter(psnr.skipped))
    assert isinstance(psnr.ci95, tuple) and not isinstance(psnr.value, dict)
    # the M012 clip is not a test speaker of eat-mead: left out and said so
    assert report.excluded == {"M012_front_angry_3_001": "speaker M012 is not a test speaker of eat-mead"}
    clip = {c.key: c for c in report.clips}["W009_front_happy_3_001"]
    assert (clip.n_frames, clip.n_ref_frames, clip.n_paired) == (12, 9, 9)
    assert any("lengths differ" in i for i in clip.issues)
    table = report.table()
    assert "n_identical=6" in table and "not scored: 1 clip(s)" in table
    js = report.as_dict()
    assert js["metrics"]["psnr"]["counts"]["n_identical"] == 6 and js["excluded"]


def test_mead_v1_scores_every_clip_caps_identical_frames_and_averages_clips(clips):
    pred, ref = clips
    report = score(pred, ref=ref, metrics=["psnr"], protocol="mead-v1")
    psnr = report.metrics["psnr"]
    assert psnr.counts == {"n_clips": 4, "n_frames": 27, "n_identical": 6} and not psnr.skipped
    per_clip = []
    for name in sorted(p.name for p in pred.iterdir()):
        fake, gt = _eat_pairs(_decoded(pred / name), _decoded(ref / name))
        with np.errstate(divide="ignore"):
            vals = np.array([peak_signal_noise_ratio(g, f) for f, g in zip(fake, gt)])
        per_clip.append(np.where(np.isinf(vals), 100.0, vals).mean())  # cap at 100 dB
    assert psnr.per_clip["W009_front_sad_3_002"] == pytest.approx(100.0)
    assert psnr.value == pytest.approx(np.mean(per_clip), abs=1e-9)  # mean of clip means


def test_clip_list_selects_clips_and_reports_the_rest(clips, tmp_path):
    pred, ref = clips
    lst = tmp_path / "mead100.txt"
    lst.write_text("# EAT-style names and clip ids\nW009_hap_3_001\nW009_front_angry_3_003\nM030_sur_3_010\n")
    assert read_clip_list(lst) == ("W009_front_happy_3_001", "W009_front_angry_3_003", "M030_front_surprised_3_010")
    report = score(pred, ref=ref, metrics=["ssim"], protocol="eat-mead", clips=lst)
    assert report.metrics["ssim"].counts["n_clips"] == 2
    assert report.excluded["W009_front_sad_3_002"] == "not in the clip list"
    assert report.clip_list["missing"] == ["M030_front_surprised_3_010"] and report.clip_list["n_listed"] == 3
    bad = tmp_path / "bad.txt"
    bad.write_text("W009_hap_3_001\nnot-a-clip\n")
    with pytest.raises(LesbenchError, match=r"bad.txt:2: 'not-a-clip'"):
        read_clip_list(bad)
    assert canonical_clip_id("W009_con_3_28.mp4") == "W009_front_contempt_3_028"


def test_eat_named_predictions_pair_with_mead_references(clips, tmp_path):
    pred, ref = clips
    eat = tmp_path / "eat"
    eat.mkdir()
    shutil.copy(pred / "W009_front_happy_3_001.mp4", eat / "W009_hap_3_001.mp4")  # EAT's file names
    report = score(eat, ref=ref, metrics=["psnr"], protocol="eat-mead")
    assert report.unpaired == [] and report.metrics["psnr"].counts["n_frames"] == 9


class _RecordingLMD(Metric):
    """Stands in for the dlib68 LandmarkDistance with ``definition="eat"`` (its interface)."""

    name = "lmd"
    version = "lmd-dlib68-eat/test"
    higher_is_better = False
    protocol_args = LandmarkDistance.protocol_args  # the protocol settings the real metric takes
    made: ClassVar[list[dict[str, Any]]] = []
    seen: ClassVar[list[tuple[int, int]]] = []

    def __init__(self, device=None, landmarks="mediapipe478", crop_size=256, pairing="linspace",
                 definition="lesbench") -> None:
        type(self).made.append(dict(landmarks=landmarks, crop_size=crop_size, pairing=pairing, definition=definition))
        self.inputs = ("pred_video", "ref_video") if landmarks == "dlib68" else ("pred_face", "ref_face")
        super().__init__(device)

    def reset(self) -> None:
        self.n = 0

    def update(self, pred_video, ref_video) -> None:
        type(self).seen.append((len(pred_video), len(ref_video)))
        self.n = len(pred_video)

    def compute(self) -> dict[str, float]:
        return {"m_lmd": 1.0, "f_lmd": 2.0, "m_lvd": 0.5, "f_lvd": 0.25, "n_valid": self.n}


def test_eat_mead_passes_the_lmd_definition_and_paired_frames(clips, monkeypatch):
    from lesbench.registry import METRICS

    real_get = METRICS.get
    monkeypatch.setattr(METRICS, "get", lambda name: _RecordingLMD if name == "lmd" else real_get(name))
    pred, ref = clips
    report = score(pred, ref=ref, metrics=["lmd"], protocol="eat-mead")
    assert _RecordingLMD.made[-1] == {"landmarks": "dlib68", "crop_size": 256, "pairing": "linspace",
                                      "definition": "eat"}
    assert sorted(_RecordingLMD.seen) == [(6, 6), (7, 7), (9, 9)]  # frames, paired by linspace
    lmd = report.metrics["lmd"]
    assert lmd.value == {"m_lmd": 1.0, "f_lmd": 2.0, "m_lvd": 0.5, "f_lvd": 0.25}
    assert lmd.counts == {"n_clips": 3, "n_valid": 22}  # a count, summed, not averaged
    assert set(lmd.ci95) == {"m_lmd", "f_lmd", "m_lvd", "f_lvd"}
    from lesbench.metrics.scorer import make_metric

    make_metric("lmd", load_protocol("mead-v1"), None, {})
    assert _RecordingLMD.made[-1] == {"landmarks": "mediapipe478", "crop_size": 256, "pairing": "linspace",
                                      "definition": "lesbench"}  # mead-v1: the default, unchanged


@pytest.mark.meaddev
@pytest.mark.slow
def test_eat_mead_equals_eats_definition_on_real_degraded_pairs(mead_dev, tmp_path):
    """The five real pairs of ``bench_protocols`` (compression, shift, blur, another clip,
    dropped frames): every pair is scored, and eat-mead's PSNR/SSIM equal EAT's definition."""
    from lesbench.metrics.bench_protocols import build_degraded_pairs

    pred, ref = build_degraded_pairs(mead_dev, tmp_path)
    report = score(pred, ref=ref, metrics=["psnr", "ssim"], protocol="eat-mead")
    names = sorted(p.name for p in pred.iterdir())
    psnr_ref, ssim_ref, lengths = _eat_reference(pred, ref, names)
    assert len(lengths) == 5 and report.metrics["psnr"].counts["n_clips"] == 5
    assert report.metrics["psnr"].counts["n_frames"] == sum(lengths)
    assert report.metrics["psnr"].value == pytest.approx(psnr_ref, abs=1e-9)
    assert report.metrics["ssim"].value == pytest.approx(ssim_ref, abs=1e-9)


def test_score_feeds_fid_eats_five_paired_frames_per_clip_as_bgr(clips, monkeypatch):
    import lesbench.metrics.fid as fid_mod

    pred, ref = clips
    batches: list[np.ndarray] = []
    # what is checked here is which frames reach the network; the distance itself is tested in
    # test_metrics_fid.py (a 2048-d matrix square root would take most of this test's time)
    monkeypatch.setattr(fid_mod, "frechet_distance", lambda mu1, s1, mu2, s2: float(np.sum((mu1 - mu2) ** 2)))

    class Recorder:
        sha256 = "0" * 64

        def __call__(self, frames: np.ndarray) -> np.ndarray:
            batches.append(frames.copy())
            rng = np.random.default_rng(len(batches))
            return rng.normal(size=(len(frames), 2048))

    report = score(pred, ref=ref, metrics=["fid"], protocol="eat-mead",
                   metric_options={"fid": {"extractor": Recorder(), "load": False}})
    fid = report.metrics["fid"]
    assert fid.unavailable is None and np.isfinite(fid.value)
    assert fid.counts == {"n_clips": 3, "n_pred_frames": 15, "n_ref_frames": 15}
    # clip W009_front_happy_3_001 (12 generated vs 9 reference frames) comes first by key
    fake, gt = _decoded(pred / "W009_front_happy_3_001.mp4"), _decoded(ref / "W009_front_happy_3_001.mp4")
    fake_p, gt_p = _eat_pairs(fake, gt)
    samp = np.linspace(0, 9, 5, False).astype(np.int32)
    got = {b.tobytes() for b in batches}
    assert fake_p[samp][..., ::-1].tobytes() in got and gt_p[samp][..., ::-1].tobytes() in got
