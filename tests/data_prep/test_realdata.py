"""Every manifest in configs/data/real reads its real data set: row counts as published, times parse.

Needs the shared data folder (``../shared/data`` beside the repository); skipped when it is absent.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_prep.manifest import PlantManifest
from data_prep.readers import Records, read_file
from data_prep.real import real_manifest_paths
from data_prep.validate import validate

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"real data sets not available: {DATA} is absent"),
]

# plant_id -> (files, rows): figures of ../shared/data/README.md, per file entry where it helps.
EXPECTED = {
    "cmapss_fd001": {"cmapss/train_FD001.txt": (1, 20_631)},
    "steel_energy": {"steel_energy/Steel_industry_data.csv": (1, 35_040)},
    "ett_h1": {"ett/ETTh1.csv": (1, 17_420)},
    "ett_h2": {"ett/ETTh2.csv": (1, 17_420)},
    "nab_machine_temperature": {"nab/data/machine_temperature_system_failure.csv": (1, 22_695)},
    "cnc_mill": {"cnc_mill/experiment_*.csv": (18, 25_286)},
    # README: "46,806 labelled rows + 9,405 normal"; the files hold 37,401 labelled rows in the 34 fault
    # experiments + 9,405 in the anomaly-free run = 46,806 rows in all.
    "skab": {
        "skab/anomaly-free/anomaly-free.csv": (1, 9_405),
        "skab/valve1/*.csv": (16, 18_160),
        "skab/valve2/*.csv": (4, 4_312),
        "skab/other/*.csv": (14, 14_929),
    },
}
TOTAL_ROWS = {"skab": 46_806}
# Columns in the raw files that are not sensor tags (labels, phases, counters, calendar fields).
UNMAPPED = {
    "skab": {"anomaly", "changepoint"},
    "cnc_mill": {"Machining_Process", "tool_condition", "M1_CURRENT_PROGRAM_NUMBER", "M1_sequence_number"},
    "steel_energy": {"NSM", "WeekStatus", "Day_of_week", "Load_Type"},
}
SERIES = {"cmapss_fd001": 100, "cnc_mill": 18, "skab": 35}


@cache
def _load(path: Path) -> tuple[PlantManifest, dict[str, list[Records]]]:
    from data_prep.manifest import load_manifest

    m = load_manifest(path, data_root=DATA)
    return m, {spec.path: read_file(m, spec) for spec in m.files}


MANIFESTS = real_manifest_paths()


def test_every_data_set_has_a_manifest():
    from data_prep.manifest import load_manifest

    ids = {load_manifest(p, data_root=DATA).plant_id for p in MANIFESTS}
    assert ids == set(EXPECTED)


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_manifest_paths_are_relative_and_public(path):
    m, _ = _load(path)
    assert m.sharing == "public"
    for spec in m.files:
        assert not Path(spec.path).is_absolute() and spec.root == str(DATA.resolve())
    for lab in m.labels:
        assert Path(lab.path).is_file(), lab.path


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_reads_every_row_with_times(path):
    m, by_spec = _load(path)
    expected = EXPECTED[m.plant_id]
    assert set(by_spec) == set(expected)
    for spec_path, recs in by_spec.items():
        n_files, n_rows = expected[spec_path]
        assert len(recs) == n_files, spec_path
        assert sum(r.n_rows for r in recs) == n_rows, spec_path
    recs = [r for rs in by_spec.values() for r in rs]
    if m.plant_id in TOTAL_ROWS:
        assert sum(r.n_rows for r in recs) == TOTAL_ROWS[m.plant_id]
    tags = {t.name for t in m.tags}
    for r in recs:
        f = r.frame
        # Every input row is there once per tag, and every manifest tag is a column of the file.
        assert len(f) == r.n_rows * len(tags)
        assert set(f["tag"]) == tags
        assert set(r.unmapped_columns) <= UNMAPPED.get(m.plant_id, set())
        first = f.drop_duplicates("row")
        assert first["timestamp"].isna().mean() < 0.01
        assert str(f["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert {c for r in recs for c in r.unmapped_columns} == UNMAPPED.get(m.plant_id, set())
    series = {s for r in recs for s in r.frame["series"].unique()}
    assert len(series) == SERIES.get(m.plant_id, 1)


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_sampling_interval_matches_the_manifest(path):
    m, by_spec = _load(path)
    (asset, interval), = m.assets.items()
    steps = []
    for r in (r for rs in by_spec.values() for r in rs):
        f = r.frame.drop_duplicates("row")
        for _, g in f.groupby("series"):
            t = np.sort(g["timestamp"].dropna().astype("int64").to_numpy())
            steps.append(np.diff(t) / 1e9)
    median = float(np.median(np.concatenate(steps)))
    assert median == pytest.approx(interval, rel=1e-6), (m.plant_id, median, interval)


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_validation_accounts_for_every_row(path):
    m, by_spec = _load(path)
    rows = quarantined = 0
    for recs in by_spec.values():
        for r in recs:
            rep = validate(r, m, wide=True).report  # checks kept + repaired + quarantined == rows itself
            rows += rep.rows
            quarantined += rep.quarantined
    assert rows == sum(r.n_rows for rs in by_spec.values() for r in rs)
    # Known quirks: NAB writes the hour 02:00..02:55 of 2014-01-07 twice (12 duplicate rows); the rest
    # of the sets have no unplaceable rows.
    assert quarantined == (12 if m.plant_id == "nab_machine_temperature" else 0)


def test_known_values():
    m, by_spec = _load(next(p for p in MANIFESTS if p.stem == "cmapss_fd001"))
    f = by_spec["cmapss/train_FD001.txt"][0].frame
    unit1 = f[(f["series"] == "1") & (f["tag"] == "T24")].sort_values("row")
    assert unit1["value"].iloc[0] == 641.82  # first line of train_FD001.txt
    assert unit1["timestamp"].iloc[0] == pd.Timestamp("2000-01-01 01:00", tz="UTC")  # cycle 1
    assert len(unit1) == 192  # unit 1 runs 192 cycles to failure
    m, by_spec = _load(next(p for p in MANIFESTS if p.stem == "steel_energy"))
    f = by_spec["steel_energy/Steel_industry_data.csv"][0].frame
    first = f[f["tag"] == "Usage_kWh"].sort_values("row").iloc[0]
    assert first["value"] == 3.17 and first["timestamp"] == pd.Timestamp("2017-12-31 15:15", tz="UTC")  # 00:15 KST


def test_real_manifests_build_one_corpus(tmp_path):
    """One command builds a real multi-plant corpus from the shared data folder (nothing copied into the repo)."""
    import json

    from fm.cli import main

    out = tmp_path / "real"
    rc = main(["prep", "build", "--out", str(out), "--data-root", str(DATA), "--num-proc", "2",
               *map(str, real_manifest_paths())])
    assert rc == 3  # NAB repeats one hour: 12 rows quarantined as duplicate timestamps
    m = json.loads((out / "manifest.json").read_text())
    assert set(m["plants"]) == {"skab", "cnc_mill", "cmapss_fd001", "steel_energy", "ett_h1", "ett_h2",
                                "nab_machine_temperature"}
    assert m["plants"]["nab_machine_temperature"]["quarantined"] == 12
    for pid, p in m["plants"].items():
        assert p["kept"] + p["repaired"] + p["quarantined"] == p["rows_in"], pid
        assert p["splits"]["train"]["tokens"] > 0, pid
    assert m["plants"]["cmapss_fd001"]["splits"]["train"]["series"] == 100  # one series per engine
    assert m["plants"]["cnc_mill"]["splits"]["train"]["missing_pct"] < 1.0  # the 100 ms grid is kept
    for f in out.rglob("*"):  # lineage points into the data root, not into this machine's layout
        if f.name == "part.json":
            assert all(not i["file"].startswith("..") for i in json.loads(f.read_text())["inputs"])


def test_arrow_and_pandas_readers_give_the_same_real_corpus(tmp_path, monkeypatch):
    """End to end on the real files: the Arrow reading path and the pandas one build byte-identical shards
    and identical ingest reports for all seven plants."""
    import json

    from data_prep import readers
    from data_prep.corpus import PrepConfig, build_corpus

    built = {}
    for fast in (True, False):
        monkeypatch.setattr(readers, "ARROW_FAST_PATH", fast)
        out = tmp_path / f"fast_{fast}"
        m = build_corpus(real_manifest_paths(), out, PrepConfig(), log=lambda *_: None, data_root=DATA)
        reports = {p.parent.name: json.loads(p.read_text()) for p in sorted((out / "parts").glob("*/report.json"))}
        built[fast] = (m["shards"], reports)
    assert len(built[True][1]) == 7
    assert built[True][0] == built[False][0]  # shard name -> sha256
    assert built[True][1] == built[False][1]  # every plant's counts, per file and per rule
