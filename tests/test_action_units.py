"""Blendshape -> AU mapping: unit behaviour, and the FACS rises on real MEAD clips (meaddev)."""

from __future__ import annotations

import numpy as np
import pytest

from lesbench.extract.action_units import AU_FORMULAS, PyFeatAUExtractor, au_frame, au_from_blendshapes, facs_rises
from lesbench.schema import AU_NAMES, BLENDSHAPE_NAMES, EMOTIONS

IDX = {n: i for i, n in enumerate(BLENDSHAPE_NAMES)}


def _bs(**scores: float) -> np.ndarray:
    v = np.zeros(len(BLENDSHAPE_NAMES), np.float32)
    for name, value in scores.items():
        v[IDX[name]] = value
    return v


def _au(vec: np.ndarray) -> dict[str, float]:
    return dict(zip(AU_NAMES, au_from_blendshapes(vec[None])[0].tolist()))


def test_shape_order_and_range():
    rng = np.random.default_rng(0)
    bs = rng.uniform(0, 1, size=(50, 52)).astype(np.float32)
    out = au_from_blendshapes(bs)
    assert out.shape == (50, 17) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    assert set(AU_FORMULAS) == set(AU_NAMES)
    assert au_from_blendshapes(bs[0]).shape == (17,)
    # Out-of-range scores are clipped, not propagated.
    assert au_from_blendshapes(np.full((1, 52), 2.0)).max() <= 1.0
    with pytest.raises(ValueError, match="52 blendshapes"):
        au_from_blendshapes(np.zeros((3, 51)))


@pytest.mark.parametrize(
    "au, scores, expected",
    [
        ("AU01", {"browInnerUp": 0.6}, 0.6),
        ("AU02", {"browOuterUpLeft": 0.6, "browOuterUpRight": 0.2}, 0.4),
        ("AU04", {"browDownLeft": 0.5, "browDownRight": 0.3}, 0.4),
        ("AU05", {"eyeWideLeft": 0.3, "eyeWideRight": 0.5}, 0.4),
        ("AU07", {"eyeSquintLeft": 0.2, "eyeSquintRight": 0.4}, 0.3),
        ("AU10", {"mouthUpperUpLeft": 0.7, "mouthUpperUpRight": 0.5}, 0.6),
        ("AU12", {"mouthSmileLeft": 0.9, "mouthSmileRight": 0.7}, 0.8),
        ("AU14", {"mouthDimpleLeft": 0.4, "mouthDimpleRight": 0.0}, 0.2),
        ("AU15", {"mouthFrownLeft": 0.1, "mouthFrownRight": 0.3}, 0.2),
        ("AU17", {"mouthShrugLower": 0.35}, 0.35),
        ("AU20", {"mouthStretchLeft": 0.2, "mouthStretchRight": 0.2}, 0.2),
        ("AU23", {"mouthPressLeft": 0.5, "mouthPressRight": 0.1}, 0.3),
        ("AU26", {"jawOpen": 0.45}, 0.45),
        ("AU45", {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 0.8}, 0.9),
        # direct blendshapes where MediaPipe's model outputs them
        ("AU06", {"cheekSquintLeft": 0.5, "cheekSquintRight": 0.3}, 0.4),
        ("AU09", {"noseSneerLeft": 0.5, "noseSneerRight": 0.5}, 0.5),
        # proxies: eye narrowing x smile; upper-lip raise x eye narrowing x (1 - smile)
        ("AU06", {"eyeSquintLeft": 0.4, "eyeSquintRight": 0.4, "mouthSmileLeft": 0.9, "mouthSmileRight": 0.9}, 0.6),
        ("AU09", {"mouthUpperUpLeft": 0.5, "mouthUpperUpRight": 0.5, "eyeSquintLeft": 0.5, "eyeSquintRight": 0.5}, 0.5),
        ("AU09", {"mouthUpperUpLeft": 0.5, "mouthUpperUpRight": 0.5, "eyeSquintLeft": 0.5, "eyeSquintRight": 0.5,
                  "mouthSmileLeft": 0.5, "mouthSmileRight": 0.5}, 0.25),
        # lips part: jaw-driven aperture unless the lips are held closed, or the lower lip drops
        ("AU25", {"jawOpen": 0.5, "mouthClose": 0.2}, 0.3),
        ("AU25", {"jawOpen": 0.1, "mouthLowerDownLeft": 0.4, "mouthLowerDownRight": 0.4}, 0.4),
        ("AU25", {"jawOpen": 0.2, "mouthClose": 0.5}, 0.0),
    ],
)
def test_each_au_follows_its_blendshapes(au, scores, expected):
    assert _au(_bs(**scores))[au] == pytest.approx(expected, abs=1e-6)


