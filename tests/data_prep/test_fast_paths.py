"""The fast paths against plain references: the Arrow reader for wide CSV against the pandas reader, and the
array validation (wide and long) against a pandas reference implementation of the same rules."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import yaml

from data_prep import readers
from data_prep.manifest import load_manifest
from data_prep.readers import read_file
from data_prep.validate import validate
from tests.data_prep.oracle import reference_validate

CASES = {
    "plain": ({}, "timestamp,T,P\n2026-01-01 00:00:00,1.5,2\n2026-01-01 00:00:01,,3\n2026-01-01 00:00:02,nan,inf\n"),
    "semicolon_decimal_comma": (
        {"delimiter": ";", "decimal": ",", "timestamp_format": "%d.%m.%Y %H:%M:%S"},
        "timestamp;T;P\n01.03.2026 00:00:00;1,5;2\n01.03.2026 00:00:01;Inp OutRange;3,25\n01.03.2026 00:00:02; 4,5;\n",
    ),
    "historian_text_and_bad_time": (
        {}, "timestamp,T,P\n2026-01-01T00:00:00,1,2\nnot a time,2,3\n2026-01-01T00:00:01,Bad Input,4\n2026-01-01T00:00:01,5,6\n"
    ),
    "offsets_fall_back_to_pandas": ({}, "timestamp,T,P\n2026-03-29T01:00:00+01:00,1,2\n2026-03-29T03:00:00+02:00,2,3\n"),
    "number_forms_beside_text": (
        {}, "timestamp,T,P\n2026-01-01 00:00,1e1,Bad\n2026-01-01 00:01,+-5,-.5\n2026-01-01 00:02,1.2.3,+7.\n2026-01-01 00:03,Inp OutRange,8\n"
    ),
    "empty_time_cells": ({}, "timestamp,T,P\n2026-01-01 00:00,1,2\n,3,4\n2026-01-01 00:02,5,6\n\"\",7,8\n"),
    "empty_time_cells_berlin": ({"tz": "Europe/Berlin"}, "timestamp,T,P\n2026-01-01 00:00,1,2\n,3,4\n2026-01-01 00:02,5,6\n"),
    "whitespace_delimited": (
        {"delimiter": "whitespace"}, "timestamp T P\n2026-01-01T00:00:00 1.5   2\n2026-01-01T00:00:01 Bad 3\n2026-01-01T00:00:02 nan -4e2\n"
    ),
    "zulu_in_berlin": ({"tz": "Europe/Berlin"}, "timestamp,T,P\n2026-01-01T00:00:00Z,1,2\n2026-01-01T00:01:00Z,2,3\n"),
    "epoch_with_text": ({"timestamp_unit": "ms"}, "timestamp,T,P\n1767225600000,1,2\nnever,3,4\n1767225602000,5,6\n"),
    "format_with_bad_cell": (
        {"timestamp_format": "%d.%m.%Y %H:%M"}, "timestamp,T,P\n01.03.2026 00:00,1,2\n31.02.2026 00:00,3,4\n 01.03.2026 00:02 ,5,6\n"
    ),
    "dst_local_times": (
        {"tz": "Europe/Berlin"},
        "timestamp,T,P\n2026-10-25 01:30,1,1\n2026-10-25 02:30,2,2\n2026-10-25 02:30,3,3\n2026-10-25 03:30,4,4\n",
    ),
    "spring_forward_gap": ({"tz": "Europe/Berlin"}, "timestamp,T,P\n2026-03-29 01:30,1,1\n2026-03-29 02:30,2,2\n2026-03-29 03:30,3,3\n"),
    "unnamed_index_and_extra": ({}, ",timestamp,T,P,note\n0,2026-01-01 00:00,1,2,x\n1,2026-01-01 00:01,1,2,y\n"),
    "series_column": (
        {"series_column": "unit"},
        "unit,timestamp,T,P\nA,2026-01-01 00:00,1,2\nA,2026-01-01 00:01,1,2\nB,2026-01-01 00:00,5,6\nB,2026-01-01 00:00,7,8\n",
    ),
    "epoch_seconds": ({"timestamp_unit": "s"}, "timestamp,T,P\n1767225600,1,2\n1767225601,3,4\n"),
    "out_of_order": ({}, "timestamp,T,P\n2026-01-01 00:00:02,1,2\n2026-01-01 00:00:00,3,4\n2026-01-01 00:00:01,5,6\n"),
    "stuck_and_limits": (
        {}, "timestamp,T,P\n" + "".join(f"2026-01-01 00:{i // 60:02d}:{i % 60:02d},{7 if i < 90 else i},{-5 if i == 3 else 1}\n" for i in range(120))
    ),
    "crlf_and_quotes": ({}, 'timestamp,"T",P\r\n"2026-01-01 00:00:00","1.5",2\r\n"2026-01-01 00:00:01","",3\r\n'),
    # the first 256 KB block holds long rows (a wide unmapped note), the rest short ones: the value arrays sized
    # from the first block's density overflow and grow while the file is read
    "dense_tail_grows_arrays": (
        {},
        "timestamp,T,P,note\n" + "".join(
            f"2026-01-01 {i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d},{i % 50},{'x' if i % 5000 == 7 else i % 40},"
            + ("n" * 400 if i < 700 else "") + "\n"
            for i in range(60_000)
        ),
    ),
    # several of Arrow's 256 KB blocks, historian text in both columns in every block (the text cells of all
    # blocks are converted in one call at the end), a decimal comma and a time format
    "many_blocks_text_everywhere": (
        {"delimiter": ";", "decimal": ",", "timestamp_format": "%d.%m.%Y %H:%M:%S"},
        "timestamp;T;P\n" + "".join(
            f"{1 + i // 86400:02d}.03.2026 {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d};"
            f"{'Inp OutRange' if i % 997 == 5 else f'{i % 90},{i % 7}'};{'Bad' if i % 1301 == 9 else ' 1,5 ' if i % 11 == 0 else i % 100}\n"
            for i in range(40_000)
        ),
    ),
    # found by review: a format with a literal "%Z" (the pandas rules read it as zone-aware, so the
    # fixed-width reader must not take it), a series column that is the time column (its text is needed),
    # and infinity spelled with separator characters around it (pandas strips them: a number, not text)
    "literal_percent_z_format": (
        {"timestamp_format": "%Y-%m-%d %H:%M %%Z", "tz": "Europe/Berlin"},
        "timestamp,T,P\n2026-01-01 00:00 %Z,1,2\n2026-01-01 00:01 %Z,3,4\n",
    ),
    "series_column_is_the_time_column": (
        {"timestamp_format": "%d.%m.%Y %H:%M", "series_column": "timestamp"},
        "timestamp,T,P\n01.01.2026 00:00,1,2\n01.01.2026 00:01,3,4\n",
    ),
    "separator_chars_around_inf": (
        {}, "timestamp,T,P\n2026-01-01 00:00:00,1,2\n2026-01-01 00:00:01,\x1finf,3\n2026-01-01 00:00:02,Bad,\x1c-Infinity\n"
            "2026-01-01 00:00:03,\x1dINF,Bad\n",
    ),
    # times parsed block by block in a fixed-width format: a padded cell in an early block (parsed after
    # trimming) and a day that does not exist in a late block (the column's text is read again and the
    # general parsers decide, with NaT for that row)
    "late_bad_time_after_blocks": (
        {"timestamp_format": "%d.%m.%Y %H:%M:%S", "tz": "Europe/Berlin"},
        "timestamp,T,P\n" + "".join(
            f"{' ' if i == 100 else ''}{1 + i // 86400:02d}.03.2026 {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}"
            f"{' ' if i == 100 else ''},{i % 90},{i % 7}\n" if i != 39_000 else "31.02.2026 00:00:00,1,2\n"
            for i in range(40_000)
        ),
    ),
}


def _write_plant(tmp_path, fmt: str, extra: dict, data: str | pd.DataFrame, stuck_after_s: float):
    """A one-file plant with tags T and P (limits 0..100); ``extra`` holds the file entry's keys and "tz".
    ``data``: the text of a CSV file, or a frame written as Parquet (its ``index`` kept when named)."""
    extra = dict(extra)
    tz = extra.pop("tz", "UTC")
    if isinstance(data, str):
        name = "raw.csv"
        (tmp_path / name).write_text(data, encoding="utf-8")
    else:
        name = "raw.parquet"
        data.to_parquet(tmp_path / name, index=data.index.name is not None, row_group_size=3)
    tags = [{"name": n, "asset": "a", "kind": "temperature", "unit": "degC", "interval_s": 1, "limits": [0, 100],
             "stuck_after_s": stuck_after_s} for n in ("T", "P")]
    man = {"plant_id": "t", "stage": "test", "sharing": "private", "timezone": tz,
           "files": [{"path": name, "format": fmt, **extra}], "assets": {"a": 1}, "tags": tags}
    (tmp_path / "plant.yaml").write_text(yaml.safe_dump(man), encoding="utf-8")
    return load_manifest(tmp_path / "plant.yaml")


def _manifest(tmp_path, case: str):
    return _write_plant(tmp_path, "wide_csv", *CASES[case], stuck_after_s=60)


def _read(m, fast: bool, monkeypatch):
    monkeypatch.setattr(readers, "ARROW_FAST_PATH", fast)
    (rec,) = read_file(m, m.files[0])
    v = validate(rec, m, wide=True)
    return rec, v


def _both_ways(m, monkeypatch, arrow_reader: str):
    """Read and validate with the fast path on, then off; also which of the two calls of ``arrow_reader``
    (a readers function returning None when it hands the file to pandas) read the file."""
    calls = []
    real = getattr(readers, arrow_reader)

    def spy(*args, **kwargs):
        got = real(*args, **kwargs)
        calls.append(got is not None)
        return got

    monkeypatch.setattr(readers, arrow_reader, spy)
    return _read(m, True, monkeypatch), _read(m, False, monkeypatch), calls


def _assert_same(fast, slow, sort_records_by: list[str] | None = None) -> None:
    (fast_rec, fast_v), (slow_rec, slow_v) = fast, slow
    pd.testing.assert_frame_equal(fast_rec.frame, slow_rec.frame)
    assert fast_rec.n_rows == slow_rec.n_rows and fast_rec.unmapped_columns == slow_rec.unmapped_columns
    assert asdict(fast_v.report) == asdict(slow_v.report)
    a, b = fast_v.records, slow_v.records
    if sort_records_by:
        a, b = (r.sort_values(sort_records_by).reset_index(drop=True) for r in (a, b))
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(fast_v.quarantine, slow_v.quarantine)


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_path_equals_pandas_path(tmp_path, monkeypatch, case):
    fast, slow, calls = _both_ways(_manifest(tmp_path, case), monkeypatch, "_arrow_read_wide")
    # Arrow read the file the first time, pandas the second (whitespace: pandas splits it both times, and
    # only the numbers go through Arrow's kernels the first time)
    assert calls == ([False, False] if case == "whitespace_delimited" else [True, False])
    _assert_same(fast, slow)


def test_value_arrays_grow_past_the_first_estimate(tmp_path, monkeypatch):
    """The dense tail of "dense_tail_grows_arrays" overflows the arrays sized from its first block: they grow
    (and the parametrized test above requires the same records as the pandas path)."""
    grown = []
    real = readers._grown
    monkeypatch.setattr(readers, "_grown", lambda a, n, cap: grown.append(n) or real(a, n, cap))
    rec, _ = _read(_manifest(tmp_path, "dense_tail_grows_arrays"), True, monkeypatch)
    assert rec.n_rows == 60_000 and any(n > 0 for n in grown)


def test_fast_path_rules_are_counted(tmp_path, monkeypatch):
    """A fixed expectation for one case, so both paths cannot be wrong in the same way."""
    _, v = _read(_manifest(tmp_path, "historian_text_and_bad_time"), True, monkeypatch)
    r = v.report
    assert (r.rows, r.kept, r.repaired, r.quarantined) == (4, 1, 1, 2)
    assert r.quarantine_reasons == {"bad_timestamp": 1, "duplicate_timestamp": 1}
    assert r.repaired_cells == {"non_numeric": 1}
    _, v = _read(_manifest(tmp_path, "stuck_and_limits"), True, monkeypatch)
    # T: 101..119 above the limit; P: -5 below it. Stuck: T's first 90 sevens (89 s), and P's 119 ones
    # (the masked -5 between them is no value, so the run goes on across it).
    assert v.report.repaired_cells == {"out_of_limits": 19 + 1, "stuck": 90 + 119}


# ------------------------------------------------------------------ fixed-width times against pandas

FIXED_FORMATS = ["%d.%m.%Y %H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y", "%Y%m%d%H%M%S", "%d.%m.%Y %H:%M:%S %%", "%H:%M %d-%m-%Y"]


@pytest.mark.parametrize("fmt", FIXED_FORMATS)
def test_fixed_width_times_equal_pandas(fmt):
    """Random instants over the whole datetime64[ns] range (leap days, month ends, empty cells) read from
    their bytes equal pandas' ``to_datetime(format=...)`` of the same text."""
    import pyarrow as pa

    rng = np.random.default_rng(len(fmt))
    lo, hi = pd.Timestamp("1678-01-01").value // 10**9, pd.Timestamp("2261-12-31").value // 10**9
    seconds = np.concatenate([rng.integers(lo, hi, 4000), [pd.Timestamp(x).value // 10**9 for x in
                              ("2024-02-29 23:59:59", "2000-02-29", "2026-12-31 23:59:59", "1970-01-01", "2100-02-28")]])
    if "%S" not in fmt:
        seconds -= seconds % (60 if "%M" in fmt else 86400)
    text = [t.strftime(fmt) for t in pd.to_datetime(seconds, unit="s")]
    text[7] = text[123] = None  # empty cells
    got = readers._fixed_width_times(pa.chunked_array([text[:2000], text[2000:]], type=pa.string()), fmt)
    want = pd.to_datetime(pd.Series(text, dtype=object), format=fmt).to_numpy(dtype="datetime64[ns]")
    assert got is not None and np.array_equal(got, want, equal_nan=True)
    assert np.isnat(got).sum() == 2


