"""Simple baselines every task reports against."""

from __future__ import annotations

import numpy as np


def seasonal_naive(context: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Repeat the last observed season; unobserved (NaN) values fall back to the last observed value."""
    ctx = context.copy()
    last = np.nan
    for i in range(len(ctx)):  # forward-fill so a gap in the last season does not poison the forecast
        if np.isfinite(ctx[i]):
            last = ctx[i]
        else:
            ctx[i] = last
    if len(ctx) < season:
        return np.full(horizon, ctx[-1])
    tail = ctx[-season:]
    reps = -(-horizon // season)
    return np.tile(tail, reps)[:horizon]