def test_aus_are_independent_of_unrelated_blendshapes():
    # A brow raise moves only the brow AUs; a blink only AU45.
    brow = _au(_bs(browInnerUp=0.8, browOuterUpLeft=0.8, browOuterUpRight=0.8))
    assert {k for k, v in brow.items() if v > 0} == {"AU01", "AU02"}
    blink = _au(_bs(eyeBlinkLeft=1.0, eyeBlinkRight=1.0))
    assert {k for k, v in blink.items() if v > 0} == {"AU45"}
    # A smile with relaxed eyes is AU12 (and the lips stay together): no AU06, no AU09.
    smile = _au(_bs(mouthSmileLeft=0.9, mouthSmileRight=0.9))
    assert {k for k, v in smile.items() if v > 0} == {"AU12"}


def test_nan_rows_stay_nan():
    bs = np.zeros((3, 52), np.float32)
    bs[1] = np.nan
    out = au_from_blendshapes(bs)
    assert np.isnan(out[1]).all() and np.isfinite(out[[0, 2]]).all()
    df = au_frame(bs)
    assert list(df.columns) == list(AU_NAMES) and len(df) == 3


def test_facs_rises_helper():
    delta = dict.fromkeys(AU_NAMES, 0.0) | {"AU06": 0.2, "AU12": -0.1}
    assert facs_rises(delta, "happy") == {"AU06": True, "AU12": False}
    assert facs_rises(delta, "happy", threshold=0.3) == {"AU06": False, "AU12": False}


def test_pyfeat_backend_absent_is_a_clear_error():
    from lesbench.errors import LesbenchError

    try:
        import feat  # noqa: F401
    except ImportError:
        with pytest.raises(LesbenchError, match="py-feat"):
            PyFeatAUExtractor()
    else:  # pragma: no cover - only where py-feat is installed
        pytest.skip("py-feat installed; its weights decide the outcome")


# ---------------------------------------------------------------------------------------------
# Real faces: FACS rises on MEAD W009 (front, level 3 vs neutral)
# ---------------------------------------------------------------------------------------------

#: The FACS rises expected from the blendshapes; each (emotion, AUs) needs at least one of the AUs to rise.
REQUIRED_RISES = {
    "happy": [("AU12",), ("AU06",)],
    "surprised": [("AU01",), ("AU02",)],
    "angry": [("AU04",)],
    "sad": [("AU15",)],
    "disgusted": [("AU09", "AU10")],
    "fear": [("AU01",)],
}
MIN_RISE = 0.01


def mead_au_deltas(root) -> "dict[str, dict[str, float]]":
    """Per emotion, mean AU over the clip minus the speaker's neutral clip (W009, front)."""
    from lesbench import io
    from lesbench.extract.face import FaceTracker

    means: dict[str, np.ndarray] = {}
    with FaceTracker() as tracker:
        for emotion in EMOTIONS:
            clips = sorted((root / "W009" / "video" / "front" / emotion).glob("level_*/*.mp4"))
            if not clips:
                continue
            df = tracker.track(io.iter_frames(clips[-1], fps=25))
            assert df["face"].mean() > 0.95, f"{clips[-1]}: face found in too few frames"
            means[emotion] = df[list(AU_NAMES)].mean().to_numpy()
    neutral = means["neutral"]
    return {e: dict(zip(AU_NAMES, (m - neutral).tolist())) for e, m in means.items() if e != "neutral"}


@pytest.mark.meaddev
def test_facs_rises_on_real_mead(mead_dev):
    deltas = mead_au_deltas(mead_dev)
    failures = []
    for emotion, groups in REQUIRED_RISES.items():
        for aus in groups:
            best = max(deltas[emotion][au] for au in aus)
            if best <= MIN_RISE:
                failures.append(f"{emotion}: {'/'.join(aus)} rose by {best:+.3f}")
    assert not failures, failures
    # The signal is specific: each emotion's key AU rises more there than in most others.
    assert max(deltas, key=lambda e: deltas[e]["AU12"]) == "happy"
    assert max(deltas, key=lambda e: deltas[e]["AU04"]) == "angry"
    assert max(deltas, key=lambda e: deltas[e]["AU05"]) == "surprised"
