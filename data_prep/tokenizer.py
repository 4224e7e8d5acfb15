"""Tokenizer spec: how an asset's aligned channels become model tokens.

A token is one patch of ``patch_len`` consecutive values of one channel, after per-series robust scaling
(median / IQR of the *train* part of the series, so validation and test never inform the scale) and
clipping. The spec is written into the corpus manifest and into every model config; a model refuses a
corpus built with another spec, as an LLM refuses another tokenizer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

TOKENIZER_VERSION = "1"
SCALINGS = ("robust", "none")


@dataclass(frozen=True)
class TokenizerSpec:
    patch_len: int = 16
    """Values per token (patch)."""
    scaling: str = "robust"
    """Per-series scaling: "robust" = (x - median) / (IQR / 1.349); "none" = raw values."""
    clip: float = 50.0
    """Scaled values are clipped to [-clip, clip]."""
    dtype: str = "float32"
    """Storage dtype of scaled values in the corpus."""
    version: str = TOKENIZER_VERSION
    """Version of this tokenization scheme; bumped whenever its meaning changes."""

    def __post_init__(self) -> None:
        if self.patch_len < 1:
            raise ValueError(f"tokenizer.patch_len must be >= 1, got {self.patch_len}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"tokenizer.scaling must be one of {SCALINGS}, got {self.scaling!r}")
        if self.clip <= 0:
            raise ValueError(f"tokenizer.clip must be > 0, got {self.clip}")
        if self.dtype not in ("float32", "float16"):
            raise ValueError(f"tokenizer.dtype must be float32 or float16, got {self.dtype!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def scale_stats(self, x: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (loc, scale) from the observed values of ``x`` (channels, time): the median, and
        the interquartile range / 1.349 (the standard deviation when that is ~0)."""
        c = x.shape[0]
        loc = np.zeros(c)
        scale = np.ones(c)
        if self.scaling == "none":
            return loc, scale
        if x.shape[1] <= _SORT_ROWS_BELOW:  # short rows (fleets of short series): all channels at once
            quartiles = _quartiles_sorted(x, observed)
        else:
            quartiles = [np.percentile(x[i, observed[i]], [25, 50, 75]) if observed[i].any() else None for i in range(c)]
        for i in range(c):
            if quartiles[i] is None:
                continue
            q25, q50, q75 = quartiles[i]
            s = (q75 - q25) / 1.349
            if not s > 1e-8:
                s = float(np.std(x[i, observed[i]]))
            loc[i] = q50
            scale[i] = s if s > 1e-8 else 1.0
        return loc, scale

    def encode(self, x: np.ndarray, observed: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Scale and clip (channels, time); unobserved positions become 0. One channel at a time, so the
        float64 temporaries are one channel long."""
        out = np.empty(x.shape, dtype=self.dtype)
        for i in range(x.shape[0]):
            z = (x[i] - loc[i]) / scale[i]
            np.clip(z, -self.clip, self.clip, out=z)
            z[~observed[i]] = 0.0
            out[i] = z
        return out

    @staticmethod
    def decode(z: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Inverse of ``encode`` (up to clipping) along the channel axis 0."""
        return z * scale[:, None] + loc[:, None]


_SORT_ROWS_BELOW = 4096
"""Rows up to this length get their quartiles from one sort of the whole (channels, time) block; longer rows
from ``np.percentile`` per channel (a partial sort, cheaper than a full one on long rows)."""


def _quartiles_sorted(x: np.ndarray, observed: np.ndarray) -> list:
    """``np.percentile(row[observed], [25, 50, 75])`` for every row at once, bit for bit: the same order
    statistics (a full sort instead of numpy's partition) and numpy's own "linear" interpolation, including
    its two-sided form of the lerp. None for a row with nothing observed."""
    xs = np.sort(np.where(observed, x, np.nan), axis=1)  # NaN (unobserved) sorts last
    k = observed.sum(axis=1)
    rows = np.arange(x.shape[0])
    cols = []
    alpha = beta = 1  # numpy's "linear" method; its virtual index is written out the same way, to match bit for bit
    for q in (0.25, 0.5, 0.75):
        virtual = k * q + (alpha + q * (1 - alpha - beta)) - 1
        prev = np.floor(virtual)
        top = virtual >= k - 1
        prev_i = np.where(top, k - 1, prev).astype(np.intp)
        next_i = np.where(top, k - 1, prev + 1).astype(np.intp)
        gamma = virtual - np.where(top, -1, prev)  # numpy measures gamma from index -1 at the top
        a = xs[rows, np.clip(prev_i, 0, None)]
        b = xs[rows, np.clip(next_i, 0, None)]
        diff = b - a
        lerp = a + diff * gamma
        np.subtract(b, diff * (1 - gamma), out=lerp, where=gamma >= 0.5)
        cols.append(lerp)
    quartiles = np.stack(cols, axis=1)  # (rows, 3)
    return [None if k[i] == 0 else quartiles[i] for i in range(x.shape[0])]
