"""M-LMD / F-LMD (and EAT's M-LVD / F-LVD) against hand-computed values; dlib's 68 points on a
real photograph (skipped without dlib or the predictor file); real MEAD clips (meaddev)."""

from __future__ import annotations

import numpy as np
import pytest

from lesbench.metrics.landmarks import LandmarkDistance, lmd, lmd_version
from lesbench.metrics.landmarks_distance import (DLIB68_MOUTH, MEDIAPIPE_LIPS, LMDResult, centred_distance,
                                                 landmark_distance, paired_landmark_distance)
from lesbench.metrics.landmarks_dlib import eat_grey
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


# --------------------------------------------------------------------------------------------
# EAT's definition on landmark arrays (the kernel, without detection)
# --------------------------------------------------------------------------------------------


def _dlib_face(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(50, 200, (68, 2))


def test_eat_kernel_by_hand():
    """Four paired frames, the generated video has no face in frame 1 (skipped, counted)."""
    face = _dlib_face()
    ref = np.repeat(face[None], 4, axis=0)
    pred = ref.copy()
    pred[1] = np.nan
    pred[2, 57, 1] += 4.0                  # bottom of the outer lip 4 px lower
    pred[3, 57, 1] += 4.0
    pred[3, 0, 0] += 3.0                   # and a jaw point 3 px to the right
    r = paired_landmark_distance(pred, ref, DLIB68_MOUTH, "eat")
    assert (r.n_frames, r.n_valid, r.n_no_face_pred, r.n_no_face_ref) == (4, 3, 1, 0)
    # M-LMD: frames 2 and 3: mouth mean moves 4/20 in y -> 19 points at 0.2, point 57 at 3.8
    assert r.m_lmd == pytest.approx((0 + 7.6 + 7.6) / (3 * 20), rel=1e-12)
    # F-LMD: frame 2: 67 points at 4/68, point 57 at 4 - 4/68; frame 3: mean moves (3, 4)/68
    f2 = 67 * 4 / 68 + (4 - 4 / 68)
    s = np.array([3.0, 4.0]) / 68
    f3 = (np.hypot(0 - s[0], 4 - s[1]) + np.hypot(3 - s[0], 0 - s[1]) + 66 * np.hypot(*s))
    assert r.f_lmd == pytest.approx((0 + f2 + f3) / (3 * 68), rel=1e-12)
    # velocities between consecutive VALID frames (0 -> 2 spans the skipped frame), raw pixels;
    # the reference does not move: frame 2 - frame 0: point 57 moved 4; frame 3 - 2: jaw point 3
    assert r.m_lvd == pytest.approx(4 / (3 * 20), rel=1e-12)
    assert r.f_lvd == pytest.approx(4 / (3 * 68), rel=1e-12)      # EAT's code: the mouth sum
    assert r.f_lvd_face == pytest.approx(7 / (3 * 68), rel=1e-12)  # the whole face's velocities


def test_eat_velocity_is_the_difference_of_both_videos_velocities():
    face = _dlib_face(1)
    ref = np.repeat(face[None], 3, axis=0)
    ref[1:, 50, :] += [1.0, 1.0]           # reference point 50 moves (1, 1) at frame 1, then stays
    pred = ref.copy()
    pred[2, 50, :] += [3.0, 4.0]           # generated: the same, and (3, 4) more at frame 2
    ref[:, :, 0] += 10.0                   # a constant offset changes no velocity
    r = paired_landmark_distance(pred, ref, DLIB68_MOUTH, "eat")
    assert r.m_lvd == pytest.approx(5 / (3 * 20), rel=1e-12)
    assert r.f_lvd == pytest.approx(5 / (3 * 68), rel=1e-12)
    # the reference frame missing at 1 makes the step 0 -> 2 for both videos
    ref[1] = np.nan
    r = paired_landmark_distance(pred, ref, DLIB68_MOUTH, "eat")
    assert (r.n_valid, r.n_no_face_ref) == (2, 1)
    assert r.m_lvd == pytest.approx(5 / (2 * 20), rel=1e-12)


def test_eat_f_lvd_reproduces_the_mouth_term_bug():
    rng = np.random.default_rng(2)
    ref = rng.uniform(50, 200, (6, 68, 2))
    pred = ref + rng.normal(0, 2, ref.shape)
    r = paired_landmark_distance(pred, ref, DLIB68_MOUTH, "eat")
    assert r.f_lvd == pytest.approx(r.m_lvd * 20 / 68, rel=1e-12)
    assert r.f_lvd_face != pytest.approx(r.f_lvd, rel=1e-3)


def test_definitions_agree_on_lmd_and_differ_in_outputs():
    rng = np.random.default_rng(3)
    ref = rng.uniform(50, 200, (5, 478, 2))
    pred = ref + rng.normal(0, 1.5, ref.shape)
    pred[2] = np.nan
    a = landmark_distance(pred, ref)
    b = landmark_distance(pred, ref, definition="eat")
    assert a.m_lmd == pytest.approx(b.m_lmd, rel=1e-12) and a.f_lmd == pytest.approx(b.f_lmd, rel=1e-12)
    assert set(lmd(pred, ref)) == {"m_lmd", "f_lmd"}
    assert set(lmd(pred, ref, definition="eat")) == {"m_lmd", "f_lmd", "m_lvd", "f_lvd"}
    # mediapipe478 + eat normalises by the set sizes (40 lip points, 478 face points)
    s = np.linalg.norm(np.diff(pred[[0, 1, 3, 4]], axis=0) - np.diff(ref[[0, 1, 3, 4]], axis=0), axis=2)
    # (face tables hold float32 landmarks, hence the tolerance)
    assert b.m_lvd == pytest.approx(s[:, list(MEDIAPIPE_LIPS)].sum() / (4 * 40), rel=1e-6)
    assert b.f_lvd == pytest.approx(s[:, list(MEDIAPIPE_LIPS)].sum() / (4 * 478), rel=1e-6)


def test_eat_mean_over_valid_videos_and_counts():
    ref = _face(3, seed=4)[..., :2].astype(np.float64)
    p1, p2 = ref.copy(), ref.copy()
    p1[:, 14, 1] += 4.0
    p2[1:, 14, 1] += 2.0
    p2[0] = np.nan
    none = np.full_like(ref, np.nan)
    m = LandmarkDistance(definition="eat")
    for p in (p1, p2, none):
        m.update(pred_face=p, ref_face=ref)
    r1, r2 = (paired_landmark_distance(p, ref, MEDIAPIPE_LIPS, "eat") for p in (p1, p2))
    out = m.compute()
    counts = {"n_videos": 3, "n_videos_scored": 2, "n_videos_no_valid_frame": 1, "n_frames_paired": 9,
              "n_frames_valid": 5, "n_frames_no_face_pred": 4, "n_frames_no_face_ref": 0}
    assert m.counts == counts and {k: out[k] for k in counts} == counts  # counts go out as n_* keys
    for k in ("m_lmd", "f_lmd", "m_lvd", "f_lvd"):
        assert out[k] == pytest.approx((getattr(r1, k) + getattr(r2, k)) / 2, rel=1e-12)
    assert set(out) == {"m_lmd", "f_lmd", "m_lvd", "f_lvd", *counts}
    assert any("not scored" in n for n in m.clip_notes)  # notes of the last clip
    m.reset()
    m.update(pred_face=none, ref_face=ref)
    with pytest.raises(ValueError, match="no clip with a face"):
        m.compute()


def test_versions_name_landmarks_and_definition():
    assert lmd_version("mediapipe478") == "lmd-mp478/1"      # unchanged default numbers
    assert lmd_version("dlib68") == "lmd-dlib68/2"
    assert lmd_version("dlib68", "eat") == "lmd-dlib68-eat/1"
    assert lmd_version("mediapipe478", "eat") == "lmd-mp478-eat/1"
    assert LandmarkDistance(definition="eat").version == "lmd-mp478-eat/1"
    with pytest.raises(ValueError, match="definition"):
        LandmarkDistance(definition="paper")
    with pytest.raises(ValueError, match="landmark set"):
        LandmarkDistance(landmarks="dlib5")
    assert isinstance(landmark_distance(_face(2), _face(2)), LMDResult)


# --------------------------------------------------------------------------------------------
# dlib's 68 points on frames (a real, public-domain photograph from the demo's photo set)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dlib_landmarker():
    pytest.importorskip("dlib")
    pytest.importorskip("cv2")
    from lesbench.errors import LesbenchError
    from lesbench.metrics.base import MetricUnavailable
    from lesbench.metrics.landmarks_dlib import Dlib68Landmarker

    try:
        return Dlib68Landmarker()
    except (MetricUnavailable, LesbenchError) as exc:
        pytest.skip(f"dlib 68-point predictor unavailable: {exc}")


@pytest.fixture(scope="module")
def face_256(dlib_landmarker) -> np.ndarray:
    """Grace Hopper's official portrait (public domain, shipped by matplotlib) cropped around
    dlib's face box and resized to 256x256, as an aligned talking-head crop."""
    import cv2

    from lesbench.demo.identities import load_photo

    photo = load_photo("grace_hopper")
    box = dlib_landmarker.detector(eat_grey(photo), 0)[0]
    cx, cy = (box.left() + box.right()) // 2, (box.top() + box.bottom()) // 2
    half = int(0.8 * box.width())
    crop = photo[max(cy - half, 0):cy + half, max(cx - half, 0):cx + half]
    return cv2.resize(crop, (256, 256), interpolation=cv2.INTER_AREA)


def _stretch_mouth(image: np.ndarray, centre: np.ndarray, sx: float, sy: float, rx: float, ry: float) -> np.ndarray:
    """Magnify the image about ``centre`` by (sx, sy) inside an ellipse of radii (rx, ry), fading
    to no change at its border: the mouth opens and widens, the rest of the face stays put."""
    import cv2

    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    weight = np.clip(1 - ((xx - centre[0]) / rx) ** 2 - ((yy - centre[1]) / ry) ** 2, 0, 1) ** 2
    map_x = centre[0] + (xx - centre[0]) * (1 - weight * (1 - 1 / sx))
    map_y = centre[1] + (yy - centre[1]) * (1 - weight * (1 - 1 / sy))
    return cv2.remap(image, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)


def test_grey_image_is_rgb_read_as_bgr(dlib_landmarker, face_256):
    import cv2

    frame = face_256
    expected = 0.114 * frame[..., 0] + 0.587 * frame[..., 1] + 0.299 * frame[..., 2]
    np.testing.assert_allclose(eat_grey(frame), expected, atol=0.51)  # OpenCV's fixed-point rounding

    def run(grey):
        shape = dlib_landmarker.predictor(grey, dlib_landmarker.detector(grey, 0)[0])
        return np.array([(shape.part(k).x, shape.part(k).y) for k in range(68)], np.float32)

    got = dlib_landmarker(frame[None])[0]
    np.testing.assert_array_equal(got, run(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)))
    # the correct RGB->grey gives other landmarks on this photo, so the check above can fail
    assert np.abs(got - run(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))).sum() > 0


