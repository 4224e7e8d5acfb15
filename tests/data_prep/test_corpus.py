import json

import datasets
import numpy as np
import pandas as pd
import pytest

from data_prep.corpus import PrepConfig, build_corpus, write_quarantine
from data_prep.tokenizer import TokenizerSpec


def test_corpus_layout_and_manifest(corpus):
    m = json.loads((corpus / "manifest.json").read_text())
    assert m["tokenizer"] == TokenizerSpec().to_dict()
    assert set(m["plants"]) == {"kiln_a", "pump_b", "line_c"}
    dd = datasets.load_from_disk(str(corpus / "data"))
    assert set(dd) == {"train", "validation", "test"}  # no held-out plant: that split is absent
    assert m["splits"]["heldout"]["series"] == 0
    for s in ("train", "validation", "test"):
        assert len(dd[s]) == m["splits"][s]["series"] == 3
        assert m["splits"][s]["tokens"] == sum(p["splits"][s]["tokens"] for p in m["plants"].values())
    assert m["shards"] and all(len(h) == 64 for h in m["shards"].values())
    for p in m["plants"].values():
        assert p["inputs"][0]["sha256"] and p["inputs"][0]["rows"] > 0


def test_every_input_row_accounted(corpus, plants_dir):
    m = json.loads((corpus / "manifest.json").read_text())
    raw_rows = {
        "kiln_a": len(pd.read_csv(plants_dir / "kiln_a/raw/kiln_export.csv", sep=";")),
        "pump_b": len(pd.read_parquet(plants_dir / "pump_b/raw/pump_history.parquet")),
        "line_c": len(pd.read_csv(plants_dir / "line_c/raw/line_power.csv")),
    }
    for pid, p in m["plants"].items():
        assert p["rows_in"] == raw_rows[pid]
        assert p["kept"] + p["repaired"] + p["quarantined"] == p["rows_in"]
        q = pd.read_csv(corpus / "parts" / pid / "quarantine.csv")
        assert len(q) == p["quarantined"]
    assert m["plants"]["line_c"]["quarantined"] == 2  # the two duplicated export rows
    assert m["plants"]["pump_b"]["repaired"] == 6  # the six 999 spikes
    rep = json.loads((corpus / "parts/kiln_a/report.json").read_text())
    assert rep["files"][0]["repaired_cells"] == {"non_numeric": 5, "stuck": 240}
    assert "kept" in (corpus / "parts/kiln_a/report.txt").read_text()


