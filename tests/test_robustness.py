"""Metric robustness audit (lesbench.metrics.robustness): each perturbation does what its entry
says (pixel shifts, CRF, frame rate, audio codec), the report's deltas and spreads equal
hand-computed values for a fake scorer with known per-clip numbers, and the perturbation file
is validated with errors naming it. A real-landmark check runs on MEAD W009 when present."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lesbench.errors import LesbenchError
from lesbench.io import probe, read_audio_for_video, read_frames, write_video
from lesbench.metrics.base import MetricResult
from lesbench.metrics.robustness import audit
from lesbench.metrics.robustness_perturb import ORIGINAL, Perturbation, load_perturbations, perturb_clip, shift_scale
from lesbench.metrics.robustness_report import robustness_table


def _texture(n: int = 25, h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """A moving textured pattern (x264 has something to lose at a high CRF)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h + n, w + n, 3)).astype(np.float32)
    base = (base + np.roll(base, 1, 0) + np.roll(base, 1, 1)) / 3
    return np.stack([base[t:t + h, t:t + w] for t in range(n)]).astype(np.uint8)


def _tone(seconds: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)


def test_builtin_set_has_every_perturbation_the_report_promises():
    ps = load_perturbations("robustness-v1")
    by = {p.name: p for p in ps.perturbations}
    assert ps.name == "robustness-v1" and len(ps.sha256) == 64
    assert [by[f"h264-crf{c}"].crf for c in (18, 23, 28)] == [18, 23, 28]
    assert by["h265-crf28"].codec == "libx265" and by["h265-crf28"].requires == "libx265"
    assert by["aac-64k"].audio_codec == "aac" and by["aac-64k"].audio_bit_rate == 64000
    assert by["h264-crf18"].audio_codec == "pcm_s16le"
    shifts = sorted(max(abs(p.dx), abs(p.dy)) for p in ps.perturbations if p.kind == "geometry" and p.scale == 1)
    assert shifts == [2, 3, 4]
    assert sorted(p.scale for p in ps.perturbations if p.scale != 1) == [0.95, 1.05]
    assert {p.fps for p in ps.perturbations if p.kind == "fps"} == {25, 30}
    assert by["fid-eat-5"].sampling["frames_per_clip"] == 5 and by["fid-every-frame"].sampling["every"] == 1


def test_bad_perturbation_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: 1\nperturbations:\n  - {name: a, kind: blur}\n")
    with pytest.raises(LesbenchError, match=r"bad\.yaml: perturbations\[0\]"):
        load_perturbations(bad)
    bad.write_text("name: x\nversion: 1\nperturbations:\n  - {name: a, kind: encode, crff: 3}\n")
    with pytest.raises(LesbenchError, match=r"bad\.yaml.*unknown keys \['crff'\]"):
        load_perturbations(bad)
    with pytest.raises(LesbenchError, match="perturbation set file not found"):
        load_perturbations(tmp_path / "missing.yaml")


def test_shift_moves_content_exactly_and_scale_about_the_centre():
    f = _texture(2)
    s = shift_scale(f, dx=3, dy=0)
    np.testing.assert_array_equal(s[:, :, 3:], f[:, :, :-3])  # content 3 px to the right
    np.testing.assert_array_equal(s[:, :, :3], np.repeat(f[:, :, :1], 3, axis=2))  # edge repeated
    s = shift_scale(f, dx=-2, dy=-4)
    np.testing.assert_array_equal(s[:, :-4, :-2], f[:, 4:, 2:])
    # a zoom of 1.05 moves a point at distance r from the centre to 1.05 r
    img = np.zeros((1, 101, 101, 3), np.uint8)
    img[0, 50, 90] = 255  # 40 px right of the centre (50, 50)
    z = shift_scale(img, scale=1.05)
    ys, xs = np.nonzero(z[0, :, :, 0])
    w = z[0, ys, xs, 0].astype(float)
    cx, cy = float((xs * w).sum() / w.sum()), float((ys * w).sum() / w.sum())
    assert cx == pytest.approx(50 + 42, abs=0.05) and cy == pytest.approx(50, abs=0.05)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return 10 * np.log10(255 ** 2 / mse)