@pytest.mark.parametrize("cells", [
    ["01.03.2026 00:00:00", "31.02.2026 00:00:00"],  # no such day: pandas says NaT, Arrow's strptime says 3 March
    ["01.03.2026 00:00:00", "1.03.2026 00:00:00"],  # another width (pandas reads it; the general parsers decide)
    ["29.02.2025 12:00:00"],  # not a leap year
    ["01.03.2026 24:00:00"], ["01.03.2026 00:60:00"], ["01.03.2026 00:00:60"], ["00.03.2026 00:00:00"], ["01.13.2026 00:00:00"],
    ["01.03.2026T00:00:00"], ["01.03.2026 00:0a:00"], ["01.03.1677 00:00:00"], ["01.03.2262 00:00:00"],
])
def test_fixed_width_times_leave_what_does_not_fit_to_the_general_parsers(cells):
    import pyarrow as pa

    assert readers._fixed_width_times(pa.chunked_array([cells], type=pa.string()), "%d.%m.%Y %H:%M:%S") is None


@pytest.mark.parametrize("fmt", ["%d.%m.%y", "%d %b %Y", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S%z", "%Y-%m", "%d.%m.%Y %I:%M %p", "%d.%m.%Y ä"])
def test_fixed_width_layout_only_for_fixed_fields(fmt):
    assert readers._fixed_layout(fmt) is None


def test_fixed_width_path_reads_the_kiln_times(tmp_path, monkeypatch):
    """The ``many_blocks_text_everywhere`` file (40,000 rows, ``%d.%m.%Y %H:%M:%S``) goes through the
    fixed-width reader, not Arrow's strptime (and ``test_fast_path_equals_pandas_path`` finds the same
    records as the pandas path)."""
    used = []
    real = readers._fixed_width_times
    monkeypatch.setattr(readers, "_fixed_width_times", lambda s, fmt: used.append(real(s, fmt) is not None) or real(s, fmt))
    monkeypatch.setattr(readers, "_strptime_checked", lambda *a: pytest.fail("strptime used"))
    rec, _ = _read(_manifest(tmp_path, "many_blocks_text_everywhere"), True, monkeypatch)
    assert len(used) >= 3 and all(used) and rec.n_rows == 40_000 and not np.isnat(rec.wide.ts).any()  # one call per block


def test_a_late_block_that_does_not_fit_sends_the_whole_time_column_to_the_general_parsers(tmp_path, monkeypatch):
    """In "late_bad_time_after_blocks" the blocks before 31.02. are parsed by the fixed-width reader; at
    that block the column's text is read again and Arrow's checked strptime says no (the day does not
    exist), so the pandas rules read it: one NaT, every other row at its time."""
    reread, general = [], []
    real_read, real_times = readers.pacsv.read_csv, readers._timestamps
    monkeypatch.setattr(readers.pacsv, "read_csv", lambda *a, **k: reread.append(k["convert_options"].include_columns) or real_read(*a, **k))
    monkeypatch.setattr(readers, "_timestamps", lambda *a, **k: general.append(1) or real_times(*a, **k))
    rec, _ = _read(_manifest(tmp_path, "late_bad_time_after_blocks"), True, monkeypatch)
    assert reread == [["c0"]] and general == [1]
    nat = np.flatnonzero(np.isnat(rec.wide.ts))
    assert nat.tolist() == [39_000] and rec.n_rows == 40_000


def test_historian_strings_are_remembered_per_column(tmp_path, monkeypatch):
    """Once a column's first blocks met "Inp OutRange" and "Bad", a later block whose only text is those
    strings is converted in one cast with them set aside; the records equal the pandas path's
    (``test_fast_path_equals_pandas_path`` on the same file)."""
    seen = []
    real = readers._arrow_numeric

    def spy(col, decimal, deferred=None, tokens=None):
        before = None if tokens is None else set(tokens)
        got = real(col, decimal, deferred, tokens)
        seen.append((before, deferred))
        return got

    cell_by_cell = []  # the route for blocks with text: its plain-number test runs once per such block
    real_decimal = readers.pc.ascii_is_decimal
    monkeypatch.setattr(readers.pc, "ascii_is_decimal", lambda *a, **k: cell_by_cell.append(1) or real_decimal(*a, **k))
    monkeypatch.setattr(readers, "_arrow_numeric", spy)
    rec, v = _read(_manifest(tmp_path, "many_blocks_text_everywhere"), True, monkeypatch)
    # T holds only "Inp OutRange" as text: after its first block, no cell is left to the pandas rules
    quick = [deferred == [] for before, deferred in seen if before == {"Inp OutRange"}]
    assert len(quick) >= 4 and all(quick)
    # ... and no block goes cell by cell: T once (its first block), P in every block (padded " 1,5 ")
    blocks = len(seen) // 2
    assert len(cell_by_cell) == blocks + 1
    assert rec.wide.non_numeric[rec.wide.tags.index("T")].sum() == sum(1 for i in range(40_000) if i % 997 == 5)


@pytest.mark.parametrize("cell,token", [
    ("Inp OutRange", True), ("Bad", True), (" Comm Fail ", True), ("inf", False), ("-Infinity", False), ("nan", False),
    (" NaN ", False), ("12a", False), ("1,5", False), ("", False), ("  ", False), ("#N/A", True), ("\x1finf", False),
    ("\x1c-Infinity ", False),
])
def test_only_text_without_digits_or_float_spellings_is_remembered(cell, token):
    assert readers._is_token(cell) is token


# ------------------------------------------------------------------ array rules against the reference

LONG_CASES = {
    "duplicates_unknown_quality": (
        {"quality_column": "q", "bad_quality": ["bad", 0]},
        "timestamp,tag,value,q\n2026-01-01 00:00:00,T,1,good\n2026-01-01 00:00:00,T,2,good\n2026-01-01 00:00:01,X,3,good\n"
        "2026-01-01 00:00:02,T,4,bad\n,P,5,good\n2026-01-01 00:00:03,P,Inp OutRange,good\n2026-01-01 00:00:04,P,500,0\n"
        "2026-01-01 00:00:05, T ,6,\n",
    ),
    "interleaved_out_of_order_and_stuck": (
        {"series_column": "unit"},
        "unit,timestamp,tag,value\n" + "".join(f"u{i % 2},2026-01-01 00:{(i * 7) % 60:02d}:00,{'TP'[i % 3 == 0]},{3 if i < 50 else i % 90}\n" for i in range(120)),
    ),
}


LONG_CASES.update({
    "semicolon_decimal_comma_berlin": (
        {"delimiter": ";", "decimal": ",", "tz": "Europe/Berlin"},
        "timestamp;tag;value\n2026-10-25 01:30;T;1,5\n2026-10-25 01:30;P;2\n2026-10-25 02:30;T;3,25\n2026-10-25 02:30;P;Bad\n"
        "2026-10-25 02:30;T;4\n2026-10-25 02:30;P;5\n2026-10-25 03:30;T; 6,5 \n2026-10-25 03:30;P;\n",
    ),
    "epoch_ms_with_empty_quality": (
        {"timestamp_unit": "ms", "quality_column": "q", "bad_quality": ["BAD"]},
        "timestamp,tag,value,q\n1767225600000,T,1,\n1767225600000,P,2,bad \n1767225660000,T,3,GOOD\n,P,4,\n",
    ),
})


def _long_manifest(tmp_path, case: str):
    return _write_plant(tmp_path, "long_csv", *LONG_CASES[case], stuck_after_s=600)


def _same_as_reference(m) -> None:
    for spec in m.files:
        for rec in read_file(m, spec):
            wide = spec.format == "wide_csv"
            v = validate(rec, m, wide=wide)
            report, good, q = reference_validate(rec.frame, rec.n_rows, m, wide)
            assert {k: getattr(v.report, k) for k in report} == report
            key = ["series", "tag", "row"]
            got = v.records.sort_values(key).reset_index(drop=True)
            pd.testing.assert_frame_equal(got[good.columns], good.sort_values(key).reset_index(drop=True), check_dtype=False)
            assert v.quarantine["row"].tolist() == q["row"].tolist() and v.quarantine["reason"].tolist() == q["reason"].tolist()


@pytest.mark.parametrize("case", sorted(CASES))
def test_wide_rules_equal_reference(tmp_path, case):
    _same_as_reference(_manifest(tmp_path, case))


@pytest.mark.parametrize("case", sorted(LONG_CASES))
def test_long_rules_equal_reference(tmp_path, case):
    _same_as_reference(_long_manifest(tmp_path, case))


def test_long_rules_are_counted(tmp_path):
    m = _long_manifest(tmp_path, "duplicates_unknown_quality")
    (rec,) = read_file(m, m.files[0])
    r = validate(rec, m).report
    # kept: the first T and " T " (names are stripped); repaired: bad quality twice (500 with q=0 is masked
    # as bad quality, not judged against the limit), one historian string
    assert (r.rows, r.kept, r.repaired, r.quarantined) == (8, 2, 3, 3)
    assert r.quarantine_reasons == {"bad_timestamp": 1, "duplicate_record": 1, "unknown_tag": 1}
    assert r.repaired_cells == {"bad_quality": 2, "non_numeric": 1}


def test_sim_plants_equal_reference(tmp_path):
    from data_prep.sim.plants import make_plants

    for mp in make_plants(tmp_path, seed=3, days=6):
        _same_as_reference(load_manifest(mp))


@pytest.mark.parametrize("case", sorted(LONG_CASES))
def test_long_csv_fast_path_equals_pandas_path(tmp_path, monkeypatch, case):
    fast, slow, calls = _both_ways(_long_manifest(tmp_path, case), monkeypatch, "_read_long_csv_arrow")
    assert calls == [True, False]  # Arrow read the file the first time, pandas the second
    _assert_same(fast, slow, sort_records_by=["series", "tag", "row"])


# ------------------------------------------------------------------ scaling statistics: one sort against np.percentile


def test_sorted_quartiles_equal_numpy_percentile_bit_for_bit():
    from data_prep.tokenizer import _quartiles_sorted

    rng = np.random.default_rng(0)
    for _ in range(500):
        c, n = int(rng.integers(1, 6)), int(rng.integers(1, 60))
        x = rng.normal(size=(c, n)) * rng.choice([1.0, 1e-9, 1e6])
        if rng.random() < 0.3:
            x = np.round(x, 1)  # ties
        observed = rng.random((c, n)) < rng.random()
        x = np.where(observed, x, np.nan)
        got = _quartiles_sorted(x, observed)
        for i in range(c):
            if not observed[i].any():
                assert got[i] is None
            else:
                assert np.array_equal(got[i], np.percentile(x[i, observed[i]], [25, 50, 75]))


def test_scale_stats_same_on_both_sides_of_the_sort_threshold(monkeypatch):
    from data_prep import tokenizer

    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 300))
    x[1] = 5.0  # constant: the standard-deviation fallback, then 1.0
    observed = rng.random(x.shape) < 0.8
    observed[2] = False
    x = np.where(observed, x, np.nan)
    spec = tokenizer.TokenizerSpec()
    short = spec.scale_stats(x, observed)
    monkeypatch.setattr(tokenizer, "_SORT_ROWS_BELOW", 0)
    long = spec.scale_stats(x, observed)
    assert all(np.array_equal(a, b) for a, b in zip(short, long, strict=True))
    assert long[1][1] == 1.0 and long[0][2] == 0.0 and long[1][2] == 1.0


