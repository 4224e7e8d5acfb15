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
from data_prep.readers import LongTable, Records, WideTable


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
    rows: np.ndarray | None
    """Integers: the input row of each row (lineage); None when row i is input row i (a wide file)."""
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
                "row": np.tile(self.row_numbers(), k)[ok],
            }
        )

    def row_numbers(self) -> np.ndarray:
        return np.arange(len(self.ts), dtype=np.int64) if self.rows is None else self.rows


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


def _limits(m: PlantManifest, names) -> tuple[np.ndarray, np.ndarray]:
    limits = {t.name: t.limits or (-np.inf, np.inf) for t in m.tags}
    lo = np.array([limits.get(n, (np.nan, np.nan))[0] for n in names], dtype=float)
    hi = np.array([limits.get(n, (np.nan, np.nan))[1] for n in names], dtype=float)
    return lo, hi


def _outside(v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Present values outside [lo, hi]; +-inf is never a physical reading, so it is outside too."""
    return ~np.isnan(v) & ~(np.isfinite(v) & (v >= lo) & (v <= hi))


def _stuck_runs(t_ns: np.ndarray, v: np.ndarray, after: float) -> np.ndarray:
    """For values sorted by time (finite only; ``t_ns`` int64 nanoseconds): True where a run of identical
    values lasts >= ``after`` seconds (a run's duration is its last time minus its first, in seconds)."""
    n = len(v)
    if after <= 0:  # every run lasts >= 0 s
        return np.ones(n, dtype=bool)
    out = np.zeros(n, dtype=bool)
    if n < 2:
        return out
    same = v[1:] == v[:-1]  # a run of one value lasts 0 s: only runs of equal neighbours can be stuck
    if not same.any():
        return out
    edges = np.diff(same.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    first, last = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # values first..last are one run
    long = t_ns[last] / 1e9 - t_ns[first] / 1e9 >= after
    if long.any():
        mark = np.zeros(n + 1, dtype=np.int8)  # +1 where a long run starts, -1 after it ends (runs are disjoint)
        mark[first[long]] = 1
        mark[last[long] + 1] -= 1
        out = np.cumsum(mark[:n], dtype=np.int8) > 0
    return out


def _report(rec: Records, reason: np.ndarray, reasons: tuple[str, ...], repaired: int, cells: dict[str, int],
            missing: int, reordered: int) -> tuple[FileReport, pd.DataFrame]:
    """The file's accounting (checked to add up) and its quarantine table, from the per-row reason codes
    (0 = not quarantined, else an index into ``reasons``) and the counts of the cell rules."""
    quarantined = np.flatnonzero(reason != 0)
    report = FileReport(file=rec.file, rows=rec.n_rows, unmapped_columns=rec.unmapped_columns)
    report.quarantined = int(len(quarantined))
    report.repaired = repaired
    report.kept = rec.n_rows - report.quarantined - report.repaired
    report.quarantine_reasons = dict(sorted(Counter(reasons[r] for r in reason[quarantined]).items()))
    report.repaired_cells = {r: c for r, c in sorted(cells.items()) if c}
    report.missing_cells = missing
    report.reordered_rows = reordered
    report.check()
    q = pd.DataFrame({"file": rec.file, "row": quarantined, "reason": np.asarray(reasons, dtype=object)[reason[quarantined]]})
    return report, q


def _validate_wide(rec: Records, w: WideTable, m: PlantManifest, consume: bool) -> Validated:
    """The same rules as the long path, on (rows) and (tags, rows) arrays, one tag row at a time (so the
    temporaries are one row long). ``consume``: mask the table's values in place instead of copying them."""
    n = rec.n_rows
    t = w.ts.view("int64")
    reason = np.zeros(n, dtype=np.int8)  # 0: none, then index into ROW_REASONS
    reason[np.isnat(w.ts)] = 1
    single = len(w.series_names) == 1
    live_rows = None if not reason.any() else np.flatnonzero(reason == 0)
    live_t = t if live_rows is None else t[live_rows]
    step = np.diff(live_t)
    in_order = single and bool((step > 0).all())  # the usual export: no sort needed
    if single and not in_order and (step >= 0).all():  # sorted with repeats: a repeat follows its first row
        rep = np.flatnonzero(step == 0) + 1
        reason[rep if live_rows is None else live_rows[rep]] = 2
    elif n > 1 and not in_order:  # duplicates of (series, timestamp): the first row stays
        idx = np.flatnonzero(reason == 0)
        order = idx[np.lexsort((t[idx], w.series_codes[idx]))]  # stable: earlier rows first among equals
        same = (t[order][1:] == t[order][:-1]) & (w.series_codes[order][1:] == w.series_codes[order][:-1])
        reason[order[1:][same]] = 2
        del idx, order, same
    del live_t, step, live_rows
    # Rows are not compacted: a quarantined row stays in place with no values (NaN), so the block keeps the
    # file's row numbers and no copy of the value matrix is made.
    live = reason == 0
    everything = bool(live.all())
    tl, cl = t, w.series_codes
    groups = [None] if single else [np.flatnonzero(cl == c) for c in range(len(w.series_names))]
    reordered = np.zeros(n, dtype=bool)
    if not in_order:
        for g in groups:
            g = np.flatnonzero(live) if g is None else g[live[g]]
            tt = tl[g]
            if len(tt) > 1:
                reordered[g[1:]] = tt[1:] < np.maximum.accumulate(tt)[:-1]
    vals = w.values if consume else w.values.copy()
    nn = w.non_numeric
    lo, hi = _limits(m, w.tags)
    after_of = {tg.name: tg.stuck_after_s for tg in m.tags}
    sort_groups = reordered.any()
    repaired = reordered.copy()
    cells = {"non_numeric": 0, "out_of_limits": 0, "stuck": 0}
    missing = 0
    for j, name in enumerate(w.tags):
        v = vals[j]
        bad_cell = nn[j] if everything else nn[j] & live
        missing += int((np.isnan(v) & ~nn[j] & live).sum())
        oob = _outside(v, lo[j], hi[j])
        if not everything:
            oob &= live
            v[~live] = np.nan
        v[oob] = np.nan
        cells["non_numeric"] += int(bad_cell.sum())
        cells["out_of_limits"] += int(oob.sum())
        repaired |= bad_cell | oob
        after = after_of.get(name)
        if after is None:
            continue
        for g in groups:
            if g is None and not sort_groups:  # one series in time order: the column itself, no index arrays
                fin = np.isfinite(v)
                pos = None if fin.all() else np.flatnonzero(fin)
                stuck = np.flatnonzero(_stuck_runs(tl, v, after)) if pos is None else pos[_stuck_runs(tl[pos], v[pos], after)]
                del fin, pos
            else:
                g = np.arange(len(v)) if g is None else g
                if sort_groups:
                    g = g[np.argsort(tl[g], kind="stable")]
                gv = v[g]
                fin = np.isfinite(gv)
                pos = g[fin]
                stuck = pos[_stuck_runs(tl[pos], gv[fin], after)]
            v[stuck] = np.nan
            repaired[stuck] = True
            cells["stuck"] += len(stuck)
    report, q = _report(rec, reason, ROW_REASONS, int(repaired.sum()), cells, missing, int(reordered.sum()))
    block = Block(list(w.tags), tl, None, cl, list(w.series_names), vals)  # rows: the file's own (none are compacted)
    return Validated([block], report, q)


ROW_REASONS = ("", "bad_timestamp", "duplicate_timestamp")


LONG_REASONS = ("", "bad_timestamp", "unknown_tag", "duplicate_record")


def _validate_long(rec: Records, L: LongTable, m: PlantManifest, consume: bool) -> Validated:
    """The rules on a long file: one record per input row, grouped by (series, tag) where order matters.

    The placeable records (a timestamp, a known tag) are put in one stable tag-major order (tag, then
    series, then input row), so every (series, tag) group and every tag's block is a contiguous slice: no
    per-group index arrays, and the blocks are views. A group whose times strictly increase (the usual
    export) needs no sorting. ``consume``: the records' arrays are released as their reordered copies are
    made (peak memory ~ one extra array instead of a second table)."""
    n, n_tags, n_series = rec.n_rows, len(L.tag_names), len(L.series_names)
    reason = np.zeros(n, dtype=np.int8)
    reason[np.isnat(L.ts)] = 1
    known_names = {tg.name for tg in m.tags}
    known = np.array([name in known_names for name in L.tag_names], dtype=bool)
    reason[(reason == 0) & ~known[L.tag_codes]] = 2
    ok = reason == 0
    n_groups = n_tags * n_series
    # one stable sort of a small-integer key puts the placeable rows in (tag, series, input row) order and
    # the others (key = n_groups) last; numpy sorts 8- and 16-bit keys by radix, in linear time
    key_type = np.uint8 if n_groups < 2**8 else np.uint16 if n_groups < 2**16 else np.int64
    key = L.tag_codes.astype(key_type)
    if n_series > 1:
        key *= key_type(n_series)
        key += L.series_codes.astype(key_type)
    key[~ok] = n_groups
    counts = np.bincount(key, minlength=n_groups + 1)[:n_groups].astype(np.int64)
    perm = np.argsort(key, kind="stable")[: int(counts.sum())]
    if n < 2**31:
        perm = perm.astype(np.int32)  # the input rows (lineage) in half the memory
    del ok, key
    if consume:
        L.tag_codes = None

    def gathered(a: np.ndarray) -> np.ndarray:
        """``a`` in tag-major order; all-zero columns (one series, no flags) stay unwritten zeros."""
        return a[perm] if a.any() else np.zeros(len(perm), dtype=a.dtype)

    # the reordered copies replace the originals one by one when the records are consumed
    tp = L.ts.view("int64")[perm]
    sp = gathered(L.series_codes)
    if consume:
        L.ts = L.series_codes = None
    vp = L.values[perm]
    if consume:
        L.values = None
    nnp, bqp = gathered(L.non_numeric), gathered(L.bad_quality)
    if consume:
        L.non_numeric = L.bad_quality = None
    lo, hi = _limits(m, L.tag_names)
    after_of = {tg.name: tg.stuck_after_s for tg in m.tags}
    dup = np.zeros(len(perm), dtype=bool)
    reordered = np.zeros(len(perm), dtype=bool)
    stuck = np.zeros(len(perm), dtype=bool)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    for gi in np.flatnonzero(counts):  # one (tag, series) group at a time, rows in input order
        a0, a1 = int(bounds[gi]), int(bounds[gi + 1])
        tt = tp[a0:a1]
        if not (np.diff(tt) > 0).all():
            o = np.argsort(tt, kind="stable")
            d = o[1:][tt[o][1:] == tt[o][:-1]]  # a repeated (series, timestamp, tag): the first record stays
            dup[a0 + d] = True
            keep = np.flatnonzero(~dup[a0:a1])
            tk = tt[keep]
            reordered[a0 + keep[1:]] = tk[1:] < np.maximum.accumulate(tk)[:-1]
    live = ~dup
    tag_bounds = bounds[::n_series]
    oob = np.zeros(len(perm), dtype=bool)
    for j in range(n_tags):  # limits tag by tag: temporaries one tag long
        a0, a1 = int(tag_bounds[j]), int(tag_bounds[j + 1])
        oob[a0:a1] = _outside(vp[a0:a1], lo[j], hi[j])
    oob &= live
    missing = int((live & np.isnan(vp) & ~nnp & ~bqp).sum())
    vp[oob | dup] = np.nan
    for gi in np.flatnonzero(counts):
        after = after_of.get(L.tag_names[gi // n_series])
        if after is None:
            continue
        a0, a1 = int(bounds[gi]), int(bounds[gi + 1])
        if reordered[a0:a1].any():  # runs are judged in time order
            g = a0 + np.argsort(tp[a0:a1], kind="stable")
            v = vp[g]
            fin = np.isfinite(v)
            pos = g[fin]
            stuck[pos[_stuck_runs(tp[pos], v[fin], after)]] = True
            continue
        v = vp[a0:a1]  # in time order already: slices, no index arrays
        fin = np.isfinite(v)
        if fin.all():
            stuck[a0:a1] |= _stuck_runs(tp[a0:a1], v, after)
        else:
            pos = np.flatnonzero(fin)
            stuck[a0 + pos[_stuck_runs(tp[a0:a1][pos], v[pos], after)]] = True
    vp[stuck] = np.nan
    reason[perm[dup]] = 3
    nn_l, bq_l = nnp & live, bqp & live
    repaired = int((nn_l | oob | bq_l | stuck | reordered).sum())
    cells = {"non_numeric": int(nn_l.sum()), "out_of_limits": int(oob.sum()), "bad_quality": int(bq_l.sum()), "stuck": int(stuck.sum())}
    report, q = _report(rec, reason, LONG_REASONS, repaired, cells, missing, int(reordered.sum()))
    blocks = []
    for j, name in enumerate(L.tag_names):  # one block per tag: views of the reordered arrays
        a0, a1 = int(tag_bounds[j]), int(tag_bounds[j + 1])
        if a1 > a0:
            blocks.append(Block([name], tp[a0:a1], perm[a0:a1], sp[a0:a1], list(L.series_names), vp[None, a0:a1]))
    return Validated(blocks, report, q)


def validate(rec: Records, m: PlantManifest, wide: bool | None = None, consume: bool = False) -> Validated:
    """Apply every rule to one file's records. ``wide`` is accepted for older callers; the records know
    their layout. ``consume=True`` lets validation mask the records' arrays in place (the build drops the
    records right after; saves a copy of the file's values)."""
    if rec.wide is not None:
        return _validate_wide(rec, rec.wide, m, consume)
    return _validate_long(rec, rec.table, m, consume)
