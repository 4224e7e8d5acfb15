"""Objectives: multi-quantile pinball loss over masked positions."""

from __future__ import annotations

import torch


def pinball(pred: torch.Tensor, target: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """Elementwise pinball loss averaged over quantiles. pred (..., Q), target (...), quantiles (Q,)."""
    diff = target[..., None] - pred
    return torch.maximum(quantiles * diff, (quantiles - 1) * diff).mean(-1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)
