"""AU accuracy / F1 / MAE / Pearson against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from lesbench.metrics.action_units import AUAccuracy, au_scores
from lesbench.schema import AU_NAMES

N = len(AU_NAMES)


def test_hand_computed_single_au():
    # 4 frames; AU01 pred vs target, all other AUs identical zeros
    pred = np.zeros((4, N), np.float32)
    target = np.zeros((4, N), np.float32)
    pred[:, 0] = [0.5, 0.1, 0.6, 0.0]
    target[:, 0] = [0.4, 0.5, 0.0, 0.0]
    s = au_scores(pred, target, thresholds=0.3)
    au = s["per_au"]["AU01"]
    # active pred: T F T F ; target: T T F F -> TP 1, FN 1, FP 1, TN 1
    assert au["accuracy"] == pytest.approx(0.5)
    assert au["f1"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))
    assert au["mae"] == pytest.approx((0.1 + 0.4 + 0.6 + 0.0) / 4)
    x, y = pred[:, 0].astype(float), target[:, 0].astype(float)
    assert au["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-6)
    # the other 16 AUs agree on every frame, never active (F1 undefined), constant (r undefined)
    assert s["accuracy"] == pytest.approx((0.5 + 16) / 17)
    assert s["f1"] == pytest.approx(0.5)  # mean over AUs where F1 is defined
    assert np.isnan(s["per_au"]["AU02"]["f1"]) and np.isnan(s["per_au"]["AU02"]["pearson"])
    assert s["mae"] == pytest.approx(((0.1 + 0.4 + 0.6) / 4) / 17)


def test_requested_vector_and_per_au_thresholds():
    pred = np.full((3, N), 0.2, np.float32)
    target = np.full(N, 0.25, np.float32)  # one requested vector for every frame
    th = np.full(N, 0.3)
    s = au_scores(pred, target, thresholds=th)
    assert s["accuracy"] == 1.0 and s["mae"] == pytest.approx(0.05)
    th[3] = 0.22  # AU05: target active, pred not
    s = au_scores(pred, target, thresholds=th)
    assert s["per_au"]["AU05"]["accuracy"] == 0.0 and s["per_au"]["AU05"]["f1"] == 0.0


def test_class_pools_frames_and_skips_faceless_frames():
    rng = np.random.default_rng(0)
    p1, t1 = rng.random((5, N)), rng.random((5, N))
    p2, t2 = rng.random((7, N)), rng.random((7, N))
    p2_nan = np.vstack([p2, np.full((1, N), np.nan)])
    t2_ext = np.vstack([t2, rng.random((1, N))])
    m = AUAccuracy(thresholds=0.5)
    m.update(p1, t1)
    m.update(p2_nan, t2_ext)
    pooled = au_scores(np.vstack([p1, p2]), np.vstack([t1, t2]), thresholds=0.5)
    out = m.compute()
    assert out["n_frames"] == 12
    for k in ("accuracy", "f1", "mae", "pearson"):
        assert out[k] == pytest.approx(pooled[k], rel=1e-9)
    # Pearson per AU equals numpy on the pooled frames
    x, y = np.vstack([p1, p2])[:, 4], np.vstack([t1, t2])[:, 4]
    assert out["per_au"]["AU06"]["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-5)  # float32 AUs


def test_frames_table_input():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({name: [0.1, 0.9] for name in AU_NAMES})
    df["face"] = [True, False]
    s = au_scores(df, np.full(N, 0.1, np.float32))
    assert s["n_frames"] == 1 and s["mae"] == pytest.approx(0.0, abs=1e-7)
