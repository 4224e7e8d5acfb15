"""Each validation rule on a hand-written file, with the accounting identity asserted exactly."""

import numpy as np
import pandas as pd
import pytest
import yaml

from data_prep.manifest import load_manifest
from data_prep.readers import read_file
from data_prep.validate import validate


def _plant(tmp_path, fmt="wide_csv", extra_file=None, stuck_after_s=300):
    man = {
        "plant_id": "t",
        "stage": "test",
        "sharing": "private",
        "timezone": "Europe/Berlin",
        "files": [{"path": "raw.csv", "format": fmt, "delimiter": ";", "decimal": ",", **(extra_file or {})}],
        "assets": {"a": 60},
        "tags": [
            {"name": "T", "asset": "a", "kind": "temperature", "unit": "degC", "interval_s": 60, "limits": [0, 100],
             "stuck_after_s": stuck_after_s},
            {"name": "P", "asset": "a", "kind": "pressure", "unit": "bar", "interval_s": 60, "limits": [0, 10]},
        ],
    }
    p = tmp_path / "plant.yaml"
    p.write_text(yaml.safe_dump(man))
    return load_manifest(p)


def test_wide_rules_and_accounting(tmp_path):
    lines = [
        "timestamp;T;P;EXTRA",
        "2026-03-01 00:00:00;10,5;1,0;x",  # 0 kept
        "2026-03-01 00:01:00;11,0;1,1;x",  # 1 kept
        "not a time;12,0;1,2;x",  # 2 quarantined: bad_timestamp
        "2026-03-01 00:01:00;11,5;1,3;x",  # 3 quarantined: duplicate_timestamp
        "2026-03-01 00:02:00;Inp OutRange;1,4;x",  # 4 repaired: non_numeric
        "2026-03-01 00:03:00;150,0;1,5;x",  # 5 repaired: out_of_limits
        "2026-03-01 00:04:00;;1,6;x",  # 6 kept: empty cell is missing, not a repair
        "2026-03-01 00:05:00;20,0;1,7;x",  # 7..12 T stuck at 20 for 5 min -> repaired
        "2026-03-01 00:06:00;20,0;1,8;x",
        "2026-03-01 00:07:00;20,0;1,9;x",
        "2026-03-01 00:08:00;20,0;2,0;x",
        "2026-03-01 00:09:00;20,0;2,1;x",
        "2026-03-01 00:10:00;20,0;2,2;x",
        "2026-03-01 00:11:00;21,0;inf;x",  # 13 repaired: inf is out of limits
    ]
    (tmp_path / "raw.csv").write_text("\n".join(lines) + "\n")
    m = _plant(tmp_path)
    v = validate(read_file(m, m.files[0])[0], m, wide=True)
    r = v.report
    assert r.rows == 14
    assert (r.kept, r.repaired, r.quarantined) == (3, 9, 2)
    assert r.kept + r.repaired + r.quarantined == r.rows
    assert r.quarantine_reasons == {"bad_timestamp": 1, "duplicate_timestamp": 1}
    assert r.repaired_cells == {"non_numeric": 1, "out_of_limits": 2, "stuck": 6}
    assert r.missing_cells == 1
    assert r.unmapped_columns == ["EXTRA"]
    assert sorted(v.quarantine["row"]) == [2, 3]
    # Naive times are Europe/Berlin (UTC+1 in March before DST): 00:00 local = 23:00 UTC the day before.
    assert v.records["timestamp"].min() == pd.Timestamp("2026-02-28 23:00", tz="UTC")
    # Nothing invented: valid values = 2*14 cells - quarantined rows' cells - masked - missing.
    assert len(v.records) == 28 - 4 - 9 - 1
    assert np.isfinite(v.records["value"]).all()


def test_long_rules(tmp_path):
    df = pd.DataFrame(
        {
            "timestamp": ["2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z", "bad", "2026-03-01T00:01:00Z"],
            "tag": ["T", "T", "Q", "T", "P"],
            "value": ["1,0", "2,0", "3,0", "4,0", "99"],
        }
    )
    df.to_csv(tmp_path / "raw.csv", sep=";", index=False)
    m = _plant(tmp_path, fmt="long_csv")
    v = validate(read_file(m, m.files[0])[0], m, wide=False)
    r = v.report
    assert r.quarantine_reasons == {"bad_timestamp": 1, "duplicate_record": 1, "unknown_tag": 1}
    assert r.repaired_cells == {"out_of_limits": 1}
    assert (r.kept, r.repaired, r.quarantined) == (1, 1, 3)
    assert v.records["value"].tolist() == [1.0]


@pytest.mark.parametrize("stuck_after_s, expect", [(300, 6), (None, 0)])
def test_stuck_rule_can_be_disabled(tmp_path, stuck_after_s, expect):
    rows = ["timestamp;T;P"] + [f"2026-03-01 00:{i:02d}:00;20,0;{i % 3}" for i in range(6)]
    (tmp_path / "raw.csv").write_text("\n".join(rows) + "\n")
    m = _plant(tmp_path, stuck_after_s=stuck_after_s)
    r = validate(read_file(m, m.files[0])[0], m, wide=True).report
    assert r.repaired_cells.get("stuck", 0) == expect


def test_out_of_order_rows_are_placed_and_counted(tmp_path):
    rows = ["timestamp;T;P",
            "2026-03-01 00:00:00;1,0;1,0",
            "2026-03-01 00:02:00;3,0;1,0",
            "2026-03-01 00:01:00;2,0;1,0",  # earlier than the row above
            "2026-03-01 00:03:00;4,0;1,0"]
    (tmp_path / "raw.csv").write_text("\n".join(rows) + "\n")
    m = _plant(tmp_path, stuck_after_s=None)
    v = validate(read_file(m, m.files[0])[0], m, wide=True)
    assert v.report.reordered_rows == 1 and (v.report.kept, v.report.repaired) == (3, 1)
    t = v.records[v.records["tag"] == "T"].sort_values("timestamp")["value"].tolist()
    assert t == [1.0, 2.0, 3.0, 4.0]
