"""An independent, deliberately plain implementation of the validation rules on long records (pandas
group-bys, one record per cell). The production code works on arrays; tests compare the two on every
input they build, so a fast path cannot drift from the rules unnoticed."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from data_prep.manifest import PlantManifest


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


def reference_validate(frame: pd.DataFrame, n_rows: int, m: PlantManifest, wide: bool) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """(report counts, valid records [series, timestamp, tag, value, row], quarantine [row, reason])."""
    df = frame.reset_index(drop=True)
    n = n_rows
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
    limits = {t.name: t.limits or (-np.inf, np.inf) for t in m.tags}
    lo = df["tag"].map(lambda name: limits.get(name, (np.nan, np.nan))[0]).to_numpy(dtype=float)
    hi = df["tag"].map(lambda name: limits.get(name, (np.nan, np.nan))[1]).to_numpy(dtype=float)
    v = df["value"].to_numpy()
    out_of_limits = ~np.isnan(v) & ~(np.isfinite(v) & (v >= lo) & (v <= hi))
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
    report = {
        "rows": n,
        "quarantined": int(len(quarantined)),
        "repaired": int(len(repaired_rows)),
        "kept": n - int(len(quarantined)) - int(len(repaired_rows)),
        "quarantine_reasons": dict(sorted(Counter(reason[quarantined]).items())),
        "repaired_cells": dict(sorted(Counter(cell_reason[cell_reason != ""]).items())),
        "missing_cells": int((np.isnan(v) & ~non_numeric & ~bad_quality).sum()),
        "reordered_rows": int(len(reordered)),
    }
    good = df[np.isfinite(df["value"].to_numpy())][["series", "timestamp", "tag", "value", "row"]]
    q = pd.DataFrame({"row": quarantined, "reason": reason[quarantined]})
    return report, good.reset_index(drop=True), q
