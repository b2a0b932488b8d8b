"""M-LMD / F-LMD against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from lesbench.metrics.landmarks import (
    MEDIAPIPE_LIPS, LandmarkDistance, centred_distance, landmark_distance, lmd,
)
from lesbench.metrics.protocol import paired_indices


def _face(n_frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(50, 200, size=(n_frames, 478, 3)).astype(np.float32)


def test_centred_distance_by_hand():
    a = np.array([[[0.0, 0.0], [2.0, 0.0]]])       # mean (1, 0)
    b = np.array([[[10.0, 10.0], [14.0, 10.0]]])   # mean (12, 10): centred (-2,0), (2,0)
    # centred a: (-1,0), (1,0) -> distances 1 and 1 -> mean 1
    assert centred_distance(a, b)[0] == pytest.approx(1.0)


def test_translation_is_ignored_and_mouth_moves_count():
    ref = _face(4)
    pred = ref.copy()
    pred[..., :2] += np.array([7.0, -3.0], np.float32)  # whole face shifted: zero distance
    r = landmark_distance(pred, ref)
    assert r.m_lmd == pytest.approx(0.0, abs=1e-4) and r.f_lmd == pytest.approx(0.0, abs=1e-4)
    # move the 40 lip points by (3, 4) px in every frame: mouth set centred -> 0 again,
    # full face: lips move by 5 px relative to the face mean which moves by 40/478 * (3, 4)
    pred = ref.copy()
    pred[:, list(MEDIAPIPE_LIPS), 0] += 3.0
    pred[:, list(MEDIAPIPE_LIPS), 1] += 4.0
    r = landmark_distance(pred, ref)
    assert r.m_lmd == pytest.approx(0.0, abs=1e-4)
    shift = np.array([3.0, 4.0]) * 40 / 478
    lips = np.linalg.norm(np.array([3.0, 4.0]) - shift)
    others = np.linalg.norm(shift)
    assert r.f_lmd == pytest.approx((40 * lips + 438 * others) / 478, rel=1e-4)


def test_mouth_opening_by_hand():
    ref = _face(2)
    pred = ref.copy()
    pred[:, 14, 1] += 10.0  # lower inner lip 10 px lower
    r = landmark_distance(pred, ref)
    # mouth set: point 14 moves 10 px, the set's mean by 10/40 px in y: 39 points at 0.25, one at 9.75
    assert r.m_lmd == pytest.approx((39 * 0.25 + 9.75) / 40, rel=1e-4)
    assert r.f_lmd == pytest.approx((477 * 10 / 478 + (10 - 10 / 478)) / 478, rel=1e-4)


def test_rescaled_to_256_and_missing_faces_skipped():
    ref = _face(3)
    pred = ref.copy()
    pred[:, 14, 1] += 10.0
    big = pred.copy()
    big[..., :2] *= 2.0  # pred video is 512x512: its pixels are twice as large
    r1 = landmark_distance(pred, ref)
    r2 = landmark_distance(big, ref, pred_size=(512, 512), ref_size=(256, 256))
    assert r2.m_lmd == pytest.approx(r1.m_lmd, rel=1e-5)
    big[1] = np.nan
    r3 = landmark_distance(big, ref, pred_size=(512, 512))
    assert r3.n_valid == 2 and r3.m_lmd == pytest.approx(r1.m_lmd, rel=1e-5)


def test_linspace_pairing_like_eat():
    a, b = paired_indices(10, 4)
    np.testing.assert_array_equal(a, [0, 2, 5, 7])  # floor(linspace(0, 10, 4, endpoint=False))
    np.testing.assert_array_equal(b, [0, 1, 2, 3])
    ref = _face(4)
    pred = np.repeat(ref, 2, axis=0)  # twice as many frames showing the same faces
    assert landmark_distance(pred, ref).f_lmd == pytest.approx(0.0, abs=1e-4)


def test_class_mean_over_clips_and_twin():
    ref = _face(3)
    p1, p2 = ref.copy(), ref.copy()
    p1[:, 14, 1] += 10.0
    p2[:, 14, 1] += 20.0
    m = LandmarkDistance()
    m.update(p1, ref)
    m.update(p2, ref)
    out = m.compute()
    assert out["m_lmd"] == pytest.approx((lmd(p1, ref)["m_lmd"] + lmd(p2, ref)["m_lmd"]) / 2)
    assert m.version == "lmd-mp478/1"
    assert LandmarkDistance(landmarks="dlib68").version == "lmd-dlib68/1"


def test_dlib68_mouth_subset():
    ref = np.random.default_rng(0).uniform(50, 200, (2, 68, 2))
    pred = ref.copy()
    pred[:, 57, 1] += 4.0  # bottom of the outer lip
    r = landmark_distance(pred, ref, landmarks="dlib68")
    assert r.m_lmd == pytest.approx((19 * 0.2 + 3.8) / 20, rel=1e-6)
    assert r.f_lmd == pytest.approx((67 * 4 / 68 + 4 - 4 / 68) / 68, rel=1e-6)


def test_mediapipe_lip_indices_match_mediapipe():
    fl = pytest.importorskip("mediapipe.tasks.python.vision.face_landmarker")
    lips = {i for c in fl.FaceLandmarksConnections.FACE_LANDMARKS_LIPS for i in (c.start, c.end)}
    assert lips == set(MEDIAPIPE_LIPS)
