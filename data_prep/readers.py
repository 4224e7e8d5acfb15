"""Readers: one per source format. Each turns a raw file into long records with their input row numbers.

Every reader returns a :class:`Records` table, one record per (input row, tag) cell, carrying the input
row it came from, so validation can account for every input row. Timestamps are converted to UTC
(naive timestamps are read in the plant's time zone); what cannot be parsed is NaT / NaN, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data_prep.manifest import FileSpec, ManifestError, PlantManifest


@dataclass
class Records:
    """Long records of one raw file."""

    file: str
    n_rows: int
    """Number of input rows (data lines of a CSV, records of a long table)."""
    frame: pd.DataFrame
    """Columns: row (int, 0-based input row), timestamp (datetime64[ns, UTC] or NaT), tag (str),
    value (float, NaN when missing or not numeric), non_numeric (bool: a non-empty cell that is no number),
    series (str: which series of the asset the row belongs to, e.g. a run or unit id; "" when one)."""
    unmapped_columns: list[str]


def _to_utc(raw: pd.Series, fmt: str | None, tz: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(raw):
        ts = raw
    elif pd.api.types.is_numeric_dtype(raw):  # epoch seconds
        ts = pd.to_datetime(raw, unit="s", errors="coerce", utc=True)
    else:
        ts = pd.to_datetime(raw, format=fmt, errors="coerce", utc=False)
        if ts.dtype == object:  # mixed offsets: let pandas normalise to UTC
            ts = pd.to_datetime(raw, format=fmt, errors="coerce", utc=True)
    if getattr(ts.dt, "tz", None) is None:
        ts = ts.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    return ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")


def _numeric(cells: pd.Series, decimal: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, non_numeric) of a column read as strings."""
    s = cells.astype("string").str.strip()
    if decimal != ".":
        s = s.str.replace(decimal, ".", regex=False)
    v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    empty = s.isna().to_numpy() | (s == "").fillna(True).to_numpy()
    return v, np.isnan(v) & ~empty


def read_wide_csv(m: PlantManifest, spec: FileSpec) -> Records:
    path = m.resolve(spec.path)
    df = pd.read_csv(
        path, sep=spec.delimiter, dtype=str, keep_default_na=False, encoding=spec.encoding, skipinitialspace=True
    )
    if spec.timestamp_column not in df.columns:
        raise ManifestError(
            f"{path}: timestamp column {spec.timestamp_column!r} not found; columns are {list(df.columns)}"
        )
    known = {t.name for t in m.tags}
    tag_cols = [c for c in df.columns if c in known]
    unmapped = [c for c in df.columns if c not in known and c != spec.timestamp_column]
    ts = _to_utc(df[spec.timestamp_column].replace("", None), spec.timestamp_format, m.timezone)
    parts = []
    rows = np.arange(len(df))
    for c in tag_cols:
        v, bad = _numeric(df[c], spec.decimal)
        parts.append(
            pd.DataFrame({"row": rows, "timestamp": ts.to_numpy(), "tag": c, "value": v, "non_numeric": bad, "series": ""})
        )
    frame = pd.concat(parts, ignore_index=True) if parts else _empty()
    if len(df) and not tag_cols:
        raise ManifestError(f"{path}: none of the manifest's tags appear as columns; columns are {list(df.columns)}")
    frame["timestamp"] = frame["timestamp"].astype("datetime64[ns, UTC]")
    return Records(str(path), len(df), frame, unmapped)


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"row": [], "timestamp": [], "tag": [], "value": [], "non_numeric": [], "series": []})


def read_long(m: PlantManifest, spec: FileSpec) -> Records:
    path = m.resolve(spec.path)
    if spec.format == "long_parquet":
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path, sep=spec.delimiter, dtype=str, keep_default_na=False, encoding=spec.encoding)
    for col in (spec.timestamp_column, spec.tag_column, spec.value_column):
        if col not in df.columns:
            raise ManifestError(f"{path}: column {col!r} not found; columns are {list(df.columns)}")
    ts = _to_utc(df[spec.timestamp_column], spec.timestamp_format, m.timezone)
    if pd.api.types.is_numeric_dtype(df[spec.value_column]):
        v = df[spec.value_column].to_numpy(dtype=float)
        bad = np.zeros(len(df), dtype=bool)
    else:
        v, bad = _numeric(df[spec.value_column], spec.decimal)
    frame = pd.DataFrame(
        {
            "row": np.arange(len(df)),
            "timestamp": ts.to_numpy(),
            "tag": df[spec.tag_column].astype(str).to_numpy(),
            "value": v,
            "non_numeric": bad,
            "series": "",
        }
    )
    frame["timestamp"] = frame["timestamp"].astype("datetime64[ns, UTC]")
    return Records(str(path), len(df), frame, [])


READERS = {"wide_csv": read_wide_csv, "long_parquet": read_long, "long_csv": read_long}


def read_file(m: PlantManifest, spec: FileSpec) -> list[Records]:
    """Read one file entry of a manifest; one Records per raw file it names."""
    path = m.resolve(spec.path)
    if not Path(path).is_file():
        raise ManifestError(f"{m.source}: raw file {spec.path!r} not found at {path}")
    return [READERS[spec.format](m, spec)]
