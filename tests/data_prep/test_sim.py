import hashlib

import numpy as np
import pandas as pd

from data_prep.sim import make_plants


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_from_seed(tmp_path):
    make_plants(tmp_path / "a", seed=3, days=12)
    make_plants(tmp_path / "b", seed=3, days=12)
    make_plants(tmp_path / "c", seed=4, days=12)
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_raw_files_look_like_historian_exports(plants_dir):
    head = (plants_dir / "kiln_a/raw/kiln_export.csv").read_text().splitlines()[:2]
    assert head[0].startswith("Zeitstempel;") and "," in head[1].split(";")[1]  # decimal comma
    assert "Inp OutRange" in (plants_dir / "kiln_a/raw/kiln_export.csv").read_text()
    long = pd.read_parquet(plants_dir / "pump_b/raw/pump_history.parquet")
    assert list(long.columns) == ["timestamp", "tag", "value"]
    assert (long["value"] == 999.0).sum() == 6  # error-code spikes
    per_tag = long.groupby("tag")["timestamp"].apply(lambda t: t.diff().median())
    assert per_tag["BRG_TEMP"] == pd.Timedelta(minutes=5) and per_tag["VIB_RMS"] == pd.Timedelta(minutes=1)
    line = pd.read_csv(plants_dir / "line_c/raw/line_power.csv")
    assert line["time"].duplicated().sum() == 2


def test_inspection_labels_follow_the_firing_profile(plants_dir):
    q = pd.read_csv(plants_dir / "kiln_a/labels/quality.csv")
    assert 0.6 <= q["passed"].mean() <= 0.95
    # Quality falls with the distance of the peak temperature from its setpoint.
    far = q[q["peak_offset_degC"].abs() > 12]["capacity_mAh_g"].mean()
    near = q[q["peak_offset_degC"].abs() < 4]["capacity_mAh_g"].mean()
    assert near - far > 4.0
    raw = pd.read_csv(plants_dir / "kiln_a/raw/kiln_export.csv", sep=";", decimal=",")
    assert 850 < raw["TI_Z2"].max() < 960


def test_maintenance_labels_run_to_failure(plants_dir):
    lab = pd.read_csv(plants_dir / "pump_b/labels/maintenance.csv")
    long = pd.read_parquet(plants_dir / "pump_b/raw/pump_history.parquet")
    vib = long[(long["tag"] == "VIB_RMS") & (long["value"] < 100)].set_index("timestamp")["value"]
    lab["timestamp"] = pd.to_datetime(lab["timestamp"])
    near = lab[lab["rul_hours"] < 12]["timestamp"]
    healthy = lab[(lab["fault"] == "none")]["timestamp"]
    assert vib.reindex(near).mean() > 2 * vib.reindex(healthy).mean()
    assert set(lab["fault"].dropna()) >= {"none", "bearing"}
    rul = lab["rul_hours"].dropna().to_numpy()
    assert rul.min() < 1.0 and (np.diff(rul) < 0).mean() > 0.9  # counts down, resets at repairs


def test_energy_line_has_shift_and_weekday_pattern(plants_dir):
    df = pd.read_csv(plants_dir / "line_c/raw/line_power.csv", parse_dates=["time"])
    dow = df["time"].dt.dayofweek
    hour = df["time"].dt.hour
    weekday_day = df[(dow < 5) & (hour == 10)]["P_LINE_kW"].mean()
    sunday = df[dow == 6]["P_LINE_kW"].mean()
    assert weekday_day > sunday + 200