def test_dlib68_lmd_moves_when_only_the_mouth_moves(dlib_landmarker, face_256):
    pts = dlib_landmarker(face_256[None])[0]
    assert np.isfinite(pts).all()
    mouth = pts[list(DLIB68_MOUTH)]
    centre, width = mouth.mean(axis=0), float(np.ptp(mouth[:, 0]))
    ref = np.stack([face_256] * 4)
    same = lmd(ref, ref, landmarks="dlib68", definition="eat", landmarker=dlib_landmarker)
    assert same == {"m_lmd": 0.0, "f_lmd": 0.0, "m_lvd": 0.0, "f_lvd": 0.0}
    pred = np.stack([_stretch_mouth(face_256, centre, 1.2, sy, 0.9 * width, 0.5 * width)
                     for sy in (1.6, 1.8, 2.0, 2.2)])
    moved = lmd(pred, ref, landmarks="dlib68", definition="eat", landmarker=dlib_landmarker)
    assert moved["m_lmd"] > 1.5                   # pixels at 256
    assert moved["f_lmd"] < moved["m_lmd"]        # the 48 other points move less
    assert moved["m_lvd"] > 0 and moved["f_lvd"] == pytest.approx(moved["m_lvd"] * 20 / 68)


def test_dlib68_metric_reads_frames_loads_once_and_counts_faceless_frames(dlib_landmarker, face_256,
                                                                           monkeypatch):
    import dlib

    loads = []
    real = dlib.shape_predictor
    monkeypatch.setattr(dlib, "shape_predictor", lambda path: loads.append(path) or real(path))
    m = LandmarkDistance(device=None, landmarks="dlib68", crop_size=256, pairing="linspace", definition="eat")
    assert loads and len(loads) == 1
    assert m.inputs == ("pred_video", "ref_video") and not m.needs_face
    assert m.version == "lmd-dlib68-eat/1" and set(m.weight_hashes()) == {"dlib-shape-predictor-68"}
    ref = np.stack([face_256] * 6)
    pred = ref.copy()
    pred[2] = 128  # a flat grey frame: no face
    m.update(pred_video=pred, ref_video=ref)
    m.update(pred_video=pred[:3], ref_video=ref)   # 3 vs 6 frames: linspace pairs 0,1,2 with 0,2,4
    assert len(loads) == 1                           # models loaded once per instance
    assert m.counts == {"n_videos": 2, "n_videos_scored": 2, "n_videos_no_valid_frame": 0, "n_frames_paired": 9,
                        "n_frames_valid": 7, "n_frames_no_face_pred": 2, "n_frames_no_face_ref": 0}
    assert m.clip_notes and "1 of 3 paired frames skipped" in m.clip_notes[0]
    assert m.compute() == {"m_lmd": 0.0, "f_lmd": 0.0, "m_lvd": 0.0, "f_lvd": 0.0, **m.counts}
    # a 512x512 video: landmarks rescaled to the 256 crop
    import cv2

    big = np.stack([cv2.resize(f, (512, 512), interpolation=cv2.INTER_CUBIC) for f in ref[:2]])
    r = lmd(big, ref[:2], landmarks="dlib68", landmarker=dlib_landmarker)
    assert r["f_lmd"] < 2.0  # the same face at twice the size, compared at 256
    with pytest.raises(ValueError, match="uint8 RGB"):
        m.update(pred_video=pred.astype(np.float32), ref_video=ref)


