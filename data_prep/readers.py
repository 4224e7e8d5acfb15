"""Readers: one per source format. Each turns a raw file into long records with their input row numbers.

Every reader returns a :class:`Records` table, one record per (input row, tag) cell, carrying the input
row it came from, so validation can account for every input row. Timestamps are converted to UTC
(naive timestamps are read in the plant's time zone); what cannot be parsed is NaT / NaN, never dropped.

What plants really export, and how a manifest ``files`` entry says so (see :class:`FileSpec`):

* wide CSV with any delimiter (``whitespace`` for space-separated text), decimal comma, UTF-8 with or
  without a byte-order mark or Latin-1 (``encoding: auto``), unnamed index columns (ignored), files
  without a header line (``header: false`` + ``columns``);
* time as text (ISO 8601 with or without offsets, or a ``timestamp_format``), as epoch numbers
  (``timestamp_unit: s|ms|us|ns``), as a step count (``timestamp_unit: index``) or not at all
  (``timestamp_column: null``: row ``i`` is at ``origin + i * row_interval_s``); naive local times across
  a DST change: the repeated fall-back hour is resolved from the row order when it can be, else NaT, and
  spring-forward times that do not exist are NaT;
* long/tidy CSV or Parquet ``(timestamp, tag, value[, quality])`` with bad-quality records flagged;
* a glob of per-run files, each its own series (``series_from: file``) or one file split into series by
  a column (``series_column``).
"""

from __future__ import annotations

import csv
import datetime
import functools
import glob
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from data_prep.manifest import FileSpec, ManifestError, PlantManifest

FRAME_COLUMNS = ("row", "timestamp", "tag", "value", "non_numeric", "series", "bad_quality")


@dataclass
class WideTable:
    """A wide file kept columnar: one timestamp per input row, one row of ``values`` per tag column.
    Validation works on these arrays directly (no long records are built for wide files)."""

    ts: np.ndarray
    """datetime64[ns] (UTC) per input row, NaT where it cannot be parsed."""
    series_codes: np.ndarray
    """int32 per input row: index into ``series_names``."""
    series_names: list[str]
    tags: list[str]
    values: np.ndarray
    """(tags, rows) float64, NaN when missing or not numeric."""
    non_numeric: np.ndarray
    """(tags, rows) bool: a non-empty cell that is no number."""

    def long_frame(self) -> pd.DataFrame:
        n, k = len(self.ts), len(self.tags)
        if not k:
            return _empty()
        series = np.asarray(self.series_names, dtype=object)[self.series_codes]
        return _frame(
            rows=np.tile(np.arange(n), k),
            ts=np.tile(self.ts, k),
            tag=np.repeat(np.array(self.tags, dtype=object), n),
            value=self.values.reshape(-1),
            non_numeric=self.non_numeric.reshape(-1),
            series=np.tile(series, k),
            bad_quality=np.zeros(k * n, dtype=bool),
        )


@dataclass
class LongTable:
    """A long file as arrays, one entry per record (input row); text columns as codes."""

    ts: np.ndarray
    """datetime64[ns] (UTC), NaT where it cannot be parsed."""
    tag_codes: np.ndarray
    """int32: index into ``tag_names`` (names stripped; "" when the cell is empty)."""
    tag_names: list[str]
    series_codes: np.ndarray
    series_names: list[str]
    values: np.ndarray
    """float64, NaN when missing, not numeric or of bad quality."""
    non_numeric: np.ndarray
    bad_quality: np.ndarray

    def long_frame(self) -> pd.DataFrame:
        n = len(self.ts)
        return _frame(
            rows=np.arange(n),
            ts=self.ts,
            tag=np.asarray(self.tag_names, dtype=object)[self.tag_codes] if n else np.array([], dtype=object),
            value=self.values,
            non_numeric=self.non_numeric,
            series=np.asarray(self.series_names, dtype=object)[self.series_codes] if n else np.array([], dtype=object),
            bad_quality=self.bad_quality,
        )


@dataclass
class Records:
    """The records of one raw file, columnar: a :class:`WideTable` or a :class:`LongTable`."""

    file: str
    n_rows: int
    """Number of input rows (data lines of a CSV, records of a long table)."""
    table: WideTable | LongTable
    unmapped_columns: list[str]
    """Columns of the file that are not manifest tags (nor the timestamp/series/... columns): ignored."""

    @property
    def wide(self) -> WideTable | None:
        return self.table if isinstance(self.table, WideTable) else None

    @property
    def frame(self) -> pd.DataFrame:
        """One record per (input row, tag) cell. Columns: row (int, 0-based input row), timestamp
        (datetime64[ns, UTC] or NaT), tag (str), value (float, NaN when missing or not numeric), non_numeric
        (bool: a non-empty cell that is no number), series (str: which series of the asset the row belongs to,
        e.g. a run or unit id; "" when one), bad_quality (bool: the source's own quality flag marks the record
        bad; its value is NaN). Built on demand; a wide file's is tag-major (all of tag 0, then tag 1...)."""
        return self.table.long_frame()


# ----------------------------------------------------------------------------------------------------
# Small helpers


class _Ctx:
    """Where we are, for error messages: manifest, files[i] key, raw file."""

    def __init__(self, m: PlantManifest, spec: FileSpec, key: str, path: Path):
        self.m, self.spec, self.key, self.path = m, spec, key, path

    def error(self, what: str, key: str | None = None) -> ManifestError:
        k = f" (manifest {self.m.source}, key '{self.key}.{key}')" if key else f" (manifest {self.m.source}, '{self.key}')"
        return ManifestError(f"{self.path}: {what}{k}")


_MAGIC = re.compile(r"[*?[]")
_UNNAMED = re.compile(r"^(Unnamed: \d+(_level_\d+)?)?$")
# A time of day followed by a UTC designator or an offset: "…T10:00:00Z", "… 10:00+01:00", "…10:00:00.5-0500".
_AWARE = re.compile(r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)


def _is_unnamed(col: str) -> bool:
    """pandas names a header cell that is empty "Unnamed: <i>" (index columns written by ``to_csv``)."""
    return bool(_UNNAMED.match(str(col).strip()))


def _decode(ctx: _Ctx) -> str:
    data = ctx.path.read_bytes()
    enc = ctx.spec.encoding
    if enc == "auto":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("latin-1")  # never fails: every byte is a character
    else:
        try:
            text = data.decode(enc)
        except UnicodeDecodeError as e:
            raise ctx.error(f"cannot be decoded as {enc!r} ({e.reason} at byte {e.start}); try 'encoding: auto'", "encoding") from None
    return text[1:] if text.startswith("\ufeff") else text


def _read_csv(ctx: _Ctx) -> pd.DataFrame:
    """All cells as strings ("" when empty); header names stripped; unnamed columns dropped."""
    spec = ctx.spec
    text = _decode(ctx)
    kw: dict = {"dtype": str, "keep_default_na": False, "header": 0 if spec.header else None}
    if spec.delimiter == "whitespace":
        kw["sep"] = r"\s+"
    else:
        kw["sep"] = spec.delimiter
        kw["skipinitialspace"] = True
        if len(spec.delimiter) > 1:
            kw["engine"] = "python"  # multi-character separators are regular expressions for pandas
    try:
        df = pd.read_csv(io.StringIO(text), **kw)
    except pd.errors.EmptyDataError:
        raise ctx.error("file is empty; expected a header line and data rows") from None
    except pd.errors.ParserError as e:
        raise ctx.error(f"cannot be split into columns with delimiter {spec.delimiter!r}: {e}", "delimiter") from None
    if not spec.header:
        cols = list(spec.columns or ())
        if df.shape[1] != len(cols):
            raise ctx.error(f"rows have {df.shape[1]} fields but {len(cols)} column names are given", "columns")
        df.columns = cols
        return df
    df.columns = [str(c).strip() for c in df.columns]
    return df[[c for c in df.columns if not _is_unnamed(c)]]


