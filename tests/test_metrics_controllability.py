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
