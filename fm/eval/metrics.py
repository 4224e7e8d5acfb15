"""Forecast metrics: MASE and weighted quantile loss (WQL), as in the Chronos / GIFT-Eval reports."""

from __future__ import annotations

import numpy as np


def seasonal_error(context: np.ndarray, season: int) -> float:
    """Mean absolute seasonal difference of the observed context (MASE denominator). NaN = unobserved."""
    m = season if len(context) > season else 1
    d = np.abs(context[m:] - context[:-m])
    d = d[np.isfinite(d)]
    return float(d.mean()) if d.size else float("nan")


def mase(y: np.ndarray, point: np.ndarray, scale: float) -> float:
    ok = np.isfinite(y)
    return float(np.abs(y[ok] - point[ok]).mean() / scale) if ok.any() and scale > 0 else float("nan")


def quantile_loss_sum(y: np.ndarray, q_pred: np.ndarray, levels: np.ndarray) -> float:
    """Sum over time and levels of 2 * pinball; q_pred (time, Q)."""
    ok = np.isfinite(y)
    diff = y[ok, None] - q_pred[ok]
    return float((2 * np.maximum(levels * diff, (levels - 1) * diff)).sum())


def wql(ys: list[np.ndarray], q_preds: list[np.ndarray], levels: np.ndarray) -> float:
    """Weighted quantile loss over many windows: sum of quantile losses / (Q * sum |y|)."""
    num = sum(quantile_loss_sum(y, q, levels) for y, q in zip(ys, q_preds, strict=True))
    den = sum(float(np.abs(y[np.isfinite(y)]).sum()) for y in ys) * len(levels)
    return num / den if den > 0 else float("nan")
