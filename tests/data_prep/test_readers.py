"""Readers on small hand-written files: every export quirk the manifest can describe, with exact values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from data_prep.manifest import ManifestError, load_manifest
from data_prep.readers import FRAME_COLUMNS, read_file
from data_prep.validate import validate

UTC = "UTC"


def _plant(tmp_path: Path, file: dict, tags=("T",), timezone="UTC", data_root=None, labels=None):
    man = {
        "plant_id": "t",
        "stage": "test",
        "sharing": "private",
        "timezone": timezone,
        "files": [file],
        "assets": {"a": 1},
        "tags": [{"name": n, "asset": "a", "kind": "temperature", "unit": "degC", "interval_s": 1} for n in tags],
    }
    if labels:
        man["labels"] = labels
    p = tmp_path / "plant.yaml"
    p.write_text(yaml.safe_dump(man, allow_unicode=True), encoding="utf-8")
    return load_manifest(p, data_root=data_root)


def _read_one(m):
    recs = read_file(m, m.files[0])
    assert len(recs) == 1
    return recs[0]


def _ts(*iso: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(s, tz=UTC) if s is not None else pd.NaT for s in iso]


def _tag(rec, tag: str) -> pd.DataFrame:
    return rec.frame[rec.frame["tag"] == tag].sort_values("row").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- encodings


def test_utf8_bom_is_dropped(tmp_path):
    (tmp_path / "raw.csv").write_bytes(b"\xef\xbb\xbftimestamp,T\n2026-01-01 00:00:00,1.5\n2026-01-01 00:00:01,2\n")
    rec = _read_one(_plant(tmp_path, {"path": "raw.csv", "format": "wide_csv"}))
    assert list(rec.frame.columns) == list(FRAME_COLUMNS)
    assert str(rec.frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert rec.n_rows == 2 and rec.unmapped_columns == []
    assert rec.frame["value"].tolist() == [1.5, 2.0]
    assert rec.frame["timestamp"].tolist() == _ts("2026-01-01 00:00:00", "2026-01-01 00:00:01")
    assert not rec.frame["bad_quality"].any() and (rec.frame["series"] == "").all()


def test_latin1_header_falls_back_and_explicit_encoding_errors(tmp_path):
    text = "Zeit;Temp °C;Druck µbar\n01.03.2026 00:00;20,5;1\n01.03.2026 00:01;21,0;2\n"
    (tmp_path / "raw.csv").write_bytes(text.encode("latin-1"))
    spec = {"path": "raw.csv", "format": "wide_csv", "delimiter": ";", "decimal": ",", "timestamp_column": "Zeit",
            "timestamp_format": "%d.%m.%Y %H:%M"}
    rec = _read_one(_plant(tmp_path, spec, tags=("Temp °C",)))
    assert rec.frame["tag"].unique().tolist() == ["Temp °C"]
    assert rec.frame["value"].tolist() == [20.5, 21.0]
    assert rec.unmapped_columns == ["Druck µbar"]
    m = _plant(tmp_path, {**spec, "encoding": "utf-8"}, tags=("Temp °C",))
    with pytest.raises(ManifestError) as e:
        read_file(m, m.files[0])
    msg = str(e.value)
    assert str(tmp_path / "raw.csv") in msg and "'files[0].encoding'" in msg and "utf-8" in msg


# ---------------------------------------------------------------------------------------------- layout


def test_whitespace_delimiter_and_tab(tmp_path):
    (tmp_path / "raw.txt").write_text("timestamp   T\tP  \n2026-01-01T00:00:00Z  1.0   2.0 \n2026-01-01T00:00:01Z\t3.0 \t 4.0\n")
    rec = _read_one(_plant(tmp_path, {"path": "raw.txt", "format": "wide_csv", "delimiter": "whitespace"}, tags=("T", "P")))
    assert _tag(rec, "T")["value"].tolist() == [1.0, 3.0]
    assert _tag(rec, "P")["value"].tolist() == [2.0, 4.0]
    assert _tag(rec, "P")["timestamp"].tolist() == _ts("2026-01-01 00:00:00", "2026-01-01 00:00:01")
    (tmp_path / "raw.tsv").write_text("timestamp\tT\n2026-01-01 00:00:00\t5\n")
    rec = _read_one(_plant(tmp_path, {"path": "raw.tsv", "format": "wide_csv", "delimiter": "\t"}))
    assert rec.frame["value"].tolist() == [5.0]


def test_no_header_with_columns(tmp_path):
    # C-MAPSS style: space-separated, trailing blanks, no header line.
    (tmp_path / "train.txt").write_text("1 1 518.67 0.03  \n1 2 518.70 0.03  \n2 1 519.00 x  \n")
    spec = {"path": "train.txt", "format": "wide_csv", "delimiter": "whitespace", "header": False,
            "columns": ["unit", "cycle", "T2", "farB"], "timestamp_column": None, "row_interval_s": 60}
    rec = _read_one(_plant(tmp_path, spec, tags=("T2", "farB")))
    assert rec.n_rows == 3
    assert rec.unmapped_columns == ["unit", "cycle"]
    assert _tag(rec, "T2")["value"].tolist() == [518.67, 518.70, 519.00]
    farb = _tag(rec, "farB")
    assert farb["non_numeric"].tolist() == [False, False, True] and np.isnan(farb["value"][2])
    m = _plant(tmp_path, {**spec, "columns": ["unit", "cycle", "T2"]}, tags=("T2",))
    with pytest.raises(ManifestError) as e:
        read_file(m, m.files[0])
    assert str(tmp_path / "train.txt") in str(e.value) and "'files[0].columns'" in str(e.value)
    assert "4 fields" in str(e.value) and "3 column names" in str(e.value)


def test_unnamed_index_columns_are_ignored(tmp_path):
    # pandas.to_csv writes an index column with an empty header; a trailing delimiter adds another.
    (tmp_path / "raw.csv").write_text(",timestamp,T,EXTRA,\n0,2026-01-01 00:00:00,1,a,\n1,2026-01-01 00:00:01,2,b,\n")
    rec = _read_one(_plant(tmp_path, {"path": "raw.csv", "format": "wide_csv"}))
    assert rec.unmapped_columns == ["EXTRA"]
    assert rec.frame["value"].tolist() == [1.0, 2.0]


# ---------------------------------------------------------------------------------------------- time


def test_row_index_time(tmp_path):
    (tmp_path / "raw.csv").write_text(",T\n0,1\n1,2\n2,3\n")
    rec = _read_one(_plant(tmp_path, {"path": "raw.csv", "format": "wide_csv", "timestamp_column": None, "row_interval_s": 0.1}))
    assert rec.frame["timestamp"].tolist() == _ts("2000-01-01 00:00:00", "2000-01-01 00:00:00.1", "2000-01-01 00:00:00.2")
    # A naive origin is a local time of the plant.
    spec = {"path": "raw.csv", "format": "wide_csv", "timestamp_column": None, "row_interval_s": 3600, "origin": "2026-03-01 00:00"}
    rec = _read_one(_plant(tmp_path, spec, timezone="Europe/Berlin"))
    assert rec.frame["timestamp"].tolist() == _ts("2026-02-28 23:00", "2026-03-01 00:00", "2026-03-01 01:00")


def test_index_unit_time_and_series_column(tmp_path):
    (tmp_path / "train.txt").write_text("1 1 10\n1 2 11\n1 3 12\n2 1 20\n2 2 21\n")
    spec = {"path": "train.txt", "format": "wide_csv", "delimiter": "whitespace", "header": False,
            "columns": ["unit", "cycle", "T"], "timestamp_column": "cycle", "timestamp_unit": "index",
            "row_interval_s": 3600, "origin": "2000-01-01T00:00:00Z", "series_column": "unit"}
    rec = _read_one(_plant(tmp_path, spec))
    f = rec.frame
    assert rec.n_rows == 5 and rec.unmapped_columns == []  # unit and cycle are used, not unmapped
    assert f["series"].tolist() == ["1", "1", "1", "2", "2"]
    assert f["timestamp"].tolist() == _ts(
        "2000-01-01 01:00", "2000-01-01 02:00", "2000-01-01 03:00", "2000-01-01 01:00", "2000-01-01 02:00"
    )
    v = validate(rec, _plant(tmp_path, spec), wide=True)
    assert v.report.quarantined == 0  # the same cycle in two units is no duplicate: series differ
    assert v.records.groupby("series").size().to_dict() == {"1": 3, "2": 2}


@pytest.mark.parametrize(
    "unit, cells, expect",
    [
        ("s", ["1700000000", "1700000000.25", "", "x"], ["2023-11-14 22:13:20", "2023-11-14 22:13:20.25", None, None]),
        ("ms", ["1700000000500", "1700000001000"], ["2023-11-14 22:13:20.5", "2023-11-14 22:13:21"]),
    ],
)
def test_epoch_timestamps(tmp_path, unit, cells, expect):
    (tmp_path / "raw.csv").write_text("t,T\n" + "".join(f"{c},1\n" for c in cells))
    rec = _read_one(_plant(tmp_path, {"path": "raw.csv", "format": "wide_csv", "timestamp_column": "t", "timestamp_unit": unit}))
    assert rec.n_rows == len(cells)  # unparseable times are NaT, the rows stay
    assert rec.frame["timestamp"].tolist() == _ts(*expect)


def test_numeric_timestamps_without_unit_are_an_error(tmp_path):
    (tmp_path / "raw.csv").write_text("t,T\n1700000000,1\n1700000001,2\n")
    m = _plant(tmp_path, {"path": "raw.csv", "format": "wide_csv", "timestamp_column": "t"})
    with pytest.raises(ManifestError, match=r"'files\[0\]\.timestamp_unit'") as e:
        read_file(m, m.files[0])
    assert str(tmp_path / "raw.csv") in str(e.value) and "plain numbers" in str(e.value)


def test_iso_with_offsets_mixed_with_naive_local(tmp_path):
    cells = [
        "2026-03-29T01:30:00+01:00",  # CET
        "2026-03-29T03:30:00+02:00",  # CEST (after the spring change)
        "2026-03-29T02:00:00Z",
        "2026-03-29 04:00:00",  # naive: Europe/Berlin local (CEST) = 02:00 UTC
        "2026-03-29T05:00:00.500-0100",
        "not a time",
    ]
    (tmp_path / "raw.csv").write_text("timestamp,T\n" + "".join(f"{c},{i}\n" for i, c in enumerate(cells)))
    rec = _read_one(_plant(tmp_path, {"path": "raw.csv", "format": "wide_csv"}, timezone="Europe/Berlin"))
    assert rec.frame["timestamp"].tolist() == _ts(
        "2026-03-29 00:30", "2026-03-29 01:30", "2026-03-29 02:00", "2026-03-29 02:00", "2026-03-29 06:00:00.5", None
    )


def test_dst_fall_back_is_inferred_from_row_order(tmp_path):
    # Europe/Berlin, 2026-10-25: 03:00 CEST -> 02:00 CET, the hour 02:00..02:59 is written twice.
    local = ["01:30", "02:00", "02:30", "02:00", "02:30", "03:00"]
    (tmp_path / "raw.csv").write_text("timestamp;T\n" + "".join(f"25.10.2026 {t};{i}\n" for i, t in enumerate(local)))
    spec = {"path": "raw.csv", "format": "wide_csv", "delimiter": ";", "timestamp_format": "%d.%m.%Y %H:%M"}
    m = _plant(tmp_path, spec, timezone="Europe/Berlin")
    rec = _read_one(m)
    assert rec.frame["timestamp"].tolist() == _ts(
        "2026-10-24 23:30", "2026-10-25 00:00", "2026-10-25 00:30", "2026-10-25 01:00", "2026-10-25 01:30", "2026-10-25 02:00"
    )
    assert validate(rec, m, wide=True).report.quarantined == 0


def test_dst_fall_back_that_cannot_be_inferred_is_nat(tmp_path):
    # Hourly export that wrote the repeated hour only once: 02:30 is CEST or CET, nobody can tell.
    local = ["01:30", "02:30", "03:30"]
    (tmp_path / "raw.csv").write_text("timestamp,T\n" + "".join(f"2026-10-25 {t},{i}\n" for i, t in enumerate(local)))
    m = _plant(tmp_path, {"path": "raw.csv", "format": "wide_csv"}, timezone="Europe/Berlin")
    rec = _read_one(m)
    assert rec.frame["timestamp"].tolist() == _ts("2026-10-24 23:30", None, "2026-10-25 02:30")
    r = validate(rec, m, wide=True).report
    assert r.quarantine_reasons == {"bad_timestamp": 1} and r.rows == 3


def test_dst_spring_forward_nonexistent_is_nat(tmp_path):
    # Europe/Berlin, 2026-03-29: 02:00 CET -> 03:00 CEST; 02:30 local does not exist.
    local = ["01:30", "02:30", "03:30"]
    (tmp_path / "raw.csv").write_text("timestamp,T\n" + "".join(f"2026-03-29 {t},{i}\n" for i, t in enumerate(local)))
    m = _plant(tmp_path, {"path": "raw.csv", "format": "wide_csv"}, timezone="Europe/Berlin")
    rec = _read_one(m)
    assert rec.frame["timestamp"].tolist() == _ts("2026-03-29 00:30", None, "2026-03-29 01:30")
    v = validate(rec, m, wide=True)
    assert v.report.quarantine_reasons == {"bad_timestamp": 1} and v.quarantine["row"].tolist() == [1]


# ---------------------------------------------------------------------------------------------- long


def test_long_csv_with_quality(tmp_path):
    rows = [
        ("2026-01-01T00:00:00Z", "T", "1.0", "Good"),
        ("2026-01-01T00:00:00Z", "P", "2.0", "BAD"),
        ("2026-01-01T00:00:01Z", "T", "Inp OutRange", "good"),
        ("2026-01-01T00:00:01Z", "P", "3.0", "0"),
        ("2026-01-01T00:00:02Z", "T", "", "192"),
    ]
    text = "ts,name,val,q,site\n" + "".join(f"{a},{b},{c},{d},x\n" for a, b, c, d in rows)
    (tmp_path / "long.csv").write_text(text)
    spec = {"path": "long.csv", "format": "long_csv", "timestamp_column": "ts", "tag_column": "name", "value_column": "val",
            "quality_column": "q", "bad_quality": ["bad", 0]}
    m = _plant(tmp_path, spec, tags=("T", "P"))
    rec = _read_one(m)
    f = rec.frame
    assert rec.n_rows == 5 and rec.unmapped_columns == ["site"]
    assert f["row"].tolist() == [0, 1, 2, 3, 4]
    assert f["tag"].tolist() == ["T", "P", "T", "P", "T"]
    assert f["bad_quality"].tolist() == [False, True, False, True, False]
    assert f["non_numeric"].tolist() == [False, False, True, False, False]
    assert f["value"].tolist()[0] == 1.0 and np.isnan(f["value"][1]) and np.isnan(f["value"][3])
    assert f["timestamp"].tolist() == _ts(*(r[0][:19].replace("T", " ") for r in rows))
    r = validate(rec, m, wide=False).report
    assert r.kept + r.repaired + r.quarantined == r.rows == 5


def test_long_parquet_numeric_quality_series_and_dst_per_tag(tmp_path):
    # Two tags interleaved across the Berlin fall-back: the repeated hour is inferred per tag.
    local = ["01:30", "02:30", "02:30", "03:30"]
    df = pd.DataFrame(
        {
            "timestamp": [f"2026-10-25 {t}" for t in local for _ in ("T", "P")],
            "tag": ["T", "P"] * 4,
            "value": np.arange(8, dtype=float),
            "quality": [192, 192, 192, 0, 192, 192, 192, 192],
            "unit": ["u1"] * 8,
        }
    )
    df.to_parquet(tmp_path / "long.parquet")
    spec = {"path": "long.parquet", "format": "long_parquet", "quality_column": "quality", "bad_quality": [0],
            "series_column": "unit", "series_prefix": "line/"}
    rec = _read_one(_plant(tmp_path, spec, tags=("T", "P"), timezone="Europe/Berlin"))
    f = rec.frame
    assert f["series"].unique().tolist() == ["line/u1"]
    assert f["bad_quality"].tolist() == [False, False, False, True, False, False, False, False]
    assert f[f["tag"] == "T"]["timestamp"].tolist() == _ts(
        "2026-10-24 23:30", "2026-10-25 00:30", "2026-10-25 01:30", "2026-10-25 02:30"
    )
    assert rec.unmapped_columns == []


# ---------------------------------------------------------------------------------------------- files, series


def test_glob_of_runs_each_its_own_series(tmp_path):
    (tmp_path / "runs").mkdir()
    for name, n in (("b", 2), ("a", 3), ("10", 1)):
        (tmp_path / "runs" / f"{name}.csv").write_text("T\n" + "".join(f"{i}\n" for i in range(n)))
    (tmp_path / "runs" / "notes.txt").write_text("not a run\n")
    spec = {"path": "runs/*.csv", "format": "wide_csv", "timestamp_column": None, "row_interval_s": 1,
            "series_from": "file", "series_prefix": "valve1/"}
    m = _plant(tmp_path, spec)
    recs = read_file(m, m.files[0])
    assert [Path(r.file).name for r in recs] == ["10.csv", "a.csv", "b.csv"]  # sorted
    assert [r.n_rows for r in recs] == [1, 3, 2]
    assert [r.frame["series"].unique().tolist() for r in recs] == [["valve1/10"], ["valve1/a"], ["valve1/b"]]
    assert recs[1].frame["timestamp"].tolist() == _ts(
        "2000-01-01 00:00:00", "2000-01-01 00:00:01", "2000-01-01 00:00:02"
    )


def test_glob_matching_nothing_names_manifest_key_and_pattern(tmp_path):
    m = _plant(tmp_path, {"path": "runs/*.csv", "format": "wide_csv"})
    with pytest.raises(ManifestError) as e:
        read_file(m, m.files[0])
    msg = str(e.value)
    assert str(m.source) in msg and "'files[0].path'" in msg and "'runs/*.csv'" in msg


def test_data_root_resolves_files_and_labels(tmp_path):
    root = tmp_path / "data"
    (root / "set").mkdir(parents=True)
    (root / "set" / "raw.csv").write_text("timestamp,T\n2026-01-01 00:00:00,1\n")
    (root / "set" / "labels.csv").write_text("x\n1\n")
    conf = tmp_path / "conf"
    conf.mkdir()
    labels = [{"path": "set/labels.csv", "task": "maintenance"}]
    m = _plant(conf, {"path": "set/raw.csv", "format": "wide_csv"}, data_root=root, labels=labels)
    assert m.files[0].root == str(root.resolve()) and m.files[0].path == "set/raw.csv"
    assert m.resolve_file(m.files[0]) == root.resolve() / "set" / "raw.csv"
    assert m.resolve(m.labels[0].path).read_text() == "x\n1\n"
    assert _read_one(m).frame["value"].tolist() == [1.0]
    m = _plant(conf, {"path": "set/raw.csv", "format": "wide_csv"})  # no data root: manifest folder
    with pytest.raises(ManifestError, match=r"raw file 'set/raw.csv' of key 'files\[0\]\.path' not found"):
        read_file(m, m.files[0])


# ---------------------------------------------------------------------------------------------- errors


def test_missing_columns_name_file_key_and_columns(tmp_path):
    (tmp_path / "raw.csv").write_text("time,T\n2026-01-01 00:00:00,1\n")
    m = _plant(tmp_path, {"path": "raw.csv", "format": "wide_csv"})
    with pytest.raises(ManifestError) as e:
        read_file(m, m.files[0])
    msg = str(e.value)
    assert str(tmp_path / "raw.csv") in msg and "'files[0].timestamp_column'" in msg and "'timestamp'" in msg
    assert "['time', 'T']" in msg
    (tmp_path / "long.csv").write_text("timestamp,tag,value\n2026-01-01 00:00:00,T,1\n")
    m = _plant(tmp_path, {"path": "long.csv", "format": "long_csv", "quality_column": "q"})
    with pytest.raises(ManifestError, match=r"quality column 'q' not found.*'files\[0\]\.quality_column'"):
        read_file(m, m.files[0])


@pytest.mark.parametrize(
    "patch, needle",
    [
        ({"colour": "red"}, "unknown key(s) ['colour'] in 'files[0]'"),
        ({"root": "/data"}, "unknown key(s) ['root'] in 'files[0]'"),  # set by the loader only
        ({"timestamp_column": None}, "'files[0].row_interval_s' is missing"),
        ({"timestamp_unit": "index"}, "'files[0].row_interval_s' is missing"),
        ({"timestamp_unit": "minutes"}, "'files[0].timestamp_unit' is 'minutes'"),
        ({"row_interval_s": "fast"}, "'files[0].row_interval_s' must be a number"),
        ({"row_interval_s": 0}, "'files[0].row_interval_s' must be a number of seconds > 0"),
        ({"header": False}, "'files[0].columns' is missing"),
        ({"columns": ["a", "b"]}, "'files[0].columns' is set but the file has a header"),
        ({"header": "no"}, "'files[0].header' must be true or false"),
        ({"encoding": "klingon"}, "'files[0].encoding' is 'klingon'"),
        ({"origin": "yesterday"}, "'files[0].origin' is 'yesterday'"),
        ({"quality_column": "q"}, "'files[0].quality_column' is set; quality flags are read from long formats only"),
        ({"series_from": "folder"}, "'files[0].series_from' is 'folder'"),
        ({"series_from": "file", "series_column": "u"}, "'files[0].series_column' is set together with 'series_from'"),
    ],
)
def test_bad_file_keys_name_manifest_and_key(tmp_path, patch, needle):
    with pytest.raises(ManifestError) as e:
        _plant(tmp_path, {"path": "raw.csv", "format": "wide_csv", **patch})
    assert str(tmp_path / "plant.yaml") in str(e.value)
    assert needle in str(e.value)


def test_long_formats_need_a_timestamp_column(tmp_path):
    with pytest.raises(ManifestError, match=r"'files\[0\]\.timestamp_column' is null; long formats"):
        _plant(tmp_path, {"path": "x.csv", "format": "long_csv", "timestamp_column": None, "row_interval_s": 1})


def test_dst_inference_runs_per_series(tmp_path):
    # Two runs in one file, both across the Berlin fall-back: the repeated hour is inferred within each run.
    local = ["01:30", "02:30", "02:30", "03:30"]
    lines = [f"{run};2026-10-25 {t};{i}" for run in ("A", "B") for i, t in enumerate(local)]
    (tmp_path / "raw.csv").write_text("run;timestamp;T\n" + "\n".join(lines) + "\n")
    spec = {"path": "raw.csv", "format": "wide_csv", "delimiter": ";", "series_column": "run"}
    rec = _read_one(_plant(tmp_path, spec, timezone="Europe/Berlin"))
    expect = _ts("2026-10-24 23:30", "2026-10-25 00:30", "2026-10-25 01:30", "2026-10-25 02:30")
    assert rec.frame["timestamp"].tolist() == expect + expect
    assert rec.frame["series"].tolist() == ["A"] * 4 + ["B"] * 4