ARROW_FAST_PATH = True
"""Read wide and long CSV with pyarrow's C++ parser (block by block; numbers parsed as floats while
reading) and convert times with Arrow kernels when the file allows it. What the fast path cannot reproduce exactly
falls back to the pandas rules: the whole file for other encodings, whitespace or multi-character
delimiters, duplicate header names and ragged rows; a column whose cells are not all plain numbers is read
as text and only its other cells go through pandas; a time column Arrow cannot parse whole goes through
pandas. ``tests/data_prep/test_fast_paths.py`` reads every tricky file both ways and compares."""

_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass
class _ArrowWide:
    """A wide CSV read by Arrow in blocks: tag columns already converted, text columns kept as strings."""

    columns: list[str]
    n: int
    text: dict[str, pa.ChunkedArray]
    """The timestamp and series columns (Arrow strings, null when empty)."""
    numeric: list[str]
    """Every other column, in file order: the rows of ``values`` and ``non_numeric``."""
    values: np.ndarray
    """(len(numeric), n) float64 (NaN where empty or not a number)."""
    non_numeric: np.ndarray
    """(len(numeric), n) bool: a cell with text that is not a number."""
    naive_ts: np.ndarray | None = None
    """Naive local datetime64[ns] per row when the timestamp column was parsed block by block in a
    fixed-width format (``_fixed_width_times``); its text is then not kept (``text`` has no blocks of it)."""


def _arrow_blocks(ctx: _Ctx, auto: list[str], pos: dict[str, int], text_cols: list[str], num_cols: list[str], as_text: set[str],
                  time_type: pa.DataType) -> tuple[int, dict[str, list], np.ndarray, np.ndarray, np.ndarray | None]:
    """One pass over the file: (rows, text columns' blocks, values, non_numeric, naive times), values and
    non_numeric (columns, rows) arrays with the numeric columns in ``num_cols`` order, filled block by block
    (no per-block copies to concatenate at the end: their capacity is estimated from the first block and
    the file size, and capacity never written is never touched, so it takes no memory). The timestamp
    column is parsed as ``time_type`` while reading (a timestamp with the manifest's format, float epoch
    numbers, or plain text). Text times in a fixed-width ``timestamp_format`` are parsed block by block
    into the naive times (``_fixed_width_times``; the text is not kept); when a block does not fit, the
    naive times are None and the column's text is read again for the general parsers. Raises ArrowInvalid
    when a typed column meets a cell it cannot parse."""
    spec = ctx.spec
    fmt, ts_col = spec.timestamp_format, spec.timestamp_column
    per_block = (ts_col in text_cols and ts_col != spec.series_column and time_type == pa.string() and fmt is not None
                 and _fixed_layout(fmt) is not None)
    naive = np.empty(0, dtype=np.int64) if per_block else None
    reread = False
    types = {auto[pos[c]]: (time_type if c == spec.timestamp_column else pa.string()) for c in text_cols}
    types.update({auto[pos[c]]: (pa.string() if c in as_text else pa.float64()) for c in num_cols})
    block_size = 1 << 18
    reader = pacsv.open_csv(
        str(ctx.path),  # straight from the file: no copy of its bytes in Python
        read_options=pacsv.ReadOptions(column_names=auto, skip_rows=1 if spec.header else 0, block_size=block_size),
        parse_options=pacsv.ParseOptions(delimiter=spec.delimiter),
        convert_options=pacsv.ConvertOptions(
            include_columns=[auto[pos[c]] for c in (*text_cols, *num_cols)], include_missing_columns=False,
            column_types=types, strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=True,
            decimal_point=spec.decimal if len(spec.decimal) == 1 else ".",
        ),
    )
    text: dict[str, list] = {c: [] for c in text_cols}
    deferred: dict[int, list] = {}  # per text-holding column: (rows, cells) the pandas rules convert at the end
    tokens: dict[int, set[str]] = {}  # per text-holding column: the text cells met so far (see _arrow_numeric)
    k = len(num_cols)
    values = np.empty((k, 0))
    bad = np.empty((k, 0), dtype=bool)
    n = 0
    for batch in reader:
        m = batch.num_rows
        if n + m > values.shape[1]:  # first block: room for the whole file at its density, plus 10 %; later: double
            cap = int(m * ctx.path.stat().st_size / block_size * 1.1) + 1024 if n == 0 else 2 * values.shape[1]
            values, bad = _grown(values, n, max(cap, n + m)), _grown(bad, n, max(cap, n + m))
            if naive is not None:
                naive = _grown(naive[None], n, max(cap, n + m))[0]
        for c, acc in text.items():
            col = batch.column(auto[pos[c]])
            if c == ts_col and naive is not None:
                # untrimmed first: a cell with spaces around it does not fit, and the trimmed text is tried
                got = _fixed_width_times(col, fmt)
                got = _fixed_width_times(pc.utf8_trim_whitespace(col), fmt) if got is None else got
                if got is not None:
                    naive[n : n + m] = got.view(np.int64)
                    continue
                naive, reread = None, True  # the general parsers take the whole column: its text is read again
            if not (c == ts_col and reread):
                acc.append(col)
        for j, c in enumerate(num_cols):
            col = batch.column(auto[pos[c]])
            if c in as_text:
                col = pa.chunked_array([col])
                later: list = []
                got = _arrow_numeric(col, spec.decimal, later, tokens.setdefault(j, set()))
                values[j, n : n + m], bad[j, n : n + m] = got or _numeric(_arrow_strings(col), spec.decimal)
                deferred.setdefault(j, []).extend((n + rows, cells) for rows, cells in later)
            else:  # Arrow parsed the floats (empty -> null -> NaN); a NaN that was a cell is the text "nan"
                v = values[j, n : n + m]
                v[:] = col.to_numpy(zero_copy_only=False)
                np.logical_and(np.isnan(v), col.is_valid().to_numpy(zero_copy_only=False), out=bad[j, n : n + m])
        n += m
    for j, parts in deferred.items():
        if parts:
            rows = np.concatenate([r for r, _ in parts])
            cells = pa.chunked_array([c for _, c in parts], type=parts[0][1].type)
            values[j, rows], bad[j, rows] = _numeric(pd.Series(cells.to_numpy(), dtype=object), spec.decimal)
    if reread:
        text[ts_col] = pacsv.read_csv(
            str(ctx.path),
            read_options=pacsv.ReadOptions(column_names=auto, skip_rows=1 if spec.header else 0, block_size=block_size),
            parse_options=pacsv.ParseOptions(delimiter=spec.delimiter),
            convert_options=pacsv.ConvertOptions(include_columns=[auto[pos[ts_col]]], column_types={auto[pos[ts_col]]: pa.string()},
                                                 strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=True),
        ).column(0).chunks
    return n, text, values[:, :n], bad[:, :n], None if naive is None else naive[:n].view("datetime64[ns]")