def test_crf28_loses_more_than_crf18_and_fps_keeps_duration(tmp_path):
    src = write_video(tmp_path / "src.mp4", _texture(25), fps=25, crf=0, audio=_tone(1.0))
    orig = read_frames(src, fps=None)
    q = {}
    for crf in (18, 28):
        perturb_clip(src, tmp_path / f"crf{crf}.mp4", Perturbation(f"c{crf}", "encode", crf=crf))
        q[crf] = _psnr(read_frames(tmp_path / f"crf{crf}.mp4", fps=None), orig)
    assert q[28] < q[18] - 1.0, q
    info = perturb_clip(src, tmp_path / "fps30.mp4", Perturbation("f", "fps", fps=30))
    p30, p25 = probe(tmp_path / "fps30.mp4"), probe(src)
    assert info["n_frames"] == 30 and p30.n_frames == 30 and p30.fps == pytest.approx(30)
    assert p30.duration_s == pytest.approx(p25.duration_s, abs=1 / 30)
    back = tmp_path / "back25.mp4"  # 30 -> 25 again: the same number of frames as the source
    perturb_clip(tmp_path / "fps30.mp4", back, Perturbation("g", "fps", fps=25))
    assert probe(back).n_frames == 25
    # audio stays on the timeline: as long as the source's
    assert len(read_audio_for_video(tmp_path / "fps30.mp4")) == len(read_audio_for_video(src))


def test_aac_and_pcm_decode_to_the_same_length_on_the_video_timeline(tmp_path):
    audio = _tone(1.2)
    src = write_video(tmp_path / "src.mp4", _texture(30), fps=25, audio=audio)
    ref = read_audio_for_video(src)
    got = {}
    for p in (Perturbation("pcm", "encode"), Perturbation("aac", "encode", audio_codec="aac", audio_bit_rate=64000)):
        perturb_clip(src, tmp_path / f"{p.name}.mp4", p)
        got[p.name] = read_audio_for_video(tmp_path / f"{p.name}.mp4")
    assert len(got["pcm"]) == len(got["aac"]) == len(ref)
    np.testing.assert_allclose(got["pcm"], ref, atol=1 / 32768 + 1e-6)  # PCM: only 16-bit rounding
    c = np.corrcoef(got["aac"][800:-800], ref[800:-800])[0, 1]
    assert c > 0.99  # AAC: lossy but aligned (no shift: a shifted tone would decorrelate)


# ----------------------------------------------------------------------------------- the report

# per-clip PSNR of the fake scorer per variant, clips a and b
PSNR = {ORIGINAL: [30.0, 32.0], "h264-crf28": [27.0, 30.0], "shift-x2": [29.0, 31.0]}
FID = {ORIGINAL: 10.0, "h264-crf28": 12.0, "shift-x2": 11.0, "fid-eat-5": 15.0}


def _fake_scorer(calls):
    def scorer(pred, ref=None, metrics=None, protocol=None, device=None, metric_options=None, cache_dir=None,
               clips=None):
        name = Path(pred).name if Path(pred).parent.name == "perturbed" else ORIGINAL
        if name == ORIGINAL and protocol.frames["fid"].frames_per_clip == 5:
            name = "fid-eat-5"
        calls.append((name, list(clips)))
        per = PSNR.get(name, PSNR[ORIGINAL])
        res = {
            "psnr": MetricResult("psnr", "1", True, value=float(np.mean(per)), per_clip=dict(zip(clips, per))),
            "fid": MetricResult("fid", "1", False, value=FID[name], per_clip={c: "ok" for c in clips}),
            "lse": MetricResult("lse", "1", None, unavailable="syncnet weights absent"),
        }
        return SimpleNamespace(metrics=res)
    return scorer


def test_report_spread_and_deltas_by_hand(tmp_path):
    pred = tmp_path / "pred"
    for k in ("a", "b"):
        write_video(pred / f"{k}.mp4", _texture(6, 32, 32), fps=25)
    calls: list = []
    rep = audit(pred, None, out=tmp_path / "out", metrics=["psnr", "fid", "lse"], protocol="mead-v1",
                only=["h264-crf28", "shift-x2", "fid-eat-5"], scorer=_fake_scorer(calls))
    assert [c[0] for c in calls] == [ORIGINAL, "h264-crf28", "shift-x2", "fid-eat-5"]
    assert all(c[1] == ["a", "b"] for c in calls)
    # the perturbed copies exist, under the output folder only
    assert sorted(p.name for p in (tmp_path / "out" / "perturbed" / "shift-x2").iterdir()) == ["a.mp4", "b.mp4"]
    t = rep.table
    psnr = t["psnr"]
    assert psnr["values"] == {ORIGINAL: 31.0, "h264-crf28": 28.5, "shift-x2": 30.0, "fid-eat-5": 31.0}
    assert psnr["delta"]["h264-crf28"]["value"] == pytest.approx(-2.5)
    assert psnr["delta"]["shift-x2"]["value"] == pytest.approx(-1.0)
    assert psnr["delta"]["shift-x2"]["ci95"] == pytest.approx([-1.0, -1.0])  # -1 on every clip
    # crf28's per-clip deltas are -3 and -2: every draw's mean lies in [-3, -2], both ends drawn
    assert psnr["delta"]["h264-crf28"]["ci95"] == pytest.approx([-3.0, -2.0])
    assert psnr["spread"]["value"] == pytest.approx(2.5) and psnr["spread"]["max_at"] == ORIGINAL
    assert psnr["spread"]["min_at"] == "h264-crf28"
    # spread per draw: (a, a) -> 30 - 27 = 3, (b, b) -> 32 - 30 = 2, mixed -> 31 - 28.5 = 2.5
    assert psnr["spread"]["ci95"] == pytest.approx([2.0, 3.0])
    fid = t["fid"]
    assert fid["spread"]["value"] == pytest.approx(5.0) and fid["spread"]["ci95"] is None
    assert fid["delta"]["fid-eat-5"]["value"] == pytest.approx(5.0) and "dataset-level" in fid["ci_reason"]
    assert "lse" not in t  # unavailable everywhere: listed per variant in the JSON
    saved = json.loads((tmp_path / "out" / "robustness.json").read_text())
    assert saved["variants"][ORIGINAL]["scores"]["lse"]["unavailable"] == "syncnet weights absent"
    assert saved["perturbations"]["name"] == "robustness-v1" and saved["version"] == "robust/1"
    assert (tmp_path / "out" / "robustness.png").stat().st_size > 1000
    text = (tmp_path / "out" / "robustness.txt").read_text()
    assert "psnr: original 31" in text and "spread 2.5" in text


