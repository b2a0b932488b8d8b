"""Aligned face crops: canonical eye positions, smoothing, missing faces."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lesbench.extract import crops
from lesbench.extract.crops import EYE_DISTANCE, EYE_Y, align_clip, crop_params, similarity_matrix

SIZE = 256
# Canonical eye-corner x positions (units of "face"), eye line y = 0, nose bridge on the eye line.
CANON = {33: (-1.0, 0.0), 133: (-0.4, 0.0), 362: (0.4, 0.0), 263: (1.0, 0.0), 168: (0.0, 0.0)}
EYE_CENTRES = np.array([[-0.7, 0.0], [0.7, 0.0]])


def synthetic_landmarks(scale: float, angle_deg: float, shift: tuple[float, float], n: int = 1,
                        noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """(n, 478, 3) landmarks: the stable points placed by a similarity transform, the rest random."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 200, size=(n, 478, 3))
    pts[..., 2] = 0.0
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    for idx, q in CANON.items():
        pts[:, idx, :2] = scale * rot @ np.asarray(q) + np.asarray(shift)
    pts[:, list(CANON), :2] += rng.normal(0, noise, size=(n, len(CANON), 2))
    return pts


def _apply(m: np.ndarray, p: np.ndarray) -> np.ndarray:
    return p @ m[:, :2].T + m[:, 2]


EXPECTED_EYES = np.array([[0.5 * SIZE - 0.5 * EYE_DISTANCE * SIZE, EYE_Y * SIZE],
                          [0.5 * SIZE + 0.5 * EYE_DISTANCE * SIZE, EYE_Y * SIZE]])


@pytest.mark.parametrize("scale, angle, shift", [(50, 0, (120, 90)), (130, 12, (400, 300)), (30, -25, (60, 200))])
def test_eyes_land_on_canonical_positions(scale, angle, shift):
    pts = synthetic_landmarks(scale, angle, shift)
    params = crop_params(pts, np.array([True]), size=SIZE, sigma=0)
    a = math.radians(angle)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    eyes_src = (scale * (rot @ EYE_CENTRES.T)).T + np.asarray(shift)
    np.testing.assert_allclose(_apply(params.matrices[0], eyes_src), EXPECTED_EYES, atol=1e-6)
    assert params.eye_distance[0] == pytest.approx(1.4 * scale)


def test_crop_image_puts_drawn_eyes_at_canonical_positions():
    cv2 = pytest.importorskip("cv2")
    scale, angle, shift = 60.0, 10.0, (300.0, 220.0)
    pts = synthetic_landmarks(scale, angle, shift)
    a = math.radians(angle)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    eyes_src = (scale * (rot @ EYE_CENTRES.T)).T + np.asarray(shift)
    image = np.zeros((480, 640, 3), np.uint8)
    for (x, y), colour in zip(eyes_src, [(255, 0, 0), (0, 255, 0)]):
        cv2.circle(image, (int(round(x)), int(round(y))), 4, colour, -1)
    it, params = align_clip([image], pts, np.array([True]), size=SIZE, sigma=0)
    crop = next(it)
    assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == np.uint8
    for channel, expected in zip((0, 1), EXPECTED_EYES):
        ys, xs = np.nonzero(crop[..., channel] > 128)
        assert abs(xs.mean() - expected[0]) < 1.5 and abs(ys.mean() - expected[1]) < 1.5


def test_3d_eye_distance_makes_scale_robust_to_yaw():
    pts = synthetic_landmarks(60, 0, (200, 200))
    turned = pts.copy()
    # Yaw by 40 degrees about the vertical axis through the nose bridge: x shrinks, z appears.
    c = math.cos(math.radians(40))
    s = math.sin(math.radians(40))
    x = turned[0, :, 0] - 200
    turned[0, :, 0] = 200 + c * x
    turned[0, :, 2] = s * x
    d_front = crop_params(pts, [True], sigma=0).eye_distance[0]
    d_turned = crop_params(turned, [True], sigma=0).eye_distance[0]
    assert d_turned == pytest.approx(d_front, rel=1e-6)


