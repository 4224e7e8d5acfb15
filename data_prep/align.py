"""Alignment: each asset's tags onto one regular grid at the asset's target interval.

Faster tags are averaged per grid step. A slower tag's sample stays valid for its own nominal interval
(sample-and-hold over the steps it covers, as a historian reports it); beyond that a step is unobserved.
Gaps are never filled: they go into the observed mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data_prep.manifest import PlantManifest, TagSpec
from data_prep.validate import Block


@dataclass
class AlignedAsset:
    asset: str
    series: str
    """Series of the asset ("" when the asset has one; else a run / unit id)."""
    start: pd.Timestamp
    """UTC timestamp of the first grid step."""
    interval_s: float
    tags: list[str]
    values: np.ndarray  # (channels, time) float64, NaN where unobserved
    observed: np.ndarray  # (channels, time) bool


@dataclass
class Piece:
    """The finite values of one tag of one series, from one block."""

    channel: int
    ts: np.ndarray  # int64 ns
    values: np.ndarray


def series_pieces(blocks: list[Block], tags: list[TagSpec]) -> dict[str, list[Piece]]:
    """Per series (sorted by name): every tag's finite values from every block that holds the tag."""
    chan = {t.name: c for c, t in enumerate(tags)}
    out: dict[str, list[Piece]] = {}
    for b in blocks:
        cols = [(chan[name], j) for j, name in enumerate(b.tags) if name in chan]
        if not cols:
            continue
        for code, sname in enumerate(b.series_names):
            sel = None if len(b.series_names) == 1 else np.flatnonzero(b.series_codes == code)
            ts = b.ts if sel is None else b.ts[sel]
            for c, j in cols:
                v = b.values[j] if sel is None else b.values[j, sel]
                fin = np.isfinite(v)
                if fin.any():
                    out.setdefault(sname, []).append(Piece(c, ts[fin], v[fin]))
    return dict(sorted(out.items()))


def align_asset(blocks: list[Block], m: PlantManifest, asset: str, tags: list[TagSpec] | None = None) -> list[AlignedAsset]:
    """``blocks``: valid values of the plant's files; ``tags``: the asset's channels to keep (default all).
    One result per series (sorted by name); an empty list when there is no data."""
    tags = m.tags_of(asset) if tags is None else tags
    return [_align_series(p, tags, m.assets[asset], asset, s) for s, p in series_pieces(blocks, tags).items()]


def _align_series(pieces: list[Piece], tags: list[TagSpec], iv: float, asset: str, series: str) -> AlignedAsset:
    iv_ns = int(round(iv * 1e9))  # nanoseconds: sub-second grids (100 ms) stay exact
    t0 = (min(int(p.ts.min()) for p in pieces) // iv_ns) * iv_ns  # grid anchored at multiples of the interval
    length = int(max((int(p.ts.max()) - t0) // iv_ns for p in pieces)) + 1
    values = np.full((len(tags), length), np.nan)
    for c, t in enumerate(tags):
        mine = [p for p in pieces if p.channel == c]
        if not mine:
            continue
        idx = np.concatenate([(p.ts - t0) // iv_ns for p in mine])
        v = np.concatenate([p.values for p in mine])
        s = np.bincount(idx, weights=v, minlength=length)
        k = np.bincount(idx, minlength=length)
        row = np.where(k > 0, s / np.maximum(k, 1), np.nan)
        hold = int(np.ceil(t.interval_s / iv)) - 1
        if hold > 0:
            row = pd.Series(row).ffill(limit=hold).to_numpy()
        values[c] = row
    observed = ~np.isnan(values)
    start = pd.Timestamp(int(t0), unit="ns", tz="UTC")
    return AlignedAsset(asset, series, start, float(iv), [t.name for t in tags], values, observed)