def _grown(a: np.ndarray, n: int, cap: int) -> np.ndarray:
    """A (rows, cap) array holding the first ``n`` columns of ``a``."""
    out = np.empty((a.shape[0], cap), dtype=a.dtype)
    out[:, :n] = a[:, :n]
    return out


def _arrow_read_wide(ctx: _Ctx, keep_text: set[str], wanted: set[str]) -> _ArrowWide | None:
    """Read a wide CSV with Arrow's parser one block at a time: only the current block's text is held, the
    tag columns become float arrays as they come (memory ~ 9 bytes per cell, not the file's text). Columns
    in ``keep_text`` stay strings; columns outside ``wanted`` are skipped. None when the pandas path must
    read this file (see ARROW_FAST_PATH)."""
    spec = ctx.spec
    if not ARROW_FAST_PATH or spec.delimiter == "whitespace" or len(spec.delimiter) != 1:
        return None
    if spec.encoding.lower().replace("_", "-") not in ("auto", "utf-8", "utf8", "utf-8-sig"):
        return None
    try:
        if spec.header:
            with open(ctx.path, "rb") as fh:
                line = fh.readline()
            if line.startswith(_UTF8_BOM):  # Arrow skips the mark in the data itself
                line = line[len(_UTF8_BOM):]
            line = line.decode("utf-8").rstrip("\r\n")
            names = [c.strip() for c in next(csv.reader([line], delimiter=spec.delimiter))]
        else:
            names = list(spec.columns or ())
        if len(set(names)) != len(names):
            return None  # pandas renames duplicates ("a", "a.1"): leave that to it
        auto = [f"c{i}" for i in range(len(names))]
        columns = [name for name in names if not _is_unnamed(name)]
        pos = {name: i for i, name in enumerate(names) if not _is_unnamed(name)}
        text_cols = [c for c in columns if c in keep_text]
        num_cols = [c for c in columns if c in wanted and c not in keep_text]
    except (UnicodeDecodeError, StopIteration):
        return None
    # numeric columns with cells Arrow's float parser refuses are read as text (then cast cell by cell)
    as_text: set[str] = set() if len(spec.decimal) == 1 else set(num_cols)
    time_type = _arrow_time_type(spec)
    for _attempt in range(4):
        try:
            got = _arrow_blocks(ctx, auto, pos, text_cols, num_cols, as_text, time_type)
        except pa.ArrowInvalid as e:
            bad = re.search(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to ", str(e))
            col = names[int(bad.group(1))] if bad else None
            if col is not None and col == spec.timestamp_column and time_type != pa.string():
                time_type = pa.string()  # times Arrow cannot parse whole: as text, for the rules below
                continue
            if col is None or col not in num_cols or col in as_text:
                return None  # ragged rows, bad UTF-8, ...: the pandas path reads it or reports what is wrong
            as_text |= {col} if not as_text else set(num_cols)  # one text column; a second one: all as text
            continue
        except (pa.ArrowTypeError, pa.ArrowNotImplementedError, UnicodeDecodeError):
            return None
        n, text, values, non_numeric, naive_ts = got
        break
    else:
        return None
    if n == 0:
        return None
    pa.default_memory_pool().release_unused()  # the parsed blocks are gone: give their memory back now
    types = {c: (time_type if c == spec.timestamp_column else pa.string()) for c in text}
    return _ArrowWide(columns, n, {c: pa.chunked_array(acc, type=types[c]) for c, acc in text.items()}, num_cols, values, non_numeric,
                      naive_ts)


def _arrow_time_type(spec: FileSpec) -> pa.DataType:
    """How Arrow should parse the timestamp column while reading: epoch numbers as floats, text times as
    naive timestamps (ISO 8601, or the manifest's strptime format; offsets and zone names go to the text
    path), anything else as text."""
    if spec.timestamp_column is None:
        return pa.string()
    if spec.timestamp_unit is not None:
        return pa.float64()
    if spec.timestamp_format is not None:
        return pa.string()  # parsed from the text: _fixed_width_times per block, or strptime checked against it
    return pa.timestamp("ns")  # Arrow's ISO 8601 parser rejects dates that do not exist


_MAX_TOKENS = 32
"""Text cells remembered per column (see ``_arrow_numeric``'s ``tokens``)."""


def _is_token(cell: str) -> bool:
    """A cell that is text and no number whatever the rules: no digit in it, and not one of the spellings
    of inf or nan (which Python's float accepts, as pandas does)."""
    stripped = cell.strip()  # as the pandas rules strip (float() itself keeps some separators, e.g. \x1f)
    if not stripped or any(ch.isdigit() for ch in stripped):
        return False
    try:
        float(stripped)
    except ValueError:
        return True
    return False


def _among(cells, tokens: set[str]):
    """Boolean Arrow mask: which cells are one of ``tokens`` (a null cell is not)."""
    return pc.fill_null(pc.is_in(cells, value_set=pa.array(sorted(tokens), type=pa.string())), False)


def _arrow_numeric(col: pa.ChunkedArray, decimal: str, deferred: list | None = None,
                   tokens: set[str] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(values, non_numeric) by Arrow casts. A column with text in it (historian strings, padded cells)
    casts its plain numbers in Arrow and hands only the other cells to the pandas rules. None when even the
    plain numbers do not cast (the caller then converts the whole column with pandas). With ``deferred``
    (a list), the other cells are not converted here but appended as (positions, cells) and left NaN / not
    flagged: a caller converting a file block by block resolves them in one call at the end (the pandas
    rules cost ~1.5 ms a call, whatever the number of cells). With ``tokens`` (a set, kept by the caller
    across the blocks of one column), the text cells met are remembered (``_is_token``: "Inp OutRange",
    "Bad"): historians repeat a few strings, so a later block whose only text is those strings is one
    cast with them set aside (not a number, as the pandas rules say) instead of the cell-by-cell route."""
    s = pc.replace_substring(col, decimal, ".") if decimal != "." else col
    # the strings met before set aside (first: a column that had them has them again), then the plain cast
    for aside in ([tokens] if tokens else []) + [None]:
        try:
            cast = s if aside is None else pc.if_else(_among(s, aside), pa.scalar(None, pa.string()), s)
            v = np.array(pc.cast(cast, pa.float64()).to_numpy(zero_copy_only=False), dtype=float)  # nulls -> NaN
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        # a cell that casts to NaN is the text "nan" or a string set aside: not a number (the pandas rules say the same)
        return v, np.isnan(v) & pc.is_valid(col).to_numpy(zero_copy_only=False)
    t = pc.utf8_trim_whitespace(s)
    # plain numbers: digits with an optional sign and one decimal point (cheaper than a regex per cell);
    # a cell this lets through but Arrow cannot cast ("+-5") sends the block to the pandas rules below
    digits = pc.replace_substring(pc.utf8_ltrim(t, characters="+-"), ".", "", max_replacements=1)
    plain = pc.fill_null(pc.ascii_is_decimal(digits), False)
    try:
        v = np.array(pc.cast(pc.if_else(plain, t, pa.scalar(None, pa.string())), pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    plain_np = plain.to_numpy(zero_copy_only=False)
    rest = np.flatnonzero(~plain_np & pc.is_valid(t).to_numpy(zero_copy_only=False))
    non_numeric = np.zeros(len(v), dtype=bool)
    if len(rest) and tokens is not None:  # remember the strings; they are not numbers (v is NaN there already)
        text = pc.take(s, pa.array(rest))
        new = [c for c in pc.unique(text).to_pylist()[:_MAX_TOKENS] if c is not None and _is_token(c)]
        tokens.update(new[: max(0, _MAX_TOKENS - len(tokens))])
        if tokens:
            aside = _among(text, tokens).to_numpy(zero_copy_only=False)
            non_numeric[rest[aside]] = True
            rest = rest[~aside]
    if len(rest):  # the few other cells (text, "inf", "1,5" with decimal ".") by the pandas rules
        cells = pc.take(col, pa.array(rest))
        if deferred is not None:
            deferred.append((rest, cells))
        else:
            v[rest], non_numeric[rest] = _numeric(pd.Series(cells.to_numpy(zero_copy_only=False), dtype=object), decimal)
    return v, non_numeric


def _day_layout(fmt: str) -> tuple[int, int] | None:
    """(position of the zero-padded day of month, length of a formatted time) for a format whose fields
    all have a fixed width; else None."""
    if fmt.count("%d") != 1 or any(d in fmt for d in ("%j", "%-", "%e", "%B", "%A", "%c", "%x", "%U", "%W")):
        return None
    probe = datetime.datetime(2001, 11, 27, 13, 44, 55).strftime(fmt)
    return (probe.find("27"), len(probe)) if probe.count("27") == 1 else None


def _strptime_checked(s: pa.ChunkedArray, fmt: str) -> pa.ChunkedArray | None:
    """Arrow's strptime, minus its leniency: it turns day 31 of a 30-day month into the 1st of the next
    one, where pandas (and the calendar) say no such date. The day as written is read at its fixed position
    and compared with the parsed one. None when a day does not match, the format has no fixed layout or a
    cell does not fit it: the pandas rules decide then."""
    t = pc.strptime(s, format=fmt, unit="ns", error_is_null=True)
    if "%d" not in fmt:
        return t
    layout = _day_layout(fmt)
    if layout is None:
        return None
    at, width = layout
    parsed_day = pc.fill_null(pc.day(t), 99).to_numpy(zero_copy_only=False)  # a cell that did not parse: 99
    # a day that overflowed its month comes out as day 1-3 of the next one: only those rows need a look
    suspects = np.flatnonzero(parsed_day <= 3)
    if not len(suspects):
        return t
    cells = pc.take(s, pa.array(suspects))
    if (pc.fill_null(pc.utf8_length(cells), 0).to_numpy(zero_copy_only=False) != width).any():
        return None
    try:
        written = pc.cast(pc.utf8_slice_codeunits(cells, at, at + 2), pa.int64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return None if (written != parsed_day[suspects]).any() else t


_FIXED_WIDTH = {"Y": 4, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2}
"""The strptime fields a fixed-width format may hold (zero-padded; ``%Y`` four digits)."""


@functools.lru_cache(maxsize=64)
def _fixed_layout(fmt: str) -> tuple[int, dict[str, int], list[tuple[int, int]]] | None:
    """(width, {field: position}, [(position, byte)] of the literal characters) of a format made only of
    ``_FIXED_WIDTH`` fields, ``%%`` and printable ASCII characters, with a year, month and day; else None."""
    if "%z" in fmt or "%Z" in fmt:  # even as a literal ("%%z"): the pandas rules read such a format as zone-aware
        return None
    fields: dict[str, int] = {}
    literals: list[tuple[int, int]] = []
    i = pos = 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%":
            d = fmt[i + 1 : i + 2]
            if d == "%":
                literals.append((pos, ord("%")))
                pos, i = pos + 1, i + 2
                continue
            if d not in _FIXED_WIDTH or d in fields:
                return None
            fields[d] = pos
            pos, i = pos + _FIXED_WIDTH[d], i + 2
            continue
        if not (" " <= c <= "~"):
            return None
        literals.append((pos, ord(c)))
        pos, i = pos + 1, i + 1
    # a format with spaces at its ends would meet the cells only after trimming: left to strptime
    return (pos, fields, literals) if {"Y", "m", "d"} <= fields.keys() and fmt == fmt.strip() else None


def _month_tables() -> tuple[np.ndarray, np.ndarray]:
    """(days from 1970-01-01 to the first of each month, days in each month), indexed [year - 1678, month]
    for the years datetime64[ns] holds (month 0 unused)."""
    first = np.arange("1678-01", "2262-01", dtype="datetime64[M]")
    days = first.astype("datetime64[D]").astype(np.int64).reshape(-1, 12)
    length = np.diff(np.append(days.ravel(), np.datetime64("2262-01-01", "D").astype(np.int64))).reshape(-1, 12)
    pad = np.zeros((days.shape[0], 1), dtype=np.int64)
    return np.hstack([pad, days]), np.hstack([pad, length])


_MONTH_START, _MONTH_DAYS = _month_tables()


def _fixed_width_times(s: pa.ChunkedArray, fmt: str) -> np.ndarray | None:
    """Trimmed text times in a fixed-width format (``_fixed_layout``, e.g. ``%d.%m.%Y %H:%M:%S``) ->
    naive datetime64[ns], NaT where a cell is empty; the digits are read straight from the column's bytes.
    None when the format is not fixed-width or a present cell does not fit it exactly (other width, a
    non-digit, a date that does not exist, a time out of range, a year outside datetime64[ns]): the
    general parsers decide then, so this only ever agrees with them."""
    layout = _fixed_layout(fmt)
    if layout is None or not (pa.types.is_string(s.type) or pa.types.is_large_string(s.type)):
        return None
    width, fields, literals = layout
    arr = s.combine_chunks() if isinstance(s, pa.ChunkedArray) else s
    lengths = pc.fill_null(pc.binary_length(arr), 0).to_numpy(zero_copy_only=False)
    present = lengths > 0
    out = np.full(len(arr), np.iinfo(np.int64).min, dtype=np.int64)
    n = int(present.sum())
    if n == 0:
        return out.view("datetime64[ns]")
    if (lengths[present] != width).any():
        return None
    cells = arr if n == len(arr) else arr.filter(pa.array(present))
    offset_type = np.dtype(np.int64 if pa.types.is_large_string(s.type) else np.int32)
    offsets = np.frombuffer(cells.buffers()[1], dtype=offset_type, count=len(cells) + 1, offset=cells.offset * offset_type.itemsize)
    # one row per character position (contiguous), the digits as 0..9 (anything else wraps above 9)
    chars = np.frombuffer(cells.buffers()[2], dtype=np.uint8, count=n * width, offset=int(offsets[0])).reshape(n, width).T.copy()
    for at, byte in literals:
        if (chars[at] != byte).any():
            return None
    digits = {f: chars[at : at + _FIXED_WIDTH[f]] - np.uint8(48) for f, at in fields.items()}
    if any((v > 9).any() for v in digits.values()):
        return None

    def number(field: str) -> np.ndarray:
        if field not in digits:
            return np.zeros(n, dtype=np.int32)
        v = digits[field][0].astype(np.int32)
        for row in digits[field][1:]:
            v *= 10
            v += row
        return v

    y, mo, d, hh, mi, ss = (number(f) for f in ("Y", "m", "d", "H", "M", "S"))
    if (y < 1678).any() or (y > 2261).any() or (mo < 1).any() or (mo > 12).any() or (hh > 23).any() or (mi > 59).any() or (ss > 59).any():
        return None
    y -= 1678
    if (d < 1).any() or (d > _MONTH_DAYS[y, mo]).any():
        return None
    seconds = (hh * 60 + mi) * 60 + ss
    days = _MONTH_START[y, mo]
    days += d - 1
    days *= 86_400
    days += seconds
    days *= 1_000_000_000
    out[present] = days
    return out.view("datetime64[ns]")


def _arrow_times(ctx: _Ctx, col: pa.ChunkedArray, groups: np.ndarray | None) -> np.ndarray | None:
    """Text timestamps by Arrow (ISO 8601 without offsets, or a strptime format without %z/%Z), localized
    in the plant's time zone. None when a present cell fails to parse: the pandas rules decide then (a
    date that does not exist, such as 31.02., is a cell that fails: see ``_strptime_checked``)."""
    spec = ctx.spec
    if spec.timestamp_unit is not None:
        return None
    fmt = spec.timestamp_format
    s = pc.utf8_trim_whitespace(col)
    try:
        if fmt is None:
            t = pc.cast(s, pa.timestamp("ns"))
        elif "%z" in fmt or "%Z" in fmt or "%f" in fmt:
            return None
        else:
            fixed = _fixed_width_times(s, fmt)
            if fixed is not None:
                return _local_to_utc(fixed, ctx.m.timezone, groups)
            t = _strptime_checked(s, fmt)
            if t is None:
                return None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    present = pc.fill_null(pc.greater(pc.utf8_length(s), 0), False).to_numpy(zero_copy_only=False)
    ok = pc.is_valid(t).to_numpy(zero_copy_only=False)
    if (ok != present).any():
        return None
    return _local_to_utc(t.to_numpy(zero_copy_only=False).astype("datetime64[ns]"), ctx.m.timezone, groups)


def _typed_times(ctx: _Ctx, col: pa.ChunkedArray, groups: np.ndarray | None) -> np.ndarray | None:
    """The timestamp column as Arrow read it -> datetime64[ns] UTC, or None for the pandas rules."""
    if pa.types.is_timestamp(col.type):  # naive local times, all parsed
        ns = pc.fill_null(col.cast(pa.int64()), np.iinfo(np.int64).min).to_numpy(zero_copy_only=False)
        ns = ns.astype(np.int64, copy=False).view("datetime64[ns]")  # an empty cell is NaT
        return _local_to_utc(ns, ctx.m.timezone, groups)
    if pa.types.is_floating(col.type):  # epoch numbers or step counts
        return _timestamps(ctx, pd.Series(col.to_numpy(zero_copy_only=False), dtype=float), groups)
    return _arrow_times(ctx, col, groups)


def _arrow_strings(col: pa.ChunkedArray) -> pd.Series:
    """An Arrow string column as pandas strings, "" where empty (what the pandas path reads)."""
    return pd.Series(pc.fill_null(col, "").to_numpy(zero_copy_only=False), dtype=object)


def _column(ctx: _Ctx, df: pd.DataFrame, col: str, key: str, what: str) -> pd.Series:
    if col not in df.columns:
        raise ctx.error(f"{what} column {col!r} not found; columns are {list(df.columns)}", key)
    return df[col]


def _numeric(cells: pd.Series, decimal: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, non_numeric) of a column read as strings."""
    s = cells.astype("string").str.strip()
    if decimal != ".":
        s = s.str.replace(decimal, ".", regex=False)
    v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    empty = s.isna().to_numpy() | (s == "").fillna(True).to_numpy()
    return v, np.isnan(v) & ~empty


def _text_numbers(cells: pd.Series, decimal: str) -> tuple[np.ndarray, np.ndarray]:
    """``_numeric`` for a column pandas read as text, with Arrow's kernels doing the plain numbers when
    ARROW_FAST_PATH is on (the same cell rules: see ``_arrow_numeric``)."""
    if ARROW_FAST_PATH:
        try:
            arr = pa.chunked_array([pa.array(cells, from_pandas=True)]).cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            arr = None
        if arr is not None:
            arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)  # pandas reads empty cells as ""
            got = _arrow_numeric(arr, decimal)
            if got is not None:
                return got
    return _numeric(cells, decimal)


