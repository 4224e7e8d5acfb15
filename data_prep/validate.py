"""Validation with exact accounting: every input row ends kept, repaired or quarantined with a reason.

Row-level rules quarantine a whole input row (it cannot be placed in time or is a repeat):
``bad_timestamp``, ``duplicate_timestamp`` (wide files), ``duplicate_record`` and ``unknown_tag`` (long files).
Cell-level rules mask a value (the row is then *repaired*; the value goes into the observed mask as
missing, it is never invented): ``non_numeric`` (historian strings such as "Inp OutRange"),
``out_of_limits`` (outside the tag's physical limits, inf included), ``bad_quality`` (the historian's
own quality flag says bad) and ``stuck`` (identical values for at least the tag's ``stuck_after_s``).
A row that comes earlier in time than a row above it (non-monotonic export) is placed by its timestamp
and counted as repaired (``reordered_rows``). Empty cells are missing data, not a repair: the row is still *kept*.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from data_prep.manifest import PlantManifest
from data_prep.readers import Records, WideTable


@dataclass
class FileReport:
    file: str
    rows: int
    kept: int = 0
    repaired: int = 0
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    repaired_cells: dict[str, int] = field(default_factory=dict)
    missing_cells: int = 0
    reordered_rows: int = 0
    """Rows whose timestamp is earlier than a row before them (non-monotonic export); they are placed by
    their timestamp, and count as repaired."""
    unmapped_columns: list[str] = field(default_factory=list)

    def check(self) -> None:
        if self.kept + self.repaired + self.quarantined != self.rows:
            raise AssertionError(f"{self.file}: accounting broken: {self.kept}+{self.repaired}+{self.quarantined} != {self.rows}")
        if sum(self.quarantine_reasons.values()) != self.quarantined:
            raise AssertionError(f"{self.file}: quarantine reasons do not add up to {self.quarantined}")


@dataclass
class Block:
    """Valid values of one file, columnar: the rows that were not quarantined, one row of ``values`` per
    tag. A wide file gives one block; a long file one block per tag."""

    tags: list[str]
    ts: np.ndarray
    """int64 nanoseconds since the epoch (UTC) per row."""
    rows: np.ndarray
    """int64: the input row of each row (lineage)."""
    series_codes: np.ndarray
    """int32 per row: index into ``series_names``."""
    series_names: list[str]
    values: np.ndarray
    """(tags, rows) float64; NaN where there is no valid value (missing or masked by a rule)."""
    file_idx: int = 0
    """Which input of the plant the block came from (set by the caller)."""

    def long_frame(self) -> pd.DataFrame:
        """Finite values as long records: series, timestamp, tag, value, row."""
        k, n = self.values.shape
        ok = np.isfinite(self.values).reshape(-1)
        series = np.asarray(self.series_names, dtype=object)[self.series_codes]
        ts = pd.to_datetime(np.tile(self.ts, k)[ok].astype("datetime64[ns]")).tz_localize("UTC")
        return pd.DataFrame(
            {
                "series": np.tile(series, k)[ok],
                "timestamp": ts,
                "tag": np.repeat(np.array(self.tags, dtype=object), n)[ok],
                "value": self.values.reshape(-1)[ok],
                "row": np.tile(self.rows, k)[ok],
            }
        )


@dataclass
class Validated:
    blocks: list[Block]
    """Valid values, columnar (see :class:`Block`)."""
    report: FileReport
    quarantine: pd.DataFrame
    """One row per quarantined input row: file, row, reason."""

    @property
    def records(self) -> pd.DataFrame:
        """Valid values only as long records: series, timestamp (UTC), tag, value, row (input row)."""
        frames = [b.long_frame() for b in self.blocks]
        if not frames:
            return pd.DataFrame({"series": [], "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"), "tag": [], "value": [], "row": []})
        return pd.concat(frames, ignore_index=True)


def _stuck_mask(df: pd.DataFrame, m: PlantManifest) -> np.ndarray:
    """True for values that belong to a run of identical values lasting >= the tag's stuck_after_s."""
    out = np.zeros(len(df), dtype=bool)
    limits = {t.name: t.stuck_after_s for t in m.tags}
    for (_, tag), g in df.groupby(["series", "tag"], sort=False):
        after = limits.get(tag)
        if after is None or len(g) < 2:
            continue
        g = g.sort_values("timestamp", kind="stable")
        v = g["value"].to_numpy()
        ok = np.isfinite(v)
        gv = g[ok]
        if len(gv) < 2:
            continue
        vals = gv["value"].to_numpy()
        run_id = np.concatenate([[0], np.cumsum(vals[1:] != vals[:-1])])
        t = gv["timestamp"].astype("int64").to_numpy() / 1e9
        first = pd.Series(t).groupby(run_id).transform("min").to_numpy()
        last = pd.Series(t).groupby(run_id).transform("max").to_numpy()
        stuck = (last - first) >= after
        out[df.index.get_indexer(gv.index[stuck])] = True
    return out