def test_table_lists_missing_values_with_reasons():
    def res(v, unavailable=None):
        return {"sync": MetricResult("sync", "2", True, value=v, unavailable=unavailable,
                                     per_clip={"a": v, "b": v} if v is not None else {})}
    t = robustness_table({ORIGINAL: res(1.0), "p": res(None, "no audio"), "q": res(1.5)})
    assert t["sync"]["missing"] == {"p": "no audio"}
    assert t["sync"]["spread"]["value"] == pytest.approx(0.5) and t["sync"]["delta"]["q"]["ci95"] == [0.5, 0.5]
    with pytest.raises(ValueError, match="original"):
        robustness_table({"p": res(1.0)})


def test_three_px_shift_moves_measured_landmarks_by_three_px(mead_dev, tmp_path):
    """Real face (MEAD W009): content shifted 3 px right, re-encoded at CRF 18 -> MediaPipe's
    landmarks move 3 px right and 0 px down (median over points and frames)."""
    from lesbench.extract.face_arrays import landmarks_array
    from lesbench.extract.face import FaceTracker

    src = sorted(mead_dev.rglob("*.mp4"))[0]
    clip = tmp_path / "clip.mp4"
    frames = read_frames(src, fps=25)[:8]
    write_video(clip, frames, fps=25, crf=18)
    perturb_clip(clip, tmp_path / "base.mp4", Perturbation("b", "encode"))
    perturb_clip(clip, tmp_path / "shift.mp4", Perturbation("s", "geometry", dx=3))
    tracker = FaceTracker()
    lm = [landmarks_array(tracker.track(list(read_frames(tmp_path / n, fps=25)), fps=25))[..., :2]
          for n in ("base.mp4", "shift.mp4")]
    d = (lm[1] - lm[0]).reshape(-1, 2)
    d = d[np.isfinite(d).all(axis=1)]
    assert len(d) > 1000
    assert np.median(d[:, 0]) == pytest.approx(3.0, abs=0.3) and np.median(d[:, 1]) == pytest.approx(0.0, abs=0.3)


@pytest.mark.slow  # ~50 s on the shared 2-core machine (score() imports, 3 scoring passes)
def test_audit_command_with_the_real_scorer(tmp_path, capsys):
    """`lesbench audit` end to end with score() itself on two small clips scored against
    themselves: the original is identical to its reference, CRF 28 is not."""
    from lesbench.cli import main

    pred = tmp_path / "pred"
    for k, seed in (("a", 1), ("b", 2)):
        write_video(pred / f"{k}.mp4", _texture(8, 64, 64, seed=seed), fps=25, crf=0)
    out = tmp_path / "audit"
    assert main(["audit", str(pred), "--ref", str(pred), "--metrics", "psnr,ssim", "--protocol", "mead-v1",
                 "--only", "h264-crf18,h264-crf28", "--out", str(out)]) == 0
    rep = json.loads((out / "robustness.json").read_text())
    psnr, ssim = rep["table"]["psnr"], rep["table"]["ssim"]
    assert psnr["values"]["h264-crf28"] < psnr["values"]["h264-crf18"] < psnr["values"][ORIGINAL]
    assert ssim["values"]["h264-crf28"] < ssim["values"]["h264-crf18"] <= ssim["values"][ORIGINAL] == pytest.approx(1.0)
    assert psnr["spread"]["value"] == pytest.approx(psnr["values"][ORIGINAL] - psnr["values"]["h264-crf28"])
    assert psnr["n_clips"] == 2 and "spread" in capsys.readouterr().out