def _numbers(cells: pd.Series) -> np.ndarray:
    """A column as floats (NaN where empty or not a number), whatever its dtype."""
    if pd.api.types.is_numeric_dtype(cells) and not pd.api.types.is_bool_dtype(cells):
        return cells.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(cells.astype("string").str.strip(), errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _utc_ns(ts: pd.Series) -> np.ndarray:
    """tz-aware or NaT series -> numpy datetime64[ns] (UTC)."""
    return ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def _origin(spec: FileSpec, tz: str) -> pd.Timestamp:
    o = pd.Timestamp(spec.origin)
    if o.tzinfo is None:
        o = o.tz_localize(tz)
    return o.tz_convert("UTC")


def _steps(origin: pd.Timestamp, steps: np.ndarray, interval_s: float) -> np.ndarray:
    """origin + steps * interval_s as datetime64[ns] (UTC); NaN steps -> NaT."""
    ns = steps * interval_s * 1e9
    ok = np.isfinite(ns) & (np.abs(ns) < 2**62)
    out = np.full(len(steps), np.datetime64("NaT"), dtype="datetime64[ns]")
    base = origin.tz_localize(None).to_datetime64().astype("datetime64[ns]")
    out[ok] = base + np.round(ns[ok]).astype(np.int64).astype("timedelta64[ns]")
    return out


def _localize_one(t: pd.Series, tz: str) -> pd.Series:
    """Naive local times -> tz-aware. The fall-back hour is inferred from the order of the rows (pandas
    ``ambiguous="infer"``); when that is impossible (a repeated hour appears once, rows out of order) the
    ambiguous times are NaT. Spring-forward times that do not exist are NaT."""
    try:
        return t.dt.tz_localize(tz, ambiguous="infer", nonexistent="NaT")
    except (ValueError, TypeError):
        return t.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")


def _local_to_utc(ns: np.ndarray, tz: str, groups: np.ndarray | None) -> np.ndarray:
    """Naive local datetime64[ns] in the plant's time zone -> UTC (see ``_localize``); as is in UTC."""
    return ns if tz == "UTC" else _utc_ns(_localize(pd.Series(ns), tz, groups))


def _record_groups(s_codes: np.ndarray, tag_codes: np.ndarray, n_tags: int) -> np.ndarray:
    """One group per (series, tag) of a long file, for DST inference (a long file interleaves the tags)."""
    return s_codes.astype(np.int64) * n_tags + tag_codes


def _bad_quality_lut(uniques, bad_set: set[str]) -> np.ndarray:
    """Per distinct quality value (missing ones as None or NaN): is it bad? One more entry at the end for a
    missing cell, so that codes with -1 or ``len(uniques)`` for missing index it."""
    return np.array([_norm_quality(np.nan if u is None else u) in bad_set for u in uniques] + [_norm_quality(np.nan) in bad_set],
                    dtype=bool)


def _localize(t: pd.Series, tz: str, groups: np.ndarray | None) -> pd.Series:
    if groups is None or t.empty:
        return _localize_one(t, tz)
    parts = [_localize_one(g, tz) for _, g in t.groupby(groups, sort=False)]
    return pd.concat(parts).reindex(t.index)


def _parse(s: pd.Series, fmt: str | None, utc: bool) -> pd.Series:
    """Text -> datetimes. Without a format: ISO 8601 in any precision first, then whatever pandas can
    infer for the rest (e.g. "01.03.2026 00:00"); unparseable -> NaT."""
    if fmt is not None:
        return pd.to_datetime(s, format=fmt, errors="coerce", utc=utc)
    t = pd.to_datetime(s, format="ISO8601", errors="coerce", utc=utc)
    miss = t.isna().to_numpy() & s.notna().to_numpy()
    if not miss.any():
        return t
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "could not infer format": parsed per element
            rest = pd.to_datetime(s[miss], errors="coerce", utc=utc)
    except ValueError:  # e.g. zone names pandas cannot put on one axis: left NaT
        return t
    if not rest.notna().any() or (not utc and getattr(rest.dt, "tz", None) is not None):
        return t
    if not t.notna().any():
        return rest.reindex(s.index)
    return pd.concat([t[~miss], rest]).reindex(s.index)


def _text_times(s: pd.Series, fmt: str | None, tz: str, groups: np.ndarray | None) -> np.ndarray:
    """Dates as text -> datetime64[ns] UTC. Strings with an offset or Z are exact instants; naive ones are
    local times in ``tz``. Mixed offsets (a DST change written as +01:00/+02:00) are fine."""
    s = s.astype("string").str.strip()
    s = s.mask(s == "")
    out = np.full(len(s), np.datetime64("NaT"), dtype="datetime64[ns]")
    present = s.notna().to_numpy()
    if fmt is not None:
        aware = present if ("%z" in fmt or "%Z" in fmt) else np.zeros(len(s), dtype=bool)
    else:
        aware = present & s.str.contains(_AWARE, na=False).to_numpy(dtype=bool)
    naive = present & ~aware
    if aware.any():
        out[aware] = _utc_ns(_parse(s[aware], fmt, utc=True))
    if naive.any():
        t = _parse(s[naive], fmt, utc=False)
        if getattr(t.dt, "tz", None) is None:
            t = _localize(t, tz, None if groups is None else groups[naive])
        out[naive] = _utc_ns(t)
    return out


def _timestamps(ctx: _Ctx, raw: pd.Series, groups: np.ndarray | None = None) -> np.ndarray:
    """The timestamp column -> datetime64[ns] (UTC), NaT where it cannot be parsed."""
    spec, tz = ctx.spec, ctx.m.timezone
    unit = spec.timestamp_unit
    if unit == "index":
        return _steps(_origin(spec, tz), _numbers(raw), float(spec.row_interval_s))
    if unit is not None:
        if pd.api.types.is_datetime64_any_dtype(raw):
            raise ctx.error(f"column {spec.timestamp_column!r} holds dates, not epoch numbers; drop 'timestamp_unit'", "timestamp_unit")
        t = pd.to_datetime(pd.Series(_numbers(raw)), unit=unit, errors="coerce", utc=True)
        return _utc_ns(t)
    if pd.api.types.is_datetime64_any_dtype(raw):
        t = raw if getattr(raw.dt, "tz", None) is not None else _localize(raw, tz, groups)
        return _utc_ns(t)
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):  # Parquet: epoch seconds
        return _utc_ns(pd.to_datetime(pd.Series(raw.to_numpy(dtype=float)), unit="s", errors="coerce", utc=True))
    out = _text_times(raw, spec.timestamp_format, tz, groups)
    if len(raw) and np.isnat(out).all():
        nums = _numbers(raw)
        if np.isfinite(nums).any() and np.isfinite(nums).sum() == (raw.astype("string").str.strip().fillna("") != "").sum():
            raise ctx.error(
                f"timestamp column {spec.timestamp_column!r} holds plain numbers (e.g. {raw.iloc[0]!r}); "
                "set 'timestamp_unit' (s, ms, us, ns or index)",
                "timestamp_unit",
            )
    return out


