"""Blendshape -> AU mapping: unit behaviour, and the FACS rises on real MEAD clips (meaddev)."""

from __future__ import annotations

import numpy as np
import pytest

from lesbench.extract.action_units import (
    AU_FORMULAS,
    BILATERAL_AUS,
    BILATERAL_SET_NAMES,
    SIDED_AU_FORMULAS,
    SIDED_AU_NAMES,
    PyFeatAUExtractor,
    au_frame,
    au_from_blendshapes,
    bilateral_set,
    facs_rises,
    sided_au_from_blendshapes,
)
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
    sided = sided_au_from_blendshapes(bs)
    assert np.isnan(sided[1]).all() and np.isfinite(sided[[0, 2]]).all()
    df = au_frame(bs)
    assert list(df.columns) == [*AU_NAMES, *SIDED_AU_NAMES] and len(df) == 3


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
            means[emotion] = df[[*AU_NAMES, *SIDED_AU_NAMES]].mean().to_numpy()
    neutral = means["neutral"]
    return {e: dict(zip([*AU_NAMES, *SIDED_AU_NAMES], (m - neutral).tolist()))
            for e, m in means.items() if e != "neutral"}


@pytest.fixture(scope="module")
def mead_deltas(mead_dev):
    return mead_au_deltas(mead_dev)


@pytest.mark.meaddev
def test_facs_rises_on_real_mead(mead_deltas):
    deltas = mead_deltas
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


@pytest.mark.meaddev
def test_real_contempt_is_one_sided(mead_deltas):
    """MEAD W009's contempt dimples and raises one side of the mouth: per side, its AU14 and
    AU10 rise on one side only, and its left/right difference is the largest of the emotions."""
    def one_sidedness(d):
        diff = sum(abs(d[a + "_L"] - d[a + "_R"]) for a in BILATERAL_AUS)
        return diff / sum(abs(d[a + "_L"]) + abs(d[a + "_R"]) for a in BILATERAL_AUS)

    c = mead_deltas["contempt"]
    for au in ("AU14", "AU10"):
        hi, lo = sorted((c[au + "_L"], c[au + "_R"]), reverse=True)
        assert hi > 0.2 and abs(lo) < 0.05, (au, c[au + "_L"], c[au + "_R"])
    index = {e: one_sidedness(d) for e, d in mead_deltas.items()}
    assert max(index, key=index.get) == "contempt", index


# --- per-side AUs ------------------------------------------------------------------------------
def _v1_averaged(bs: np.ndarray) -> np.ndarray:
    """The averaged mapping as stage version 1 computed it, written out formula by formula
    (AU_FORMULAS), to show that adding the per-side columns left the averaged ones unchanged."""
    b = {n: np.clip(bs[:, i].astype(np.float32), 0, 1) for i, n in enumerate(BLENDSHAPE_NAMES)}

    def m(stem):
        return 0.5 * (b[stem + "Left"] + b[stem + "Right"])

    au = {
        "AU01": b["browInnerUp"], "AU02": m("browOuterUp"), "AU04": m("browDown"), "AU05": m("eyeWide"),
        "AU06": np.fmax(m("cheekSquint"), np.sqrt(m("eyeSquint") * m("mouthSmile"))),
        "AU07": m("eyeSquint"),
        "AU09": np.fmax(m("noseSneer"), np.sqrt(m("mouthUpperUp") * m("eyeSquint")) * (1.0 - m("mouthSmile"))),
        "AU10": m("mouthUpperUp"), "AU12": m("mouthSmile"), "AU14": m("mouthDimple"), "AU15": m("mouthFrown"),
        "AU17": b["mouthShrugLower"], "AU20": m("mouthStretch"), "AU23": m("mouthPress"),
        "AU25": np.fmax(b["jawOpen"] - b["mouthClose"], m("mouthLowerDown")), "AU26": b["jawOpen"],
        "AU45": m("eyeBlink"),
    }
    return np.clip(np.stack([au[n] for n in AU_NAMES], -1), 0, 1).astype(np.float32)


def test_averaged_columns_unchanged_by_the_sided_ones():
    rng = np.random.default_rng(3)
    bs = rng.uniform(-0.1, 1.1, size=(400, 52)).astype(np.float32)
    bs[7] = np.nan
    # asymmetric faces too: one side near zero, the other high
    bs[::3, [IDX["mouthSmileLeft"], IDX["eyeSquintRight"]]] = 0.0
    np.testing.assert_array_equal(au_from_blendshapes(bs), _v1_averaged(bs))


def test_sided_names_and_dimension():
    # 13 paired AUs -> 26 per-side columns; with the 4 unpaired ones, a 30-d bilateral set
    assert BILATERAL_AUS == ("AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14",
                             "AU15", "AU20", "AU23", "AU45")
    assert set(SIDED_AU_FORMULAS) == set(BILATERAL_AUS)
    assert len(SIDED_AU_NAMES) == 26 and SIDED_AU_NAMES[:2] == ("AU02_L", "AU02_R")
    assert len(BILATERAL_SET_NAMES) == 30
    assert [n for n in BILATERAL_SET_NAMES if "_" not in n] == ["AU01", "AU17", "AU25", "AU26"]


