"""LSE-C / LSE-D: the SyncNet v2 computation, checked with random weights against numpy."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lesbench.metrics.base import MetricUnavailable  # noqa: E402
from lesbench.metrics.lse import (  # noqa: E402
    LSE, SyncNetScorer, build_syncnet, crops_for_syncnet, load_syncnet_weights,
    lse_from_embeddings, offset_distances, syncnet_crop, syncnet_mfcc,
)


def numpy_distances(v: np.ndarray, a: np.ndarray, vshift: int) -> np.ndarray:
    """Independent reference: d[i, j] = || v_i - a_{i + j - vshift} + 1e-6 ||, a = 0 outside."""
    n, dim = v.shape
    d = np.zeros((n, 2 * vshift + 1))
    for i in range(n):
        for j in range(2 * vshift + 1):
            k = i + j - vshift
            ak = a[k] if 0 <= k < n else np.zeros(dim)
            d[i, j] = np.sqrt(((v[i] - ak + 1e-6) ** 2).sum())
    return d


def test_hand_computed_distances():
    # 3 windows, 2-d embeddings, vshift 1: distances written out by hand (eps ignored, 1e-6)
    v = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    a = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    d = offset_distances(v, a, vshift=1)
    expected = np.array([
        [0.0, 0.0, 1.0],                 # v0 vs (pad, a0, a1)
        [1.0, 0.0, np.sqrt(5.0)],        # v1 vs (a0, a1, a2)
        [np.sqrt(5.0), 0.0, 2.0],        # v2 vs (a1, a2, pad)
    ])
    np.testing.assert_allclose(d, expected, atol=1e-5)
    r = lse_from_embeddings(v, a, vshift=1)
    mdist = expected.mean(0)  # [(0+1+sqrt5)/3, 0, (1+sqrt5+2)/3]
    assert r.lse_d == pytest.approx(0.0, abs=1e-5)
    assert r.lse_c == pytest.approx(np.median(mdist) - 0.0, abs=1e-5)
    assert r.offset == 0


def test_delayed_audio_embeddings_give_positive_offset():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 8))
    v = base[5:35]
    a = base[2:32]  # a[i + 3] == v[i]: the audio of frame i arrives 3 windows later
    r = lse_from_embeddings(v, a, vshift=5)
    assert r.offset == 3
    np.testing.assert_allclose(r.dists, numpy_distances(v, a, 5), rtol=1e-5, atol=1e-5)
    assert r.lse_d == pytest.approx(numpy_distances(v, a, 5).mean(0).min(), rel=1e-5)


def test_mfcc_matches_python_speech_features():
    psf = pytest.importorskip("python_speech_features")
    rng = np.random.default_rng(1)
    audio = (np.sin(np.arange(16000) * 0.05) * 0.3 + rng.normal(0, 0.05, 16000)).astype(np.float32)
    ours = syncnet_mfcc(audio)
    ref = psf.mfcc((audio * 32768.0).astype(np.float64), 16000)
    assert ours.shape == ref.shape == (99, 13)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)


def test_mfcc_frame_count():
    assert syncnet_mfcc(np.zeros(16000, np.float32)).shape == (99, 13)  # 1 + ceil((16000-400)/160)
    assert syncnet_mfcc(np.zeros(300, np.float32)).shape == (1, 13)


def test_architecture_matches_syncnet_v2_state_dict_layout():
    sd = build_syncnet().state_dict()
    assert tuple(sd["netcnnaud.0.weight"].shape) == (64, 1, 3, 3)
    assert tuple(sd["netcnnaud.18.weight"].shape) == (512, 256, 5, 4)
    assert tuple(sd["netcnnlip.0.weight"].shape) == (96, 3, 5, 7, 7)
    assert tuple(sd["netcnnlip.18.weight"].shape) == (512, 256, 1, 6, 6)
    assert tuple(sd["netfcaud.3.weight"].shape) == (1024, 512)
    assert tuple(sd["netfclip.1.running_mean"].shape) == (512,)
    # 102 tensors in the state dict, 13.6 M parameters (the released file is ~54 MB of float32)
    assert len(sd) == 102
    assert sum(p.numel() for p in build_syncnet().parameters()) == 13_631_616


def test_pipeline_equals_numpy_on_embeddings_with_random_weights(tmp_path):
    rng = np.random.default_rng(0)
    n_frames = 14
    crops = rng.integers(0, 256, size=(n_frames, 224, 224, 3), dtype=np.uint8)
    audio = rng.normal(0, 0.1, n_frames * 640).astype(np.float32)
    scorer = SyncNetScorer(random_init_seed=0, device="cpu")
    v, a = scorer.embeddings(crops, audio)
    assert v.shape == a.shape == (n_frames - 5, 1024)
    # the same embeddings by hand from the network's parts
    model = scorer.model
    mfcc = syncnet_mfcc(audio).T.astype(np.float32)
    with torch.no_grad():
        i = 3
        vid = torch.from_numpy(crops[i:i + 5].astype(np.float32)).permute(3, 0, 1, 2)[None]
        aud = torch.from_numpy(mfcc[None, None, :, 4 * i:4 * i + 20])
        np.testing.assert_allclose(model.forward_video(vid)[0].numpy(), v[i], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(model.forward_audio(aud)[0].numpy(), a[i], rtol=1e-4, atol=1e-4)
    r = scorer.score(crops, audio, vshift=4)
    ref = numpy_distances(v.astype(np.float64), a.astype(np.float64), 4).mean(0)
    assert r.lse_d == pytest.approx(ref.min(), rel=1e-5)
    assert r.lse_c == pytest.approx(np.median(ref) - ref.min(), rel=1e-4, abs=1e-6)
    assert r.offset == int(np.argmin(ref)) - 4
    # a saved state dict loads with weights_only=True and gives the same numbers
    path = tmp_path / "syncnet_v2.model"
    torch.save(model.state_dict(), path)
    again = build_syncnet()
    load_syncnet_weights(again, path)
    again.eval()
    scorer2 = SyncNetScorer(random_init_seed=123, device="cpu")
    scorer2.model = again
    assert scorer2.score(crops, audio, vshift=4).lse_d == pytest.approx(r.lse_d, rel=1e-6)


def test_wrong_file_is_rejected(tmp_path):
    path = tmp_path / "bad.model"
    torch.save({"foo": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="bad.model"):
        load_syncnet_weights(build_syncnet(), path)


def test_missing_weights_is_unavailable_with_instructions(tmp_path, monkeypatch):
    with pytest.raises(MetricUnavailable) as exc:
        LSE(weights_path=tmp_path / "nope" / "syncnet_v2.model")
    assert "syncnet_v2.model" in exc.value.reason
    assert "supply" in exc.value.reason.lower()  # says how to provide the file


def test_crop_geometry():
    frame = np.zeros((300, 300, 3), np.uint8)
    frame[100:200, 100:200] = 255  # the face box
    crop = syncnet_crop(frame, np.array([100, 100, 200, 200]), crop_scale=0.4, size=140)
    # box half-size 50 -> rows [100, 240) x cols [80, 220): 140 px square, box at rows 0..100
    assert crop.shape == (140, 140, 3)
    assert crop[:100, 20:120].min() == 255 and crop[100:, :].max() == 0
    crops = crops_for_syncnet(np.stack([frame, frame]), np.array([[100, 100, 200, 200], [np.nan] * 4]))
    np.testing.assert_array_equal(crops[0], crops[1])  # a frame without a box reuses the last box
