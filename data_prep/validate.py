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
from data_prep.readers import Records


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
class Validated:
    records: pd.DataFrame
    """Valid values only: series, timestamp (UTC), tag, value, row (input row, for lineage)."""
    report: FileReport
    quarantine: pd.DataFrame
    """One row per quarantined input row: file, row, reason."""


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


def validate(rec: Records, m: PlantManifest, wide: bool) -> Validated:
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
    limits = {t.name: t.limits or (-np.inf, np.inf) for t in m.tags}
    lim_lo = np.array([limits.get(n, (np.nan, np.nan))[0] for n in names], dtype=float)[codes]
    lim_hi = np.array([limits.get(n, (np.nan, np.nan))[1] for n in names], dtype=float)[codes]
    v = df["value"].to_numpy()
    present = ~np.isnan(v)
    out_of_limits = present & ~((v >= lim_lo) & (v <= lim_hi))
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
    return Validated(good.reset_index(drop=True), report, q)
