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


def align_asset(records: pd.DataFrame, m: PlantManifest, asset: str, tags: list[TagSpec] | None = None) -> list[AlignedAsset]:
    """``records``: valid (series, timestamp, tag, value) of the whole plant; ``tags``: the asset's
    channels to keep (default all). One result per series; an empty list when there is no data."""
    tags = m.tags_of(asset) if tags is None else tags
    recs = records[records["tag"].isin([t.name for t in tags])]
    return [_align_series(g, tags, m.assets[asset], asset, str(key)) for key, g in recs.groupby("series", sort=True)]


def _align_series(recs: pd.DataFrame, tags: list[TagSpec], iv: float, asset: str, series: str) -> AlignedAsset:
    t_ns = recs["timestamp"].astype("int64").to_numpy()  # nanoseconds: sub-second grids (100 ms) stay exact
    iv_ns = int(round(iv * 1e9))
    t0 = (t_ns.min() // iv_ns) * iv_ns  # the grid is anchored at multiples of the interval since the epoch
    idx_all = (t_ns - t0) // iv_ns
    length = int(idx_all.max()) + 1
    values = np.full((len(tags), length), np.nan)
    for c, t in enumerate(tags):
        sel = (recs["tag"] == t.name).to_numpy()
        if not sel.any():
            continue
        idx = idx_all[sel]
        v = recs["value"].to_numpy()[sel]
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
