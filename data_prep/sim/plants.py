"""Synthetic plants: raw files that look like real historian exports, labelled for the three task families.

Three sites, deterministic from a seed:

* ``kiln_a`` (firing, inspection): a batch kiln firing cathode powder. Wide CSV with ``;`` separator,
  decimal commas and ``dd.mm.yyyy HH:MM:SS`` timestamps at 1 min. Each 2 h batch follows a ramp / dwell /
  cool profile; the batch's peak-temperature offset and dwell length set its quality (specific capacity,
  pass when >= 195 mAh/g, about 80 % pass). Artefacts: a 3 h export gap, a thermocouple stuck for 4 h,
  historian strings ("Inp OutRange") in a numeric column.
* ``pump_b`` (utilities, maintenance): a centrifugal pump run to failure three times. Long Parquet
  ``(timestamp, tag, value)``; vibration and current at 1 min, bearing temperature at 5 min in degF.
  Vibration grows exponentially after an onset until it crosses 7.1 mm/s (ISO 10816 zone D): failure,
  2 h repair gap, new bearing. Labels per hour: remaining useful life and fault class. Artefacts: spikes
  of 999 (sensor error codes, outside physical limits).
* ``line_c`` (assembly, energy): a production line's power draw at 15 min with three weekday shifts, a
  Saturday morning shift and idle Sundays, plus ambient temperature and produced units. Wide CSV with ISO
  timestamps. Artefacts: two duplicated export rows and a few missing intervals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

START = pd.Timestamp("2026-01-05 00:00:00")  # a Monday


def _write_manifest(path: Path, manifest: dict) -> None:
    path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")


# --------------------------------------------------------------------------------------------- kiln_a
def make_kiln(root: Path, rng: np.random.Generator, days: int) -> Path:
    step_min, batch_min = 1, 120
    n = days * 24 * 60 // step_min
    t = START + pd.to_timedelta(np.arange(n) * step_min, unit="min")
    n_batches = n // batch_min
    peak_dev = rng.normal(0.0, 9.0, n_batches)  # degC offset of the peak zone setpoint
    dwell = np.clip(np.round(rng.normal(60.0, 5.0, n_batches)), 45, 75).astype(int)  # minutes at peak
    z1 = np.empty(n)
    z2 = np.empty(n)
    z3 = np.empty(n)
    fan = np.empty(n)
    rows = []
    for b in range(n_batches):
        s = b * batch_min
        k = np.arange(batch_min)
        ramp = 30
        cool_start = ramp + dwell[b]
        peak = 900.0 + peak_dev[b]
        prof = np.where(
            k < ramp,
            25.0 + (peak - 25.0) * k / ramp,
            np.where(k < cool_start, peak, peak - (peak - 150.0) * np.clip((k - cool_start) / 25.0, 0, 1)),
        )
        z2[s : s + batch_min] = prof + rng.normal(0, 1.5, batch_min)
        z1[s : s + batch_min] = 0.85 * prof + 20 + rng.normal(0, 2.0, batch_min)
        lag = np.concatenate([np.full(5, prof[0]), prof[:-5]])
        z3[s : s + batch_min] = 0.7 * lag + 40 + rng.normal(0, 2.0, batch_min)
        fan[s : s + batch_min] = 12.0 + 0.004 * prof + rng.normal(0, 0.15, batch_min)
        capacity = 201.0 - 0.035 * peak_dev[b] ** 2 - 0.12 * abs(dwell[b] - 60) + rng.normal(0, 1.2)
        rows.append(
            {
                "batch_id": f"B{b:04d}",
                "start": t[s].isoformat(),
                "end": (t[s] + pd.Timedelta(minutes=batch_min)).isoformat(),
                "peak_offset_degC": round(float(peak_dev[b]), 3),
                "dwell_min": int(dwell[b]),
                "capacity_mAh_g": round(float(capacity), 3),
                "passed": int(capacity >= 195.0),
            }
        )
    rest = slice(n_batches * batch_min, n)
    z1[rest], z2[rest], z3[rest], fan[rest] = 25.0, 25.0, 40.0, 12.0
    # Artefact: thermocouple Z3 stuck for 4 h, a third into the run.
    st = n // 3
    z3[st : st + 240] = z3[st]
    df = pd.DataFrame(
        {
            "Zeitstempel": t.strftime("%d.%m.%Y %H:%M:%S"),
            "TI_Z1": np.round(z1, 2),
            "TI_Z2": np.round(z2, 2),
            "TI_Z3": np.round(z3, 2),
            "II_FAN": np.round(fan, 3),
        }
    )
    # TI_Z1 carries strings too, so pandas would not localise it: write its decimal commas by hand.
    df["TI_Z1"] = [f"{v:.2f}".replace(".", ",") for v in z1]
    # Artefact: historian strings in a numeric column.
    for i in rng.choice(n, 5, replace=False):
        df.loc[i, "TI_Z1"] = "Inp OutRange"
    # Artefact: a 3 h gap in the export, past the middle of the run.
    gap = (n * 3) // 5
    df = df.drop(index=range(gap, gap + 180)).reset_index(drop=True)
    raw = root / "kiln_a" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    df.to_csv(raw / "kiln_export.csv", sep=";", decimal=",", index=False)
    (root / "kiln_a" / "labels").mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "kiln_a" / "labels" / "quality.csv", index=False)
    tags = [
        ("TI_Z1", "temperature", "degC", [0, 1300]),
        ("TI_Z2", "temperature", "degC", [0, 1300]),
        ("TI_Z3", "temperature", "degC", [0, 1300]),
        ("II_FAN", "current", "A", [0, 100]),
    ]
    manifest = {
        "plant_id": "kiln_a",
        "stage": "firing",
        "sharing": "consortium",
        "description": "Synthetic cathode-powder batch kiln (2 h batches).",
        "timezone": "Europe/Berlin",
        "files": [
            {
                "path": "raw/kiln_export.csv",
                "format": "wide_csv",
                "timestamp_column": "Zeitstempel",
                "timestamp_format": "%d.%m.%Y %H:%M:%S",
                "delimiter": ";",
                "decimal": ",",
            }
        ],
        "assets": {"kiln1": 60},
        "tags": [
            {"name": n, "asset": "kiln1", "kind": k, "unit": u, "interval_s": 60, "limits": lim}
            for n, k, u, lim in tags
        ],
        "labels": [
            {
                "path": "labels/quality.csv",
                "task": "inspection",
                "description": "One row per batch: capacity_mAh_g (quality value) and passed (>= 195).",
            }
        ],
    }
    path = root / "kiln_a" / "plant.yaml"
    _write_manifest(path, manifest)
    return path


# --------------------------------------------------------------------------------------------- pump_b
def make_pump(root: Path, rng: np.random.Generator, days: int) -> Path:
    n = days * 1440  # 1-min grid
    t = START + pd.to_timedelta(np.arange(n), unit="min")
    vib = np.empty(n)
    rul_min = np.empty(n)
    fault = np.empty(n, dtype=object)
    online = np.ones(n, dtype=bool)
    i = 0
    faults = ["bearing", "imbalance"]
    episode = 0
    while i < n:
        life = int(rng.uniform(0.28, 0.38) * n)  # about three lives in the run
        onset = int(life * rng.uniform(0.45, 0.6))
        k = np.arange(life)
        growth = np.log(7.5 / 0.6) / (life - onset)
        v = 1.6 + 0.6 * np.where(k >= onset, np.expm1(growth * (k - onset)), 0.0)
        e = min(n, i + life)
        vib[i:e] = (v + rng.normal(0, 0.08, life))[: e - i]
        rul_min[i:e] = (life - k)[: e - i]
        fault[i:e] = np.where(k >= onset, faults[episode % 2], "none")[: e - i]
        repair = min(n, e + 120)
        online[e:repair] = False
        vib[e:repair] = np.nan
        rul_min[e:repair] = np.nan
        fault[e:repair] = "repair"
        i = repair
        episode += 1
    daily = 4.0 * np.sin(2 * np.pi * (np.arange(n) / 1440.0))
    cur = 38.0 + 0.9 * vib + rng.normal(0, 0.3, n)
    temp_f = 118.0 + 2.5 * vib + daily + rng.normal(0, 0.4, n)
    recs = []
    for tag, vals, every in (("VIB_RMS", vib, 1), ("MOTOR_I", cur, 1), ("BRG_TEMP", temp_f, 5)):
        idx = np.arange(0, n, every)
        idx = idx[online[idx]]
        recs.append(pd.DataFrame({"timestamp": t[idx], "tag": tag, "value": np.round(vals[idx], 4)}))
    df = pd.concat(recs, ignore_index=True).sort_values(["timestamp", "tag"], kind="stable")
    # Artefact: error codes (999) from the vibration transmitter.
    spikes = df.index[df["tag"] == "VIB_RMS"].to_numpy()
    df.loc[rng.choice(spikes, 6, replace=False), "value"] = 999.0
    df["timestamp"] = df["timestamp"].dt.tz_localize("UTC")
    raw = root / "pump_b" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    df.reset_index(drop=True).to_parquet(raw / "pump_history.parquet", index=False)
    hourly = np.arange(0, n, 60)
    lab = pd.DataFrame(
        {
            "timestamp": t[hourly].tz_localize("UTC").map(pd.Timestamp.isoformat),
            "rul_hours": np.round(rul_min[hourly] / 60.0, 3),
            "fault": fault[hourly],
        }
    )
    (root / "pump_b" / "labels").mkdir(exist_ok=True)
    lab.to_csv(root / "pump_b" / "labels" / "maintenance.csv", index=False)
    manifest = {
        "plant_id": "pump_b",
        "stage": "utilities",
        "sharing": "public",
        "description": "Synthetic centrifugal pump, three run-to-failure lives.",
        "timezone": "UTC",
        "files": [{"path": "raw/pump_history.parquet", "format": "long_parquet"}],
        "assets": {"pump1": 60},
        "tags": [
            {"name": "VIB_RMS", "asset": "pump1", "kind": "vibration", "unit": "mm/s", "interval_s": 60, "limits": [0, 50]},
            {"name": "MOTOR_I", "asset": "pump1", "kind": "current", "unit": "A", "interval_s": 60, "limits": [0, 200]},
            {"name": "BRG_TEMP", "asset": "pump1", "kind": "temperature", "unit": "degF", "interval_s": 300, "limits": [-40, 400]},
        ],
        "labels": [
            {
                "path": "labels/maintenance.csv",
                "task": "maintenance",
                "description": "Hourly: rul_hours until the next failure; fault in {none, bearing, imbalance, repair}.",
            }
        ],
    }
    path = root / "pump_b" / "plant.yaml"
    _write_manifest(path, manifest)
    return path


# --------------------------------------------------------------------------------------------- line_c
def shift_load(ts: pd.DatetimeIndex) -> np.ndarray:
    """Planned production load (kW above base) from the shift calendar."""
    h = ts.hour.to_numpy() + ts.minute.to_numpy() / 60.0
    dow = ts.dayofweek.to_numpy()
    weekday = dow < 5
    early = (h >= 6) & (h < 14)
    late = (h >= 14) & (h < 22)
    night = ~(early | late)
    load = np.zeros(len(ts))
    load[weekday & early] = 300.0
    load[weekday & late] = 270.0
    load[weekday & night] = 140.0
    load[(dow == 5) & early] = 220.0
    return load


def make_line(root: Path, rng: np.random.Generator, days: int) -> Path:
    n = days * 96
    t = START + pd.to_timedelta(np.arange(n) * 15, unit="min")
    doy = (t.dayofyear.to_numpy() + t.hour.to_numpy() / 24.0)
    amb = 4.0 + 6.0 * np.sin(2 * np.pi * (doy - 100) / 365) + 5.0 * np.sin(2 * np.pi * (t.hour.to_numpy() - 9) / 24)
    amb = amb + rng.normal(0, 0.6, n)
    load = shift_load(t)
    units = np.where(load > 0, rng.poisson(np.maximum(load, 1) / 10.0), 0)
    power = 120.0 + load * rng.normal(1.0, 0.05, n) + 2.5 * np.abs(amb - 18) + rng.normal(0, 6, n)
    df = pd.DataFrame(
        {
            "time": t.strftime("%Y-%m-%dT%H:%M:%S"),
            "P_LINE_kW": np.round(power, 2),
            "T_AMB": np.round(amb, 2),
            "UNITS": units,
        }
    )
    # Artefacts: a few missing intervals and two duplicated export rows.
    df = df.drop(index=rng.choice(np.arange(10, n - 10), 8, replace=False))
    df = pd.concat([df, df.iloc[[len(df) // 10, len(df) // 2]]]).sort_index(kind="stable").reset_index(drop=True)
    raw = root / "line_c" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    df.to_csv(raw / "line_power.csv", index=False)
    manifest = {
        "plant_id": "line_c",
        "stage": "assembly",
        "sharing": "consortium",
        "description": "Synthetic assembly line power draw with a three-shift calendar.",
        "timezone": "UTC",
        "files": [{"path": "raw/line_power.csv", "format": "wide_csv", "timestamp_column": "time"}],
        "assets": {"line1": 900},
        "tags": [
            {"name": "P_LINE_kW", "asset": "line1", "kind": "power", "unit": "kW", "interval_s": 900, "limits": [0, 2000]},
            {"name": "T_AMB", "asset": "line1", "kind": "temperature", "unit": "degC", "interval_s": 900, "limits": [-40, 60]},
            {"name": "UNITS", "asset": "line1", "kind": "other", "unit": "count", "interval_s": 900,
             "limits": [0, 10000], "stuck_after_s": None},
        ],
        "labels": [],
    }
    path = root / "line_c" / "plant.yaml"
    _write_manifest(path, manifest)
    return path


def make_plants(root: str | Path, seed: int = 0, days: int = 60) -> list[Path]:
    """Write the synthetic plants under ``root``; return their manifest paths.

    ``days`` sets the length of the energy line (the longest history); the kiln and pump get a third of it
    (their 1-min sampling makes them the larger files).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    short = max(4, days // 3)
    return [make_kiln(root, rng, short), make_pump(root, rng, short), make_line(root, rng, days)]