def _series_of_file(spec: FileSpec, path: Path) -> str:
    return spec.series_prefix + path.stem if spec.series_from == "file" else ""


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": np.array([], dtype=np.int64),
            "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
            "tag": np.array([], dtype=object),
            "value": np.array([], dtype=float),
            "non_numeric": np.array([], dtype=bool),
            "series": np.array([], dtype=object),
            "bad_quality": np.array([], dtype=bool),
        }
    )


def _frame(rows, ts, tag, value, non_numeric, series, bad_quality) -> pd.DataFrame:
    f = pd.DataFrame(
        {
            "row": np.asarray(rows, dtype=np.int64),
            "timestamp": pd.to_datetime(np.asarray(ts, dtype="datetime64[ns]")).tz_localize("UTC"),
            "tag": np.asarray(tag, dtype=object),
            "value": np.asarray(value, dtype=float),
            "non_numeric": np.asarray(non_numeric, dtype=bool),
            "series": np.asarray(series, dtype=object),
            "bad_quality": np.asarray(bad_quality, dtype=bool),
        }
    )
    f["timestamp"] = f["timestamp"].astype("datetime64[ns, UTC]")
    return f


# ----------------------------------------------------------------------------------------------------
# Readers


def read_wide_csv(m: PlantManifest, spec: FileSpec, path: Path, key: str = "files[?]") -> Records:
    """One column per tag, one line per timestamp (or per row of a fixed interval). Kept columnar."""
    ctx = _Ctx(m, spec, key, path)
    known = {t.name for t in m.tags}
    used = {spec.timestamp_column, spec.series_column} - {None}
    fast = _arrow_read_wide(ctx, keep_text=used, wanted=known)
    if fast is None:
        df = _read_csv(ctx)
        columns, n = list(df.columns), len(df)

        def text(c: str) -> pd.Series:
            return df[c]

        def numeric(c: str) -> tuple[np.ndarray, np.ndarray]:
            return _text_numbers(df[c], spec.decimal)
    else:
        columns, n = fast.columns, fast.n

        def text(c: str) -> pd.Series:
            return _arrow_strings(fast.text[c])
    for c, what, k in ((spec.timestamp_column, "timestamp", "timestamp_column"), (spec.series_column, "series", "series_column")):
        if c is not None and c not in columns:
            raise ctx.error(f"{what} column {c!r} not found; columns are {columns}", k)
    if spec.series_column is None:
        codes, snames = np.zeros(n, dtype=np.int32), [_series_of_file(spec, path)]
    else:
        s = text(spec.series_column).astype("string").str.strip().fillna("")
        c, u = pd.factorize(spec.series_prefix + s, sort=False)
        codes, snames = c.astype(np.int32), [str(x) for x in u]
    groups = codes if spec.series_column is not None else None
    if spec.timestamp_column is None:
        ts = _steps(_origin(spec, m.timezone), np.arange(n, dtype=float), float(spec.row_interval_s))
    else:
        if fast is not None and fast.naive_ts is not None:
            ts = _local_to_utc(fast.naive_ts, m.timezone, groups)
        else:
            ts = None if fast is None else _typed_times(ctx, fast.text[spec.timestamp_column], groups)
        if ts is None:
            ts = _timestamps(ctx, text(spec.timestamp_column), groups)
    tag_cols = [c for c in columns if c in known and c not in used]
    unmapped = [c for c in columns if c not in known and c not in used]
    if n and not tag_cols:
        raise ctx.error(f"none of the manifest's tags appear as columns; columns are {columns}")
    if fast is not None:  # Arrow filled the (tags, rows) arrays already: its numeric columns are tag_cols
        assert fast.numeric == tag_cols
        values, bad = fast.values, fast.non_numeric
    else:
        values = np.empty((len(tag_cols), n))
        bad = np.empty((len(tag_cols), n), dtype=bool)
        for j, c in enumerate(tag_cols):
            values[j], bad[j] = numeric(c)
    wide = WideTable(ts, codes, snames, tag_cols, values, bad)
    return Records(str(path), n, wide, unmapped)


