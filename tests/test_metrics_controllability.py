"""Controllability: level Spearman / R^2 and unit isolation against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from lesbench.metrics.base import MetricUnavailable
from lesbench.metrics.controllability import (
    LevelControllability, controllability, level_control, project_on_direction, unit_isolation,
)
from lesbench.schema import AU_NAMES, FACIAL_UNITS

N = len(AU_NAMES)


def test_projection_by_hand():
    d = np.zeros(N)
    d[0], d[1] = 3.0, 4.0  # |d| = 5
    aus = np.zeros((2, N))
    aus[:, 0] = [0.2, 0.4]  # mean 0.3
    aus[:, 1] = [0.5, 0.5]
    assert project_on_direction(aus, d) == pytest.approx((0.3 * 3 + 0.5 * 4) / 5)
    base = np.zeros(N)
    base[1] = 0.5
    assert project_on_direction(aus, d, baseline=base) == pytest.approx(0.3 * 3 / 5)


def test_level_control_by_hand():
    levels = [0.0, 0.5, 1.0, 1.0]
    proj = [0.0, 1.0, 1.5, 2.5]
    r = level_control(levels, proj)
    # ranks: levels (1, 2, 3.5, 3.5), proj (1, 2, 3, 4)
    rx, ry = np.array([1, 2, 3.5, 3.5]), np.array([1, 2, 3, 4])
    assert r["spearman"] == pytest.approx(np.corrcoef(rx, ry)[0, 1])
    # least squares: slope = cov/var; x mean 0.625, y mean 1.25
    x, y = np.array(levels), np.array(proj)
    beta = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    alpha = y.mean() - beta * x.mean()
    r2 = 1 - ((y - alpha - beta * x) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert r["slope"] == pytest.approx(beta) and r["r2"] == pytest.approx(r2)
    perfect = level_control([0, 0.5, 1], [0.1, 0.6, 1.1])
    assert perfect["spearman"] == pytest.approx(1.0) and perfect["r2"] == pytest.approx(1.0)
    reverse = level_control([0, 0.5, 1], [3, 2, 0])
    assert reverse["spearman"] == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        level_control([1, 1, 1], [0, 1, 2])


def test_spearman_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 30) / 4
    y = x + rng.normal(0, 0.3, 30)
    assert level_control(x, y)["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic, rel=1e-12)


def test_unit_isolation_by_hand():
    before = np.zeros(N)
    after = np.zeros(N)
    brows = [AU_NAMES.index(a) for a in FACIAL_UNITS["brows"]]
    after[brows] = [0.6, 0.3, 0.0]          # inside mean |d| = 0.3
    after[AU_NAMES.index("AU12")] = 0.14    # one of 14 outside AUs moved: outside mean 0.01
    assert unit_isolation(before, after, "brows") == pytest.approx(0.01 / 0.3)
    assert np.isnan(unit_isolation(before, before, "brows"))
    with pytest.raises(ValueError):
        unit_isolation(before, after, "ears")


def test_metric_class_per_emotion():
    d = np.zeros(N)
    d[AU_NAMES.index("AU12")] = 1.0
    with pytest.raises(MetricUnavailable):
        LevelControllability()
    m = LevelControllability(directions={"happy": d})
    for level, v in [(0.0, 0.0), (0.5, 0.2), (1.0, 0.5)]:
        aus = np.zeros((3, N))
        aus[:, AU_NAMES.index("AU12")] = v
        m.update(aus, "happy", level)
        m.update(aus, "neutral", level)  # no direction: ignored
    out = m.compute()
    assert out["per_emotion"]["happy"]["spearman"] == pytest.approx(1.0)
    expected = controllability([0.0, 0.5, 1.0], [np.full((1, N), 0.0) + np.eye(N)[AU_NAMES.index("AU12")] * v
                                                 for v in (0.0, 0.2, 0.5)], d)
    assert out["r2"] == pytest.approx(expected["r2"])


def _face_points(roll_deg: float = 0.0, centre=(64.0, 64.0)) -> np.ndarray:
    """478 landmarks (NaN except the three the split uses): eyes at y=40, subnasale at y=70."""
    from lesbench.extract.measure import SUBNASALE

    lm = np.full((478, 3), np.nan)
    pts = {33: (34.0, 40.0), 263: (94.0, 40.0), SUBNASALE: (64.0, 70.0)}
    a = np.deg2rad(roll_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    for k, (x, y) in pts.items():
        lm[k, :2] = rot @ (np.array([x, y]) - centre) + centre
        lm[k, 2] = 0.0
    return lm


def test_upper_face_mask_by_hand():
    from lesbench.extract.measure import upper_face_mask

    m = upper_face_mask(_face_points(), (128, 128), feather_px=2.0)
    assert m.shape == (128, 128) and m.dtype == np.float32
    assert (m[:69] == 1).all() and (m[71:] == 0).all()  # the ramp spans y in [69, 71]
    assert m[70, 10] == pytest.approx(0.5)
    # head roll: the line turns with the eyes; a point 10 px above the subnasale along the
    # rotated face axis is upper face, 10 px below is lower face
    roll = 30.0
    m = upper_face_mask(_face_points(roll), (128, 128))
    a = np.deg2rad(roll)
    down = np.array([-np.sin(a), np.cos(a)])  # the face's downward axis after rotation
    sub = _face_points(roll)[2, :2]
    above, below = np.rint(sub - 10 * down).astype(int), np.rint(sub + 10 * down).astype(int)
    assert m[above[1], above[0]] == 1 and m[below[1], below[0]] == 0
    # sideways along the rotated split line, both sides keep their labels
    side = np.array([np.cos(a), np.sin(a)])
    p_up = np.rint(sub + 30 * side - 5 * down).astype(int)
    p_lo = np.rint(sub + 30 * side + 5 * down).astype(int)
    assert m[p_up[1], p_up[0]] == 1 and m[p_lo[1], p_lo[0]] == 0
    # per-frame masks; a frame without a face borrows the nearest frame's landmarks
    seq = np.stack([_face_points(), np.full((478, 3), np.nan), _face_points(roll)])
    ms = upper_face_mask(seq, (128, 128))
    assert ms.shape == (3, 128, 128)
    assert np.array_equal(ms[1], ms[0]) or np.array_equal(ms[1], ms[2])
    with pytest.raises(ValueError, match="no frame"):
        upper_face_mask(np.full((2, 478, 3), np.nan), (8, 8))


def test_hold_lower_face_takes_each_half_from_its_video():
    from lesbench.extract.measure import hold_lower_face

    rng = np.random.default_rng(0)
    edited = rng.integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
    reference = rng.integers(0, 256, (4, 128, 128, 3), dtype=np.uint8)
    out = hold_lower_face(edited, reference, _face_points())
    assert out.shape == (3, 128, 128, 3) and out.dtype == np.uint8
    assert np.array_equal(out[:, :69], edited[:, :69])
    assert np.array_equal(out[:, 71:], reference[:3, 71:])
    # holding a video against itself gives it back unchanged
    assert np.array_equal(hold_lower_face(reference, reference, _face_points()), reference)
    with pytest.raises(ValueError, match="sizes differ"):
        hold_lower_face(edited, reference[:, :64], _face_points())