def test_sided_aus_from_hand_set_blendshapes():
    # A one-sided smile and dimple (contempt), a one-sided brow lowerer, asymmetric squint
    bs = _bs(mouthSmileLeft=0.8, mouthSmileRight=0.1, mouthDimpleLeft=0.6, browDownRight=0.5,
             eyeSquintLeft=0.2, eyeSquintRight=0.4, mouthUpperUpRight=0.9, eyeBlinkLeft=1.0,
             browInnerUp=0.7, jawOpen=0.3)
    side = dict(zip(SIDED_AU_NAMES, sided_au_from_blendshapes(bs[None])[0].tolist()))
    hand = {
        "AU12_L": 0.8, "AU12_R": 0.1, "AU14_L": 0.6, "AU14_R": 0.0, "AU04_L": 0.0, "AU04_R": 0.5,
        "AU07_L": 0.2, "AU07_R": 0.4, "AU45_L": 1.0, "AU45_R": 0.0, "AU10_L": 0.0, "AU10_R": 0.9,
        # AU06 proxy per side: sqrt(eyeSquint_s * smile_s)
        "AU06_L": np.sqrt(0.2 * 0.8), "AU06_R": np.sqrt(0.4 * 0.1),
        # AU09 proxy per side: sqrt(upperUp_s * eyeSquint_s) * (1 - smile_s)
        "AU09_L": 0.0, "AU09_R": np.sqrt(0.9 * 0.4) * (1 - 0.1),
        "AU02_L": 0.0, "AU02_R": 0.0, "AU05_L": 0.0, "AU05_R": 0.0, "AU15_L": 0.0, "AU15_R": 0.0,
        "AU20_L": 0.0, "AU20_R": 0.0, "AU23_L": 0.0, "AU23_R": 0.0,
    }
    assert set(hand) == set(SIDED_AU_NAMES)
    for name, value in hand.items():
        assert side[name] == pytest.approx(value, abs=1e-6), name
    # the linear AUs' averaged column is the mean of its two sides; the proxies are not
    avg = _au(bs)
    for au in ("AU04", "AU07", "AU10", "AU12", "AU14", "AU45"):
        assert avg[au] == pytest.approx(0.5 * (side[au + "_L"] + side[au + "_R"]), abs=1e-6)
    assert avg["AU06"] == pytest.approx(np.sqrt(0.3 * 0.45), abs=1e-6)
    # the bilateral set takes the unpaired AUs from the averaged columns
    full = dict(zip(BILATERAL_SET_NAMES, bilateral_set(au_from_blendshapes(bs[None]),
                                                       sided_au_from_blendshapes(bs[None]))[0].tolist()))
    assert full["AU01"] == pytest.approx(0.7) and full["AU26"] == pytest.approx(0.3)
    assert full["AU12_L"] == pytest.approx(0.8) and full["AU12_R"] == pytest.approx(0.1)


def test_mirrored_face_swaps_the_sides():
    # Swapping every Left/Right blendshape swaps every _L/_R column and leaves the averaged ones.
    rng = np.random.default_rng(1)
    bs = rng.uniform(0, 1, size=(20, 52)).astype(np.float32)
    swap = [IDX[n.replace("Left", "#").replace("Right", "Left").replace("#", "Right")] for n in BLENDSHAPE_NAMES]
    mirrored = bs[:, swap]
    a, b = sided_au_from_blendshapes(bs), sided_au_from_blendshapes(mirrored)
    partner = [SIDED_AU_NAMES.index(n[:-1] + ("R" if n.endswith("L") else "L")) for n in SIDED_AU_NAMES]
    np.testing.assert_array_equal(a, b[:, partner])
    np.testing.assert_allclose(au_from_blendshapes(bs), au_from_blendshapes(mirrored), atol=1e-7)


def test_action_unit_stage_writes_both_sets():
    import pandas as pd

    from lesbench.extract.frames_table import frames_schema
    from lesbench.pipelines.stages import ActionUnitStage

    bs = np.stack([_bs(mouthSmileLeft=0.8, mouthSmileRight=0.2), _bs(jawOpen=0.5)])
    frames = pd.DataFrame({"blendshapes": list(bs)})
    out = ActionUnitStage().process(frames)
    assert out["AU12"].tolist() == pytest.approx([0.5, 0.0])
    assert out["AU12_L"].tolist() == pytest.approx([0.8, 0.0])
    assert out["AU12_R"].tolist() == pytest.approx([0.2, 0.0])
    assert out["AU26"].tolist() == pytest.approx([0.0, 0.5])
    assert set(SIDED_AU_NAMES) <= set(frames_schema().names)