def _norm_quality(x: object) -> str:
    s = str(x).strip().lower()
    try:
        f = float(s)
    except ValueError:
        return s
    return str(int(f)) if f.is_integer() else s


def _text_codes(col: pd.Series, prefix: str = "") -> tuple[np.ndarray, list[str]]:
    """Codes and names of a text column: names stripped (and prefixed), an empty cell is ""."""
    codes, uniques = pd.factorize(col, sort=False, use_na_sentinel=True)
    names = [prefix + str(u).strip() for u in uniques] + [prefix]
    codes = np.where(codes < 0, len(names) - 1, codes)
    merged, out = pd.factorize(pd.Series(names, dtype=object), sort=False)  # " a" and "a" are one name
    return merged[codes].astype(np.int32), [str(x) for x in out]


class _Coder:
    """Integer codes for the cells of an Arrow text column, fed chunk by chunk, as ``_text_codes`` gives
    them for the pandas column: names are ``prefix + value.strip()``, an empty cell is ``prefix``. Each
    chunk is dictionary-encoded (or already is): only the distinct values pass through Python."""

    def __init__(self, prefix: str = ""):
        self.prefix, self.lut = prefix, {}

    @property
    def names(self) -> list[str]:
        return list(self.lut)

    def __call__(self, chunk: pa.Array) -> np.ndarray:
        d = chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk)
        lut, prefix = self.lut, self.prefix
        local = np.array([lut.setdefault(prefix + ("" if v is None else str(v).strip()), len(lut)) for v in d.dictionary.to_pylist()],
                         dtype=np.int32)
        idx = d.indices
        codes = local[pc.fill_null(idx, 0).to_numpy(zero_copy_only=False)] if len(local) else np.zeros(len(chunk), dtype=np.int32)
        if idx.null_count:
            codes[~idx.is_valid().to_numpy(zero_copy_only=False)] = lut.setdefault(prefix, len(lut))
        return codes


