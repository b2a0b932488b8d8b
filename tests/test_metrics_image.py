"""PSNR / SSIM against scikit-image; LPIPS's unavailable path and its backbone loading code."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lesbench.metrics.base import MetricUnavailable
from lesbench.metrics.image import LPIPS, PSNR, SSIM, psnr, psnr_frames, ssim, ssim_frames


def _pairs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ref = np.stack([data.astronaut()[100:228, 150:278], data.chelsea()[50:178, 100:228],
                    data.coffee()[100:228, 200:328]])
    noise = rng.normal(0, 12, ref.shape)
    pred = np.clip(ref.astype(np.float64) + noise, 0, 255).astype(np.uint8)
    pred[1] = np.roll(ref[1], 3, axis=1)  # a shifted frame, not only noise
    return pred, ref


def _sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(b, a, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=255)


def test_psnr_matches_skimage():
    pred, ref = _pairs()
    ours = psnr_frames(pred, ref)
    expected = [peak_signal_noise_ratio(r, p, data_range=255) for p, r in zip(pred, ref)]
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)
    assert psnr(pred, ref) == pytest.approx(np.mean(expected), abs=1e-4)


def test_ssim_matches_skimage():
    pred, ref = _pairs()
    ours = ssim_frames(pred, ref)
    expected = [_sk_ssim(p, r) for p, r in zip(pred, ref)]
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)
    assert ssim(pred, ref) == pytest.approx(np.mean(expected), abs=1e-4)
    assert 0.1 < min(expected) < max(expected) < 0.99  # non-trivial values


def test_ssim_non_square_and_extremes():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (2, 40, 67, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (2, 40, 67, 3), dtype=np.uint8)
    np.testing.assert_allclose(ssim_frames(a, b), [_sk_ssim(x, y) for x, y in zip(a, b)], atol=1e-4)
    np.testing.assert_allclose(ssim_frames(a, a), 1.0, atol=1e-12)
    assert np.isinf(psnr_frames(a, a)).all()


def test_metric_classes_average_frames():
    pred, ref = _pairs()
    m = PSNR()
    m.update(pred_video=pred[:2], ref_video=ref[:2])
    m.update(pred_video=pred[2:], ref_video=ref[2:])
    assert m.compute() == pytest.approx(psnr_frames(pred, ref).mean())
    assert len(m.per_clip) == 2
    s = SSIM()
    s.update(pred_video=pred, ref_video=ref)
    assert s.compute() == pytest.approx(np.mean([_sk_ssim(p, r) for p, r in zip(pred, ref)]), abs=1e-4)


def test_shape_mismatch_is_an_error():
    pred, ref = _pairs()
    with pytest.raises(ValueError, match="differ in shape"):
        psnr_frames(pred, ref[:, :100])


def test_lpips_unavailable_here_names_the_reason():
    """Without an importable lpips package (or without backbone weights) LPIPS is reported as
    unavailable with the reason, never faked."""
    pred, ref = _pairs()
    try:
        import lpips  # noqa: F401
        has_lpips = True
    except Exception:
        has_lpips = False
    if has_lpips:
        pytest.skip("lpips is importable here; the weights test below covers loading")
    with pytest.raises(MetricUnavailable, match="lpips"):
        LPIPS()  # raised at construction, so `lesbench score` lists it as unavailable
    m = LPIPS(load=False)
    with pytest.raises(MetricUnavailable, match="lpips"):
        m.update(pred_video=pred, ref_video=ref)


def test_lpips_loading_code_with_a_stand_in_package(monkeypatch, tmp_path):
    """The real loading path (backbone file -> lpips slices) run against a minimal stand-in for
    the lpips package, since neither lpips nor the AlexNet weights are installable here."""
    torch = pytest.importorskip("torch")
    from torch import nn

    class _Net(nn.Module):  # lpips.pretrained_networks.alexnet keeps features[i] as slice{k}.{i}
        def __init__(self) -> None:
            super().__init__()
            self.slice1 = nn.Sequential()
            self.slice1.add_module("0", nn.Conv2d(3, 4, 3, padding=1))
            self.slice2 = nn.Sequential()
            self.slice2.add_module("2", nn.Conv2d(4, 2, 3, padding=1))

    class _LPIPS(nn.Module):
        def __init__(self, net: str, pretrained: bool, pnet_rand: bool, verbose: bool, **kw) -> None:
            super().__init__()
            assert pnet_rand, "must not ask torchvision for downloaded weights"
            self.net = _Net()

        def forward(self, x, y):  # mean squared feature difference, shaped like lpips' output
            fx, fy = self.net.slice2(self.net.slice1(x)), self.net.slice2(self.net.slice1(y))
            return ((fx - fy) ** 2).mean(dim=(1, 2, 3), keepdim=True)

    monkeypatch.setitem(sys.modules, "lpips", types.SimpleNamespace(LPIPS=_LPIPS))
    import lesbench.weights as weights

    def fake_resolve(name, path=None):  # the stand-in backbone is not the registered file
        if path is None:
            from lesbench.errors import WeightsNotFoundError

            raise WeightsNotFoundError(f"{name}: not here")
        return path

    monkeypatch.setattr(weights, "resolve", fake_resolve)
    state = {"features.0.weight": torch.randn(4, 3, 3, 3), "features.0.bias": torch.randn(4),
             "features.2.weight": torch.randn(2, 4, 3, 3), "features.2.bias": torch.randn(2)}
    path = tmp_path / "alexnet.pth"
    torch.save(state, path)
    m = LPIPS(backbone_path=path)
    assert torch.equal(m.model.net.slice2[0].weight, state["features.2.weight"])
    pred, ref = _pairs()
    m.update(pred_video=pred, ref_video=ref)
    m.update(pred_video=ref, ref_video=ref)
    assert m.per_clip[0] > 0 and m.per_clip[1] == 0.0
    # a file that is not a torchvision state dict is rejected with the reason
    torch.save({"classifier.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(MetricUnavailable, match="features.0.weight"):
        LPIPS(backbone_path=tmp_path / "bad.pth")