@pytest.mark.parametrize("rows", [0, 1, 5])
def test_quarantine_writer_matches_pandas(tmp_path, rows):
    """quarantine.csv is written without pandas; the bytes must stay what ``to_csv(index=False)`` writes,
    for file names and reasons that need quoting (delimiter, quotes, line breaks) and non-ASCII text."""
    names = ["raw/a.csv", 'raw/odd, "name".csv', "raw/zone\nbreak.csv", "Öfen/ü.parquet", "plain"]
    reasons = ["duplicate_timestamp", "bad_timestamp: '31.02.'", 'text "Inp OutRange", col 3', "über\r\nlimit", ""]
    q = pd.concat([pd.DataFrame({"file": names[i], "row": np.array([i, 10 * i + 7]), "reason": [reasons[i], reasons[-1 - i]]})
                   for i in range(rows)] or [pd.DataFrame(columns=["file", "row", "reason"])], ignore_index=True)
    write_quarantine(q, tmp_path / "ours.csv")
    q.to_csv(tmp_path / "pandas.csv", index=False)
    assert (tmp_path / "ours.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
    assert len(pd.read_csv(tmp_path / "ours.csv", keep_default_na=False)) == 2 * rows


def test_splits_are_by_time_and_do_not_overlap(corpus):
    dd = datasets.load_from_disk(str(corpus / "data"))
    by = {s: {r["series_id"]: r for r in dd[s]} for s in ("train", "validation", "test")}
    for sid, tr in by["train"].items():
        t_train_end = pd.Timestamp(tr["start"]) + pd.Timedelta(seconds=tr["interval_s"] * len(tr["values"][0]))
        va, te = by["validation"][sid], by["test"][sid]
        va_first_target = pd.Timestamp(va["start"]) + pd.Timedelta(seconds=va["interval_s"] * va["prefix_len"])
        te_first_target = pd.Timestamp(te["start"]) + pd.Timedelta(seconds=te["interval_s"] * te["prefix_len"])
        va_end = pd.Timestamp(va["start"]) + pd.Timedelta(seconds=va["interval_s"] * len(va["values"][0]))
        assert va_first_target == t_train_end
        assert te_first_target == va_end
        assert tr["prefix_len"] == 0 and va["prefix_len"] == 512


def test_scaling_uses_train_statistics_only(corpus):
    dd = datasets.load_from_disk(str(corpus / "data")).with_format("numpy")
    tr = next(r for r in dd["train"] if r["plant_id"] == "line_c")
    te = next(r for r in dd["test"] if r["plant_id"] == "line_c")
    np.testing.assert_array_equal(tr["loc"], te["loc"])
    np.testing.assert_array_equal(tr["scale"], te["scale"])
    vals, obs = np.stack(tr["values"]), np.stack(tr["observed"])
    for c in range(vals.shape[0]):
        assert abs(np.median(vals[c][obs[c]])) < 1e-5  # robust scaling centres the train median at 0
    assert not np.stack(tr["observed"]).all()  # gaps are in the mask, not filled


def test_slow_tag_held_for_its_interval(corpus):
    dd = datasets.load_from_disk(str(corpus / "data")).with_format("numpy")
    pump = next(r for r in dd["train"] if r["plant_id"] == "pump_b")
    ch = list(pump["channels"]).index("BRG_TEMP")
    obs = np.stack(pump["observed"])[ch]
    assert obs.mean() > 0.95  # 5-min samples cover the 1-min grid for their nominal interval


def test_other_tokenizer_spec_is_recorded(tmp_path, manifests):
    m = build_corpus(manifests[:1], tmp_path / "c", PrepConfig(tokenizer=TokenizerSpec(patch_len=8)), log=lambda *_: None)
    assert m["tokenizer"]["patch_len"] == 8 and m["tokenizer_hash"] != TokenizerSpec().hash


def test_recipe_yaml_rejects_unknown_keys(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("tokenizer: {patch_len: 8, colour: red}\n")
    with pytest.raises(ValueError, match="colour"):
        PrepConfig.from_yaml(p)


def test_gaps_are_reported(corpus):
    rep = json.loads((corpus / "parts/kiln_a/report.json").read_text())
    # the kiln export misses 3 h (180 one-minute steps) in one stretch
    assert rep["gaps"]["longest_steps"] == 180 and rep["gaps"]["count"] >= 1
    assert "gaps (no channel observed)" in (corpus / "parts/kiln_a/report.txt").read_text()


@pytest.mark.parametrize("n_rows,max_shard_size", [(3, "64MB"), (2501, "64MB"), (7, 500), (2501, 60_000)])
def test_split_writer_matches_save_to_disk(tmp_path, n_rows, max_shard_size):
    """The merge writes each split's files itself; they must be the files datasets' save_to_disk writes
    (shard count and boundaries, record batches of at most 1000 rows, schema metadata, state and info)."""
    from data_prep.corpus import FEATURES, rows_to_table, write_datasets_split

    rng = np.random.default_rng(n_rows)
    rows = []
    for i in range(n_rows):
        k, t = int(rng.integers(1, 4)), int(rng.integers(1, 40))
        rows.append({"series_id": f"p/a{i}", "plant_id": "p", "asset_id": f"a{i}", "stage": "s", "sharing": "public",
                     "start": "2026-01-01T00:00:00+00:00", "interval_s": 60.0, "prefix_len": 0,
                     "channels": [f"c{j}" for j in range(k)], "kinds": [0] * k, "units": ["u"] * k,
                     "loc": rng.normal(size=k).tolist(), "scale": rng.random(k).tolist(),
                     "values": rng.normal(size=(k, t)).astype(np.float32), "observed": rng.random((k, t)) > 0.2,
                     "lineage": [{"file": "f", "sha256": "0" * 64, "first_row": i, "last_row": i + t}]})
    table = rows_to_table(rows)
    ref = tmp_path / "ref"
    ds = datasets.Dataset(table, info=datasets.DatasetInfo(features=FEATURES), fingerprint="0123456789abcdef")
    datasets.disable_progress_bars()
    ds.save_to_disk(str(ref), max_shard_size=max_shard_size)
    ours = tmp_path / "ours"
    paths = write_datasets_split(table, ours, "0123456789abcdef", max_shard_size)
    ref_files = sorted(p.name for p in ref.iterdir())
    assert sorted(p.name for p in ours.iterdir()) == ref_files
    assert len(paths) == len(ref_files) - 2 and (len(paths) > 1) == (max_shard_size != "64MB")
    for name in ref_files:
        assert (ours / name).read_bytes() == (ref / name).read_bytes(), name
    back = datasets.load_from_disk(str(ours)).with_format("numpy")
    assert len(back) == n_rows
    np.testing.assert_array_equal(back[n_rows - 1]["values"], np.asarray(rows[-1]["values"]))