def _arrow_codes(col: pa.ChunkedArray, prefix: str = "") -> tuple[np.ndarray, list[str]]:
    """Codes and names of a whole Arrow text column (see :class:`_Coder`)."""
    coder = _Coder(prefix)
    out = np.empty(len(col), dtype=np.int32)
    at = 0
    for chunk in col.chunks:
        out[at : at + len(chunk)] = coder(chunk)
        at += len(chunk)
    return out, coder.names


def _is_text_type(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _read_long_parquet_arrow(ctx: _Ctx) -> Records | None:
    """A long Parquet file by Arrow's reader in record batches, straight into the record arrays: text
    columns arrive dictionary-encoded and become codes, so no string column or pandas frame is built
    (at 633k records: ~25 MB lower peak than ``pd.read_parquet``). Only the column types whose conversion
    is plain take this path: timestamps, string tags/series, int or float values, string or number
    quality; anything else (epoch numbers, text values, a missing column, a file Arrow cannot open) goes
    to the pandas rules, which also word the errors. ``tests/data_prep/test_fast_paths.py`` reads such
    files both ways."""
    import pyarrow.parquet as pq

    spec, m = ctx.spec, ctx.m
    if not ARROW_FAST_PATH or spec.timestamp_unit is not None:
        return None
    try:
        schema = pq.read_schema(ctx.path)
    except Exception:  # not Parquet, unreadable: the pandas path says what is wrong
        return None
    names = [str(c) for c in schema.names]
    cols = {"ts": spec.timestamp_column, "tag": spec.tag_column, "value": spec.value_column,
            "quality": spec.quality_column, "series": spec.series_column}
    need = {k: c for k, c in cols.items() if c is not None}
    if len(set(names)) != len(names) or len(set(need.values())) != len(need) or any(c not in names for c in need.values()):
        return None
    typ = {k: schema.field(c).type for k, c in need.items()}
    ts_type, v_type = typ["ts"], typ["value"]
    if not pa.types.is_timestamp(ts_type) or not _is_text_type(typ["tag"]):
        return None
    if not (pa.types.is_floating(v_type) or pa.types.is_integer(v_type)):
        return None
    if "series" in typ and not _is_text_type(typ["series"]):
        return None
    if "quality" in typ and not (_is_text_type(typ["quality"]) or pa.types.is_integer(typ["quality"]) or pa.types.is_floating(typ["quality"])):
        return None
    pf = pq.ParquetFile(ctx.path, read_dictionary=[need[k] for k in ("tag", "series", "quality") if k in need and _is_text_type(typ[k])])
    n = pf.metadata.num_rows
    if n == 0:
        return None
    ts = np.empty(n, dtype=np.int64)
    v = np.empty(n, dtype=np.float64)
    tag_codes = np.empty(n, dtype=np.int32)
    s_codes = np.zeros(n, dtype=np.int32)
    bad_q = np.zeros(n, dtype=bool)
    tags, series = _Coder(), _Coder(spec.series_prefix)
    bad_set = {_norm_quality(b) for b in spec.bad_quality}
    ns_type = pa.timestamp("ns", tz=ts_type.tz)
    at = 0
    try:
        for batch in pf.iter_batches(batch_size=1 << 16, columns=list(need.values()), use_threads=False):
            k = batch.num_rows
            got = {key: batch.column(c) for key, c in need.items()}
            t = pc.cast(got["ts"], ns_type).cast(pa.int64())  # out of the ns range: ArrowInvalid -> pandas
            ts[at : at + k] = pc.fill_null(t, np.iinfo(np.int64).min).to_numpy(zero_copy_only=False)
            tag_codes[at : at + k] = tags(got["tag"])
            v[at : at + k] = got["value"].cast(pa.float64()).to_numpy(zero_copy_only=False)  # null -> NaN
            if "series" in got:
                s_codes[at : at + k] = series(got["series"])
            if "quality" in got:
                q = got["quality"]
                d = q if pa.types.is_dictionary(q.type) else pc.dictionary_encode(q)
                idx = pc.fill_null(d.indices, len(d.dictionary)).to_numpy(zero_copy_only=False)
                bad_q[at : at + k] = _bad_quality_lut(d.dictionary.to_pylist(), bad_set)[idx]
            at += k
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
        return None
    if at != n:
        return None
    ts = ts.view("datetime64[ns]")
    if ts_type.tz is None and m.timezone != "UTC":  # naive local times, as the pandas path localizes them
        ts = _local_to_utc(ts, m.timezone, _record_groups(s_codes, tag_codes, len(tags.lut)))
    if spec.quality_column is not None:
        v[bad_q] = np.nan
    if spec.series_column is None:
        s_names = [_series_of_file(spec, ctx.path)]
    else:
        s_names = series.names
    used = set(need.values())
    index_cols = {c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)}
    unmapped = [c for c in names if c not in used and c not in index_cols and not _is_unnamed(c)]
    table = LongTable(ts, tag_codes, tags.names, s_codes, s_names, v, np.zeros(n, dtype=bool), bad_q)
    return Records(str(ctx.path), n, table, unmapped)