def test_dlib68_without_the_predictor_file_is_unavailable(tmp_path):
    pytest.importorskip("dlib")
    from lesbench.metrics.base import MetricUnavailable

    with pytest.raises(MetricUnavailable, match="missing.dat"):
        LandmarkDistance(landmarks="dlib68", predictor_path=tmp_path / "missing.dat")


@pytest.mark.meaddev
def test_dlib68_eat_on_real_mead_clips(mead_dev, dlib_landmarker):
    """A real W009 clip against a 3-pixel-shifted copy of itself and against another clip."""
    from lesbench import io

    clip = io.read_frames(mead_dev / "W009/video/front/angry/level_3/001.mp4", fps=25)[:50]
    other = io.read_frames(mead_dev / "W009/video/front/happy/level_3/001.mp4", fps=25)[:50]
    shifted = np.zeros_like(clip)
    shifted[:, :, 3:] = clip[:, :, :-3]
    kw = dict(landmarks="dlib68", definition="eat", landmarker=dlib_landmarker)
    self_ = lmd(clip, clip, **kw)
    shift = lmd(shifted, clip, **kw)
    diff = lmd(other, clip, **kw)
    assert self_["m_lmd"] == 0.0 and self_["f_lmd"] == 0.0
    assert shift["m_lmd"] < diff["m_lmd"] and shift["m_lvd"] < diff["m_lvd"]


