import numpy as np

from fm.eval.baselines import seasonal_naive
from fm.eval.metrics import mase, seasonal_error, wql
from fm.tasks.energy import evaluate_forecast


def test_seasonal_naive_is_exact_on_a_periodic_series():
    season = 24
    t = np.arange(24 * 10)
    y = np.sin(2 * np.pi * t / season) * 10 + 50
    ctx, fut = y[:200], y[200:]
    f = seasonal_naive(ctx, len(fut), season)
    np.testing.assert_allclose(f, fut, atol=1e-9)
    assert mase(fut, f, seasonal_error(ctx + np.random.default_rng(0).normal(0, 1, 200), season)) < 1e-9


def test_seasonal_naive_bridges_gaps():
    ctx = np.array([1.0, 2.0, 3.0, np.nan])
    np.testing.assert_array_equal(seasonal_naive(ctx, 4, 2), [3.0, 3.0, 3.0, 3.0])


def test_wql_known_value():
    levels = np.array([0.5])
    y = [np.array([2.0, 2.0])]
    q = [np.array([[1.0], [3.0]])]
    # 2 * pinball at the median = |error| = 1 per step, over sum|y| = 4
    assert wql(y, q, levels) == 0.5


def test_evaluate_pretrained_against_naive(pretrained, corpus):
    res = evaluate_forecast(pretrained / "hf", corpus, ["line_c"], split="test", context_steps=256, horizon_steps=32)
    assert res["windows"] > 3
    for who in ("model", "seasonal_naive"):
        assert np.isfinite(res[who]["MASE"]) and res[who]["WQL"] > 0
    assert abs(res["relative"]["WQL"] - res["model"]["WQL"] / res["seasonal_naive"]["WQL"]) < 1e-12