# ------------------------------------------------------------------ long Parquet: Arrow batches against pandas


def _parquet_cases() -> dict:
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    utc = [t0 + pd.Timedelta(seconds=s) for s in (0, 0, 1, 2, 3, 5, 4, 6)]
    berlin = pd.to_datetime(["2026-10-25 01:30", "2026-10-25 02:30", "2026-10-25 02:30", "2026-10-25 03:30"] * 2)
    return {
        # name: (file entry keys, frame, does Arrow read it)
        "aware_quality_padding_nulls": ({"quality_column": "q", "bad_quality": ["bad", 0]}, pd.DataFrame({
            "timestamp": utc, "tag": ["T", "T", " T ", None, "P", "X", "P", "P"],
            "value": [1.0, 2.0, np.nan, 4.0, np.inf, 6.0, 500.0, 7.0], "q": ["good", "good", None, "bad", "good", "good", "0", "good"],
        }), True),
        "naive_berlin_int_values": ({"tz": "Europe/Berlin"}, pd.DataFrame({
            "timestamp": berlin, "tag": ["T"] * 4 + ["P"] * 4, "value": np.array([1, 2, 3, 4, 5, 5, 5, 200], dtype=np.int64),
        }), True),
        "series_int_quality_out_of_order": ({"series_column": "unit", "quality_column": "q", "bad_quality": [192]}, pd.DataFrame({
            "unit": ["u1", "u2", "u1", "u1", "u2", " u2", "u1", None], "timestamp": utc[::-1], "tag": ["T", "P"] * 4,
            "value": [3.0, 3.0, 3.0, 3.0, 9.0, 8.0, -1.0, 4.0], "q": [0, 192, 0, 0, 0, 192, 0, 0],
        }), True),
        "index_and_extra_columns": ({}, pd.DataFrame({
            "timestamp": utc, "tag": ["T", "P"] * 4, "value": np.arange(8.0), "note": list("abcdefgh"),
        }, index=pd.Index(range(10, 18), name="idx")), True),
        "missing_times": ({}, pd.DataFrame({
            "timestamp": [utc[0], pd.NaT, utc[2], utc[3]], "tag": ["T", "T", "P", "P"], "value": [1.0, 2.0, 3.0, 4.0],
        }), True),
        "epoch_seconds_to_pandas": ({"timestamp_unit": "s"}, pd.DataFrame({
            "timestamp": [1767225600.0, 1767225601.0, 1767225602.0], "tag": ["T", "P", "T"], "value": [1.0, 2.0, 3.0],
        }), False),
        "text_values_to_pandas": ({}, pd.DataFrame({
            "timestamp": utc[:3], "tag": ["T", "P", "T"], "value": ["1,5", "Inp OutRange", "3"],
        }), False),
    }