def _limits(m: PlantManifest, names) -> tuple[np.ndarray, np.ndarray]:
    limits = {t.name: t.limits or (-np.inf, np.inf) for t in m.tags}
    lo = np.array([limits.get(n, (np.nan, np.nan))[0] for n in names], dtype=float)
    hi = np.array([limits.get(n, (np.nan, np.nan))[1] for n in names], dtype=float)
    return lo, hi


def _outside(v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Present values outside [lo, hi]; +-inf is never a physical reading, so it is outside too."""
    return ~np.isnan(v) & ~(np.isfinite(v) & (v >= lo) & (v <= hi))


def _stuck_runs(t_s: np.ndarray, v: np.ndarray, after: float) -> np.ndarray:
    """For values sorted by time (finite only): True where a run of identical values lasts >= ``after`` s."""
    if len(v) < 2:
        return np.zeros(len(v), dtype=bool)
    starts = np.concatenate([[0], np.flatnonzero(v[1:] != v[:-1]) + 1])
    dur = np.maximum.reduceat(t_s, starts) - np.minimum.reduceat(t_s, starts)
    return np.repeat(dur >= after, np.diff(np.append(starts, len(v))))


def _validate_wide(rec: Records, w: WideTable, m: PlantManifest) -> Validated:
    """The same rules as the long path, on (rows) and (tags, rows) arrays."""
    n = rec.n_rows
    t = w.ts.astype("int64")
    reason = np.zeros(n, dtype=np.int8)  # 0: none, then index into ROW_REASONS
    reason[np.isnat(w.ts)] = 1
    idx = np.flatnonzero(reason == 0)
    if len(idx) > 1:  # duplicates of (series, timestamp): the first row stays
        order = idx[np.lexsort((t[idx], w.series_codes[idx]))]  # stable: earlier rows first among equals
        same = (t[order][1:] == t[order][:-1]) & (w.series_codes[order][1:] == w.series_codes[order][:-1])
        reason[order[1:][same]] = 2
    rows = np.flatnonzero(reason == 0)
    tl, cl = t[rows], w.series_codes[rows]
    single = len(w.series_names) == 1
    groups = [np.arange(len(rows))] if single else [np.flatnonzero(cl == c) for c in range(len(w.series_names))]
    reordered = np.zeros(len(rows), dtype=bool)
    for g in groups:
        if len(g) > 1:
            tt = tl[g]
            reordered[g[1:]] = tt[1:] < np.maximum.accumulate(tt)[:-1]
    vals = w.values[:, rows]
    nn = w.non_numeric[:, rows]
    lo, hi = _limits(m, w.tags)
    oob = _outside(vals, lo[:, None], hi[:, None])
    missing = int((np.isnan(vals) & ~nn).sum())
    vals[oob] = np.nan
    stuck = np.zeros_like(oob)
    after_of = {tg.name: tg.stuck_after_s for tg in m.tags}
    t_s = tl / 1e9
    for j, name in enumerate(w.tags):
        after = after_of.get(name)
        if after is None:
            continue
        for g in groups:
            g = g if not reordered.any() else g[np.argsort(tl[g], kind="stable")]
            v = vals[j, g]
            fin = np.isfinite(v)
            pos = g[fin]
            stuck[j, pos[_stuck_runs(t_s[pos], v[fin], after)]] = True
    vals[stuck] = np.nan
    repaired = (nn | oob | stuck).any(axis=0) | reordered
    quarantined = np.flatnonzero(reason != 0)
    report = FileReport(file=rec.file, rows=n, unmapped_columns=rec.unmapped_columns)
    report.quarantined = int(len(quarantined))
    report.repaired = int(repaired.sum())
    report.kept = n - report.quarantined - report.repaired
    report.quarantine_reasons = dict(sorted(Counter(ROW_REASONS[r] for r in reason[quarantined]).items()))
    cells = {"non_numeric": int(nn.sum()), "out_of_limits": int(oob.sum()), "stuck": int(stuck.sum())}
    report.repaired_cells = {r: c for r, c in sorted(cells.items()) if c}
    report.missing_cells = missing
    report.reordered_rows = int(reordered.sum())
    report.check()
    q = pd.DataFrame({"file": rec.file, "row": quarantined, "reason": np.asarray(ROW_REASONS, dtype=object)[reason[quarantined]]})
    block = Block(list(w.tags), tl, rows.astype(np.int64), cl, list(w.series_names), vals)
    return Validated([block], report, q)


ROW_REASONS = ("", "bad_timestamp", "duplicate_timestamp")


def _blocks_of_long(good: pd.DataFrame) -> list[Block]:
    """Valid long records -> one block per tag (in order of first appearance)."""
    if good.empty:
        return []
    codes, snames = pd.factorize(good["series"], sort=False)
    tag_codes, tags = pd.factorize(good["tag"], sort=False)
    ts = good["timestamp"].astype("int64").to_numpy()
    rows = good["row"].to_numpy(dtype=np.int64)
    v = good["value"].to_numpy(dtype=float)
    order = np.argsort(tag_codes, kind="stable")
    bounds = np.searchsorted(tag_codes[order], np.arange(len(tags) + 1))
    out = []
    for j, tag in enumerate(tags):
        sel = order[bounds[j] : bounds[j + 1]]
        out.append(Block([str(tag)], ts[sel], rows[sel], codes[sel].astype(np.int32), [str(x) for x in snames], v[sel][None, :]))
    return out


def validate(rec: Records, m: PlantManifest, wide: bool) -> Validated:
    if rec.wide is not None:
        return _validate_wide(rec, rec.wide, m)
    df = rec.frame.reset_index(drop=True)
    n = rec.n_rows
    reason = np.full(n, "", dtype=object)  # per input row: quarantine reason or ""

    bad_ts = df.loc[df["timestamp"].isna(), "row"].unique()
    reason[bad_ts] = "bad_timestamp"
    if not wide:
        known = {t.name for t in m.tags}
        unknown = df.loc[~df["tag"].isin(known), "row"].to_numpy()
        reason[unknown[reason[unknown] == ""]] = "unknown_tag"
    live = df[reason[df["row"].to_numpy()] == ""]
    if wide:
        first_rows = live.drop_duplicates("row")[["row", "series", "timestamp"]]
        dup = first_rows.loc[first_rows.duplicated(["series", "timestamp"], keep="first"), "row"].to_numpy()
        reason[dup] = "duplicate_timestamp"
    else:
        dup = live.loc[live.duplicated(["series", "timestamp", "tag"], keep="first"), "row"].to_numpy()
        reason[dup] = "duplicate_record"

    df = df[reason[df["row"].to_numpy()] == ""].copy()
    # Per (series, tag) in input-row order (readers emit each tag's cells in row order).
    keys = [df["series"], df["tag"]]
    t_ns = df["timestamp"].astype("int64")
    earlier_max = t_ns.groupby(keys).cummax().groupby(keys).shift(1)
    reordered = np.unique(df["row"].to_numpy()[(t_ns < earlier_max).to_numpy()])
    codes, names = pd.factorize(df["tag"])  # per-tag lookups by code: far cheaper than mapping strings per cell
    lim_lo, lim_hi = _limits(m, names)
    v = df["value"].to_numpy()
    out_of_limits = _outside(v, lim_lo[codes], lim_hi[codes])
    non_numeric = df["non_numeric"].to_numpy()
    bad_quality = df["bad_quality"].to_numpy(dtype=bool) if "bad_quality" in df else np.zeros(len(df), dtype=bool)
    cell_reason = np.full(len(df), "", dtype=object)
    cell_reason[non_numeric] = "non_numeric"
    cell_reason[out_of_limits] = "out_of_limits"
    cell_reason[bad_quality] = "bad_quality"
    df["value"] = np.where(cell_reason == "", v, np.nan)
    stuck = _stuck_mask(df, m) & (cell_reason == "")
    cell_reason[stuck] = "stuck"
    df.loc[stuck, "value"] = np.nan

    repaired_rows = np.union1d(np.unique(df["row"].to_numpy()[cell_reason != ""]), reordered)
    quarantined = np.flatnonzero(reason != "")
    report = FileReport(file=rec.file, rows=n, unmapped_columns=rec.unmapped_columns)
    report.quarantined = int(len(quarantined))
    report.repaired = int(len(repaired_rows))
    report.kept = n - report.quarantined - report.repaired
    report.quarantine_reasons = dict(sorted(Counter(reason[quarantined]).items()))
    report.repaired_cells = dict(sorted(Counter(cell_reason[cell_reason != ""]).items()))
    report.missing_cells = int((np.isnan(v) & ~non_numeric & ~bad_quality).sum())
    report.reordered_rows = int(len(reordered))
    report.check()
    good = df[np.isfinite(df["value"].to_numpy())][["series", "timestamp", "tag", "value", "row"]]
    q = pd.DataFrame({"file": rec.file, "row": quarantined, "reason": reason[quarantined]})
    return Validated(_blocks_of_long(good.reset_index(drop=True)), report, q)
