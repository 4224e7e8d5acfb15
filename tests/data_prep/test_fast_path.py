"""The Arrow fast path for wide CSV gives exactly what the pandas path gives, file by file."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import pytest
import yaml

from data_prep import readers
from data_prep.manifest import load_manifest
from data_prep.readers import read_file
from data_prep.validate import validate

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
}


def _manifest(tmp_path, case: str):
    extra, text = CASES[case]
    extra = dict(extra)
    tz = extra.pop("tz", "UTC")
    (tmp_path / "raw.csv").write_text(text, encoding="utf-8")
    tags = [{"name": n, "asset": "a", "kind": "temperature", "unit": "degC", "interval_s": 1, "limits": [0, 100], "stuck_after_s": 60} for n in ("T", "P")]
    man = {"plant_id": "t", "stage": "test", "sharing": "private", "timezone": tz,
           "files": [{"path": "raw.csv", "format": "wide_csv", **extra}], "assets": {"a": 1}, "tags": tags}
    (tmp_path / "plant.yaml").write_text(yaml.safe_dump(man), encoding="utf-8")
    return load_manifest(tmp_path / "plant.yaml")


def _read(m, fast: bool, monkeypatch):
    monkeypatch.setattr(readers, "ARROW_FAST_PATH", fast)
    (rec,) = read_file(m, m.files[0])
    v = validate(rec, m, wide=True)
    return rec, v


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_path_equals_pandas_path(tmp_path, monkeypatch, case):
    m = _manifest(tmp_path, case)
    used = {}
    real = readers._arrow_columns
    monkeypatch.setattr(readers, "_arrow_columns", lambda ctx: used.setdefault("cols", real(ctx)))
    fast_rec, fast_v = _read(m, True, monkeypatch)
    slow_rec, slow_v = _read(m, False, monkeypatch)
    assert case == "crlf_and_quotes" or used["cols"] is not None  # the fast path did read these files
    pd.testing.assert_frame_equal(fast_rec.frame, slow_rec.frame)
    assert fast_rec.n_rows == slow_rec.n_rows and fast_rec.unmapped_columns == slow_rec.unmapped_columns
    assert asdict(fast_v.report) == asdict(slow_v.report)
    pd.testing.assert_frame_equal(fast_v.records, slow_v.records)
    pd.testing.assert_frame_equal(fast_v.quarantine, slow_v.quarantine)


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