def test_score_runs_dlib68_on_frames(dlib_landmarker, face_256, tmp_path):
    """``lesbench score`` with a protocol saying ``lmd: {landmarks: dlib68}`` feeds frames, not
    MediaPipe tables, and records the predictor's sha256."""
    import copy

    import yaml

    from lesbench import io
    from lesbench.metrics.protocol import load_protocol
    from lesbench.metrics.score import score

    raw = copy.deepcopy(load_protocol("mead-v1").raw)
    raw["lmd"] = {"landmarks": "dlib68", "crop_size": 256}
    proto = tmp_path / "dlib.yaml"
    proto.write_text(yaml.safe_dump(raw))
    pts = dlib_landmarker(face_256[None])[0]
    mouth = pts[list(DLIB68_MOUTH)]
    centre, width = mouth.mean(axis=0), float(np.ptp(mouth[:, 0]))
    ref = np.stack([face_256] * 8)
    pred = np.stack([_stretch_mouth(face_256, centre, 1.2, 1.6 + 0.1 * i, 0.9 * width, 0.5 * width)
                     for i in range(8)])
    for d, frames in (("pred", pred), ("ref", ref)):
        io.write_video(tmp_path / d / "clip.mp4", frames, fps=25)
    report = score(tmp_path / "pred", ref=tmp_path / "ref", metrics=["lmd"], protocol=proto,
                   metric_options={"lmd": {"definition": "eat"}})
    res = report.metrics["lmd"]
    assert res.unavailable is None and res.version == "lmd-dlib68-eat/1"
    assert set(res.value) == {"m_lmd", "f_lmd", "m_lvd", "f_lvd"}  # counts are kept apart from values
    # the same numbers as the functional twin on the decoded frames
    twin = lmd(io.read_frames(tmp_path / "pred" / "clip.mp4"), io.read_frames(tmp_path / "ref" / "clip.mp4"),
               landmarks="dlib68", definition="eat", landmarker=dlib_landmarker)
    values = {k: v for k, v in twin.items() if not k.startswith("n_")}
    assert res.value == pytest.approx(values, rel=1e-12) and res.value["m_lmd"] > 1.0
    assert res.counts["n_frames_valid"] == 8 and res.counts["n_videos_scored"] == 1
    assert res.weights["dlib-shape-predictor-68"] == dlib_landmarker.sha256["dlib-shape-predictor-68"]