def _read_long_csv_arrow(ctx: _Ctx) -> Records | None:
    """A long CSV by Arrow, block by block (the wide reader's machinery): values parsed as floats, text
    columns as codes. None when the pandas path must read it (see ARROW_FAST_PATH), or when a column is
    missing (the pandas path names it)."""
    spec, m = ctx.spec, ctx.m
    text_cols = {spec.timestamp_column, spec.tag_column, spec.quality_column, spec.series_column} - {None}
    if spec.value_column in text_cols:
        return None
    fast = _arrow_read_wide(ctx, keep_text=text_cols, wanted={spec.value_column})
    if fast is None or any(c not in fast.columns for c in (*text_cols, spec.value_column)):
        return None
    n = fast.n
    tag_codes, tag_names = _arrow_codes(fast.text[spec.tag_column])
    if spec.series_column is None:
        s_codes, s_names = np.zeros(n, dtype=np.int32), [_series_of_file(spec, ctx.path)]
    else:
        s_codes, s_names = _arrow_codes(fast.text[spec.series_column], spec.series_prefix)
    groups = _record_groups(s_codes, tag_codes, len(tag_names)) if m.timezone != "UTC" else None
    ts_col = fast.text[spec.timestamp_column]
    ts = _typed_times(ctx, ts_col, groups)
    if ts is None:
        ts = _timestamps(ctx, _arrow_strings(ts_col), groups)
    j = fast.numeric.index(spec.value_column)
    v, non_numeric = fast.values[j], fast.non_numeric[j]
    bad_q = np.zeros(n, dtype=bool)
    if spec.quality_column is not None:
        q_codes, q_names = _arrow_codes(fast.text[spec.quality_column])  # an empty cell is "" (as pandas reads it)
        bad_set = {_norm_quality(b) for b in spec.bad_quality}
        bad_q = np.array([_norm_quality(q) in bad_set for q in q_names], dtype=bool)[q_codes] if q_names else bad_q
        v = np.where(bad_q, np.nan, v)
        non_numeric = non_numeric & ~bad_q
    used = {spec.timestamp_column, spec.tag_column, spec.value_column, spec.quality_column, spec.series_column}
    unmapped = [c for c in fast.columns if c not in used]
    return Records(str(ctx.path), n, LongTable(ts, tag_codes, tag_names, s_codes, s_names, v, non_numeric, bad_q), unmapped)


def read_long(m: PlantManifest, spec: FileSpec, path: Path, key: str = "files[?]") -> Records:
    """One record per line: (timestamp, tag, value[, quality][, series])."""
    ctx = _Ctx(m, spec, key, path)
    if spec.format == "long_csv":
        fast = _read_long_csv_arrow(ctx)
        if fast is not None:
            return fast
    if spec.format == "long_parquet":
        fast = _read_long_parquet_arrow(ctx)
        if fast is not None:
            return fast
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for a file that is not Parquet
            raise ctx.error(f"cannot be read as Parquet: {e}", "format") from None
        df.columns = [str(c) for c in df.columns]
    else:
        df = _read_csv(ctx)
    n = len(df)
    tag_codes, tag_names = _text_codes(_column(ctx, df, spec.tag_column, "tag_column", "tag"))
    ts_raw = _column(ctx, df, spec.timestamp_column, "timestamp_column", "timestamp")
    if spec.series_column is None:
        s_codes, s_names = np.zeros(n, dtype=np.int32), [_series_of_file(spec, path)]
    else:
        s_codes, s_names = _text_codes(_column(ctx, df, spec.series_column, "series_column", "series"), spec.series_prefix)
    groups = _record_groups(s_codes, tag_codes, len(tag_names)) if m.timezone != "UTC" else None
    ts = _timestamps(ctx, ts_raw, groups)
    vcol = _column(ctx, df, spec.value_column, "value_column", "value")
    if pd.api.types.is_numeric_dtype(vcol) and not pd.api.types.is_bool_dtype(vcol):
        v = vcol.to_numpy(dtype=float, na_value=np.nan)
        non_numeric = np.zeros(n, dtype=bool)
    else:
        v, non_numeric = _text_numbers(vcol, spec.decimal)
    bad_q = np.zeros(n, dtype=bool)
    if spec.quality_column is not None:
        q = _column(ctx, df, spec.quality_column, "quality_column", "quality")
        bad_set = {_norm_quality(b) for b in spec.bad_quality}
        q_codes, q_uniques = pd.factorize(q, sort=False, use_na_sentinel=True)
        bad_q = _bad_quality_lut(q_uniques, bad_set)[np.where(q_codes < 0, len(q_uniques), q_codes)]
        v = np.where(bad_q, np.nan, v)
        non_numeric = non_numeric & ~bad_q
        del q
    used = {spec.timestamp_column, spec.tag_column, spec.value_column, spec.quality_column, spec.series_column}
    unmapped = [c for c in df.columns if c not in used and not _is_unnamed(c)]
    table = LongTable(ts, tag_codes, tag_names, s_codes, s_names, np.asarray(v, dtype=float), non_numeric, bad_q)
    del df, ts_raw, vcol
    pa.default_memory_pool().release_unused()  # the Parquet/Arrow buffers behind the frame are gone
    return Records(str(path), n, table, unmapped)


READERS = {"wide_csv": read_wide_csv, "long_parquet": read_long, "long_csv": read_long}


def _key(m: PlantManifest, spec: FileSpec) -> str:
    for i, f in enumerate(m.files):
        if f is spec:
            return f"files[{i}]"
    for i, f in enumerate(m.files):
        if f == spec:
            return f"files[{i}]"
    return "files[?]"


def raw_paths(m: PlantManifest, spec: FileSpec) -> list[Path]:
    """The raw files a manifest entry names: one path, or every file matching a glob (sorted)."""
    key = _key(m, spec)
    resolved = m.resolve_file(spec)
    if _MAGIC.search(spec.path):
        base = Path(spec.root) if spec.root is not None else m.source.parent
        pattern = Path(spec.path) if Path(spec.path).is_absolute() else Path(glob.escape(str(base))) / spec.path
        found = sorted(Path(p) for p in glob.glob(str(pattern), recursive=True) if Path(p).is_file())
        if not found:
            raise ManifestError(
                f"{m.source}: key '{key}.path' pattern {spec.path!r} matched no files (looked for {resolved})"
            )
        return found
    if not resolved.is_file():
        hint = "" if spec.root is not None else " (relative paths resolve against the manifest's folder unless a data root is given)"
        raise ManifestError(f"{m.source}: raw file {spec.path!r} of key '{key}.path' not found at {resolved}{hint}")
    return [resolved]


def read_file(m: PlantManifest, spec: FileSpec, paths: list[Path] | None = None) -> list[Records]:
    """Read one file entry of a manifest; one Records per raw file it names (a glob names several).
    ``paths``: the entry's ``raw_paths`` when the caller already listed them."""
    key = _key(m, spec)
    spec.check(str(m.source), key)
    paths = raw_paths(m, spec) if paths is None else paths
    return [READERS[spec.format](m, spec, p, key) for p in paths]