def test_smoothing_reduces_jitter():
    n = 100
    noisy = synthetic_landmarks(60, 5, (200, 150), n=n, noise=1.5, seed=1)
    clean = synthetic_landmarks(60, 5, (200, 150), n=1)
    a = math.radians(5)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    eyes_src = (60 * (rot @ EYE_CENTRES.T)).T + np.array([200, 150])
    flags = np.ones(n, bool)

    def jitter(sigma: float) -> float:
        p = crop_params(noisy, flags, sigma=sigma)
        where = np.stack([_apply(m, eyes_src) for m in p.matrices])  # true eyes in crop pixels
        return float(np.linalg.norm(np.diff(where, axis=0), axis=-1).mean())

    raw, smooth = jitter(0), jitter(2.0)
    assert smooth < 0.4 * raw, (raw, smooth)
    # and smoothing does not bias a static face
    p = crop_params(noisy, flags, sigma=2.0)
    ref = crop_params(clean, [True], sigma=0)
    assert np.abs(p.anchor.mean(0) - ref.anchor[0]).max() < 0.5


def test_smoothing_has_no_lag_on_motion():
    # A face moving at constant speed: zero-phase smoothing keeps it centred (interior frames).
    n = 50
    pts = np.concatenate([synthetic_landmarks(60, 0, (100 + 3 * k, 150)) for k in range(n)])
    p = crop_params(pts, np.ones(n, bool), sigma=3.0)
    raw = crop_params(pts, np.ones(n, bool), sigma=0)
    np.testing.assert_allclose(p.anchor[13:-13], raw.anchor[13:-13], atol=1e-6)


def test_missing_faces_are_interpolated_and_held():
    n = 7
    pts = np.concatenate([synthetic_landmarks(60, 0, (100 + 10 * k, 150)) for k in range(n)])
    flags = np.array([False, True, True, False, False, True, False])
    pts[~flags] = np.nan
    p = crop_params(pts, flags, sigma=0)
    assert p.measured.tolist() == flags.tolist()
    x = p.anchor[:, 0]
    assert x[0] == pytest.approx(110)  # held from the first good frame
    assert x[3] == pytest.approx(130) and x[4] == pytest.approx(140)  # interpolated
    assert x[6] == pytest.approx(150)  # held from the last good frame
    assert np.isfinite(p.matrices).all()


def test_no_face_at_all_falls_back_to_centre_crop():
    pts = np.full((3, 478, 3), np.nan)
    frames = [np.full((120, 160, 3), 50, np.uint8)] * 3
    it, p = align_clip(frames, pts, np.zeros(3, bool), size=64)
    out = list(it)
    assert p.fallback and len(out) == 3 and out[0].shape == (64, 64, 3)
    # the centred square (side = frame height) fills the crop
    centre = _apply(p.matrices[0], np.array([[80.0, 60.0]]))[0]
    np.testing.assert_allclose(centre, [32, 32], atol=1e-6)


def test_source_size_rescales_transform_for_downscaled_frames():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    big = cv2.resize(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), (640, 480), interpolation=cv2.INTER_CUBIC)
    small = cv2.resize(big, (320, 240), interpolation=cv2.INTER_AREA)
    pts = synthetic_landmarks(60, 0, (320, 240))
    it_big, _ = align_clip([big], pts, [True], size=128)
    it_small, _ = align_clip([small], pts, [True], size=128, source_size=(640, 480))
    a, b = next(it_big).astype(float), next(it_small).astype(float)
    assert np.abs(a - b).mean() < 6.0


def test_similarity_matrix_is_a_similarity():
    m = similarity_matrix(np.array([10.0, 20.0]), 50.0, 0.3, 256)
    lin = m[:, :2]
    np.testing.assert_allclose(lin @ lin.T, np.eye(2) * (EYE_DISTANCE * 256 / 50.0) ** 2, atol=1e-9)
    assert crops.VERSION == "1"
