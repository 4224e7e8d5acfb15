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
    """The values of one tag of one series in one block (NaN = no valid value): views, not copies."""

    channel: int
    ts: np.ndarray  # int64 ns
    values: np.ndarray


def series_pieces(blocks: list[Block], tags: list[TagSpec]) -> dict[str, list[Piece]]:
    """Per series (sorted by name): every tag's values from every block that holds the tag and has at
    least one finite value of it."""
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
                if np.isfinite(v).any():
                    out.setdefault(sname, []).append(Piece(c, ts, v))
    return dict(sorted(out.items()))


def align_asset(blocks: list[Block], m: PlantManifest, asset: str, tags: list[TagSpec] | None = None) -> list[AlignedAsset]:
    """``blocks``: valid values of the plant's files; ``tags``: the asset's channels to keep (default all).
    One result per series (sorted by name); an empty list when there is no data."""
    tags = m.tags_of(asset) if tags is None else tags
    return [_align_series(p, tags, m.assets[asset], asset, s) for s, p in series_pieces(blocks, tags).items()]


_NO_TIME = np.iinfo(np.int64).max


def _align_series(pieces: list[Piece], tags: list[TagSpec], iv: float, asset: str, series: str) -> AlignedAsset:
    iv_ns = int(round(iv * 1e9))  # nanoseconds: sub-second grids (100 ms) stay exact
    fins = [np.isfinite(p.values) for p in pieces]
    first = min(int(np.min(p.ts, where=f, initial=_NO_TIME)) for p, f in zip(pieces, fins, strict=True))
    last = max(int(np.max(p.ts, where=f, initial=-_NO_TIME)) for p, f in zip(pieces, fins, strict=True))
    t0 = (first // iv_ns) * iv_ns  # the grid is anchored at multiples of the interval since the epoch
    length = (last - t0) // iv_ns + 1
    values = np.full((len(tags), length), np.nan)
    # grid index per block row, shared by a block's tags and dropped after the last channel that uses it
    idx_of: dict[int, np.ndarray] = {}
    last_use: dict[int, int] = {}
    for p in pieces:
        last_use[id(p.ts)] = max(last_use.get(id(p.ts), -1), p.channel)
    for c, t in enumerate(tags):
        s = k = None
        for p, f in zip(pieces, fins, strict=True):
            if p.channel != c:
                continue
            idx = idx_of.get(id(p.ts))
            if idx is None:
                idx = idx_of[id(p.ts)] = np.clip((p.ts - t0) // iv_ns, 0, length - 1)  # rows with no value: any bin
            # sums over the finite values only, in row order: the same floats as adding 0.0 for the others
            iv_f, v_f = (idx, p.values) if f.all() else (idx[f], p.values[f])
            ps, pk = np.bincount(iv_f, weights=v_f, minlength=length), np.bincount(iv_f, minlength=length)
            del iv_f, v_f
            if s is None:
                s, k = ps, pk
            else:
                s += ps
                k += pk
            del ps, pk
        for key in [key for key, last in last_use.items() if last == c]:
            idx_of.pop(key, None)
        if s is None:
            continue
        row = values[c]
        np.divide(s, k, out=row, where=k > 0)
        del s, k
        hold = int(np.ceil(t.interval_s / iv)) - 1
        if hold > 0:
            values[c] = pd.Series(row).ffill(limit=hold).to_numpy()
    observed = ~np.isnan(values)
    start = pd.Timestamp(int(t0), unit="ns", tz="UTC")
    return AlignedAsset(asset, series, start, float(iv), [t.name for t in tags], values, observed)