PARQUET_CASES = _parquet_cases()


@pytest.mark.parametrize("case", sorted(PARQUET_CASES))
def test_long_parquet_fast_path_equals_pandas_path(tmp_path, monkeypatch, case):
    extra, frame, arrow_reads = PARQUET_CASES[case]
    m = _write_plant(tmp_path, "long_parquet", extra, frame, stuck_after_s=600)
    fast, slow, calls = _both_ways(m, monkeypatch, "_read_long_parquet_arrow")
    assert calls == [arrow_reads, False]
    _assert_same(fast, slow, sort_records_by=["series", "tag", "row"])


def test_long_parquet_fast_path_counts(tmp_path, monkeypatch):
    """A fixed expectation for the Arrow-read Parquet file, so both paths cannot be wrong in the same way."""
    extra, frame, _ = PARQUET_CASES["aware_quality_padding_nulls"]
    _, v = _read(_write_plant(tmp_path, "long_parquet", extra, frame, stuck_after_s=600), True, monkeypatch)
    r = v.report
    # rows: T@0 kept, T@0 again (duplicate), " T "@1 empty (kept, missing), null tag (unknown), P inf (out of
    # limits), X (unknown tag), P 500 with quality "0" (bad quality), P@6 kept
    assert (r.rows, r.kept, r.repaired, r.quarantined) == (8, 3, 2, 3)
    assert r.quarantine_reasons == {"duplicate_record": 1, "unknown_tag": 2}
    assert r.repaired_cells == {"bad_quality": 1, "out_of_limits": 1}
    assert r.missing_cells == 1


# ------------------------------------------------------------------ stuck runs: the run finder against a plain one


def _stuck_runs_plain(t_ns: np.ndarray, v: np.ndarray, after: float) -> np.ndarray:
    """Every run of identical values, its duration from its ends (the definition, one run at a time)."""
    out = np.zeros(len(v), dtype=bool)
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[j + 1] == v[i]:
            j += 1
        out[i : j + 1] = t_ns[j] / 1e9 - t_ns[i] / 1e9 >= after
        i = j + 1
    return out


def test_stuck_runs_equal_the_plain_definition():
    from data_prep.validate import _stuck_runs

    rng = np.random.default_rng(7)
    for _ in range(400):
        n = int(rng.integers(0, 80))
        v = rng.choice([1.0, 2.0, 3.0], size=n) if rng.random() < 0.7 else rng.normal(size=n)
        t = np.cumsum(rng.integers(0, 3, size=n) * 500_000_000).astype(np.int64) + 1_767_225_600 * 10**9  # ties and half seconds
        for after in (0.0, 0.5, 1.0, 2.5, 60.0):
            assert np.array_equal(_stuck_runs(t, v, after), _stuck_runs_plain(t, v, after)), (n, after)
