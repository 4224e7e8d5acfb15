"""Corpus builds: deterministic, resumable after a kill, parallel and sharded builds equal to one build."""

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
import yaml

from data_prep import corpus as corpus_mod
from data_prep.corpus import PrepConfig, build_corpus, build_parts, merge
from data_prep.manifest import load_manifest
from fm.cli import main


def _hashes(out):
    m = json.loads((out / "manifest.json").read_text())
    arrow = {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "data").rglob("*.arrow"))}
    return m["content_hash"], arrow


@pytest.fixture(scope="module")
def reference(tmp_path_factory, manifests):
    out = tmp_path_factory.mktemp("ref") / "corpus"
    build_corpus(manifests, out, PrepConfig(), log=lambda *_: None)
    return _hashes(out)


def test_two_builds_are_byte_identical(reference, corpus):
    assert _hashes(corpus) == reference
    assert reference[1]  # there are shards to compare


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def test_parallel_build_equals_single(reference, manifests, tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_mod, "_POOL_MIN_BYTES", 0)  # the test plants are small: use the pool anyway
    out, logs = tmp_path / "c", []
    before = _children_cpu_s()
    build_corpus(manifests, out, PrepConfig(), num_proc=2, log=logs.append)
    assert _children_cpu_s() > before  # worker processes did the parts
    assert f"{corpus_mod.PARTS_IN} 2 worker processes" in logs
    assert _hashes(out) == reference


def test_small_inputs_use_threads_not_a_worker_pool(reference, manifests, tmp_path, monkeypatch):
    """A few MB of raw input with num_proc > 1 are built in threads of this process (a pool of processes
    costs more than it saves there): no child process runs, the parts run on two threads, under the C-heap
    Arrow pool, which is restored afterwards; the corpus is the one a single thread builds."""
    import threading

    import pyarrow as pa

    assert corpus_mod._raw_bytes([load_manifest(p) for p in manifests]) < corpus_mod._POOL_MIN_BYTES
    threads, pools = set(), set()
    real = corpus_mod.prep_plant

    def spy(*args, **kwargs):
        threads.add(threading.get_ident())
        pools.add(pa.default_memory_pool().backend_name)
        time.sleep(0.05)  # long enough that the second worker thread takes a plant
        return real(*args, **kwargs)

    monkeypatch.setattr(corpus_mod, "prep_plant", spy)
    pool_before = pa.default_memory_pool().backend_name
    out, logs = tmp_path / "c", []
    before = _children_cpu_s()
    build_corpus(manifests, out, PrepConfig(), num_proc=2, log=logs.append)
    assert _children_cpu_s() == before and f"{corpus_mod.PARTS_IN} 2 threads" in logs
    assert len(threads) == 2 and threading.get_ident() not in threads
    assert pools == {pa.system_memory_pool().backend_name} and pa.default_memory_pool().backend_name == pool_before
    assert _hashes(out) == reference


def test_small_plants_share_one_memory_trim(reference, manifests, tmp_path, monkeypatch):
    """Small plants hand memory back once the input read since the last trim reaches the threshold, not
    after every plant, and once more before the merge: with the threshold at the first two plants' input,
    one trim after the second part and one after the third. The corpus is the same."""
    sizes = [corpus_mod._raw_bytes([load_manifest(p)]) for p in manifests]  # built in this order
    assert max(sizes) < sizes[0] + sizes[1]  # no single file reaches the threshold (no in-plant trims)
    monkeypatch.setattr(corpus_mod, "_TRIM_AFTER_BYTES", sizes[0] + sizes[1])
    calls = []
    real = corpus_mod._release_memory
    monkeypatch.setattr(corpus_mod, "_release_memory", lambda: (calls.append(corpus_mod._unreleased_input[0]), real()))
    monkeypatch.setattr(corpus_mod, "_unreleased_input", [0])  # whatever ran before in this process
    build_corpus(manifests, tmp_path / "c", PrepConfig(), log=lambda *_: None)
    assert calls == [sizes[0] + sizes[1], sizes[2]]
    assert _hashes(tmp_path / "c") == reference


def test_shards_then_merge_equal_single(reference, manifests, tmp_path):
    out = tmp_path / "c"
    seen = []
    for i in range(2):
        seen += [p["plant_id"] for p in build_parts(manifests, out, PrepConfig(), shard_index=i, num_shards=2, log=lambda *_: None)]
    assert sorted(seen) == ["kiln_a", "line_c", "pump_b"]  # every plant in exactly one shard
    assert not (out / "manifest.json").exists()
    merge(manifests, out, PrepConfig(), log=lambda *_: None)
    assert _hashes(out) == reference


def test_merge_refuses_missing_part(manifests, tmp_path):
    out = tmp_path / "c"
    build_parts(manifests, out, PrepConfig(), shard_index=0, num_shards=3, log=lambda *_: None)
    with pytest.raises(FileNotFoundError, match="no finished part"):
        merge(manifests, out, PrepConfig(), log=lambda *_: None)


def test_resume_after_kill(reference, manifests, tmp_path):
    out = tmp_path / "c"
    cmd = [sys.executable, "-m", "fm.cli", "prep", "build", "--out", str(out), *map(str, manifests)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "parts" / "kiln_a" / "part.json"
    deadline = time.time() + 120
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    assert not (out / "manifest.json").exists()
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 3, r.stderr  # done, with the sim's quarantined rows
    assert "kiln_a: reused" in r.stdout
    assert _hashes(out) == reference
    assert not list((out / "parts" / ".tmp").glob("*"))  # the killed run's staging folder is gone


def test_changed_recipe_rebuilds_part(manifests, tmp_path):
    out = tmp_path / "c"
    logs = []
    build_corpus(manifests[:1], out, PrepConfig(), log=logs.append)
    build_corpus(manifests[:1], out, PrepConfig(), log=logs.append)
    build_corpus(manifests[:1], out, PrepConfig(context_prefix=256), log=logs.append)
    verbs = [line.split(": ")[1].split(";")[0] for line in logs if line.startswith("[prep] kiln_a")]
    assert verbs == ["built", "reused", "built"]


def _verbs(logs: list[str]) -> dict[str, str]:
    return {line.split()[1].rstrip(":"): line.split(": ")[1].split(";")[0] for line in logs if " rows -> " in line}


def _edit_line_csv(path, delta: float) -> None:
    """Change one reading of the line's export (the same plant, new bytes)."""
    lines = path.read_text().splitlines()
    cells = lines[100].split(",")
    cells[1] = f"{float(cells[1]) + delta:.2f}"
    lines[100] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def test_changed_raw_file_rebuilds_its_part(plants_dir, tmp_path, monkeypatch):
    """A plant whose raw file changed after its part was built is built again (the others are reused), and
    the result equals a fresh build of the new files; a file with new times but the same bytes is reused,
    and the run after that reuses it without hashing the raw files again."""
    src = tmp_path / "plants"
    shutil.copytree(plants_dir, src)
    ms = sorted(src.glob("*/plant.yaml"))
    raw = src / "line_c" / "raw" / "line_power.csv"
    out, logs = tmp_path / "c", []
    build_corpus(ms, out, PrepConfig(), log=logs.append)
    _edit_line_csv(raw, 5.0)
    logs.clear()
    build_corpus(ms, out, PrepConfig(), log=logs.append)
    assert _verbs(logs) == {"kiln_a": "reused", "line_c": "built", "pump_b": "reused"}
    m = json.loads((out / "manifest.json").read_text())
    assert m["plants"]["line_c"]["inputs"][0]["sha256"] == hashlib.sha256(raw.read_bytes()).hexdigest()
    assert "inputs_stat" not in m["plants"]["line_c"]  # the files' times stay out of the corpus
    fresh = tmp_path / "fresh"
    build_corpus(ms, fresh, PrepConfig(), log=lambda *_: None)
    assert _hashes(out) == _hashes(fresh)

    os.utime(raw, ns=(raw.stat().st_atime_ns, raw.stat().st_mtime_ns + 10**9))  # touched: same bytes
    hashed = []
    real = corpus_mod.sha256_file
    monkeypatch.setattr(corpus_mod, "sha256_file", lambda p: (hashed.append(Path(p).name), real(p))[1])
    logs.clear()
    build_corpus(ms, out, PrepConfig(), log=logs.append)
    assert _verbs(logs) == {"kiln_a": "reused", "line_c": "reused", "pump_b": "reused"}
    assert "line_power.csv" in hashed  # new times: the bytes decided
    hashed.clear()
    build_corpus(ms, out, PrepConfig(), log=logs.append)
    assert not [h for h in hashed if not h.endswith(".arrow")]  # now known: no raw file hashed again
    assert _hashes(out) == _hashes(fresh)


def test_merge_refuses_parts_of_changed_raw_files(plants_dir, tmp_path):
    src = tmp_path / "plants"
    shutil.copytree(plants_dir, src)
    ms = sorted(src.glob("*/plant.yaml"))
    build_parts(ms, tmp_path / "c", PrepConfig(), log=lambda *_: None)
    _edit_line_csv(src / "line_c" / "raw" / "line_power.csv", -3.0)
    with pytest.raises(ValueError, match="raw or label files of plant line_c changed"):
        merge(ms, tmp_path / "c", PrepConfig(), log=lambda *_: None)


def test_changed_label_file_rebuilds_its_part(plants_dir, tmp_path):
    src = tmp_path / "plants"
    shutil.copytree(plants_dir, src)
    mp = src / "kiln_a" / "plant.yaml"
    out, logs = tmp_path / "c", []
    build_corpus([mp], out, PrepConfig(), log=logs.append)
    labels = src / "kiln_a" / "labels" / "quality.csv"
    lines = labels.read_text().splitlines()
    lines[1] = lines[1][:-1] + ("0" if lines[1].endswith("1") else "1")  # one batch re-graded (passed flips)
    labels.write_text("\n".join(lines) + "\n")
    logs.clear()
    build_corpus([mp], out, PrepConfig(), log=logs.append)
    assert _verbs(logs) == {"kiln_a": "built"}
    assert (out / "labels" / "kiln_a" / "quality.csv").read_bytes() == labels.read_bytes()


def test_new_file_in_a_glob_rebuilds_the_part(plants_dir, tmp_path):
    """A folder of per-run files (a glob in the manifest) that gains a file makes the part stale."""
    src = tmp_path / "plants"
    shutil.copytree(plants_dir, src)
    mp = src / "line_c" / "plant.yaml"
    mp.write_text(mp.read_text().replace("path: raw/line_power.csv", "path: raw/line_*.csv"))
    raw = src / "line_c" / "raw" / "line_power.csv"
    out, logs = tmp_path / "c", []
    build_corpus([mp], out, PrepConfig(), log=logs.append)
    lines = raw.read_text().splitlines()
    (raw.parent / "line_power_2.csv").write_text("\n".join([lines[0], *lines[1:50]]) + "\n")  # a re-export of the first rows
    logs.clear()
    build_corpus([mp], out, PrepConfig(), log=logs.append)
    assert _verbs(logs) == {"line_c": "built"}
    inputs = json.loads((out / "manifest.json").read_text())["plants"]["line_c"]["inputs"]
    assert [i["file"] for i in inputs] == ["raw/line_power.csv", "raw/line_power_2.csv"]


def test_dry_run_writes_nothing(manifests, tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["prep", "build", "--dry-run", "--out", str(out), *map(str, manifests)]) == 3
    assert not out.exists()
    text = capsys.readouterr().out
    assert "duplicate_timestamp" in text and "nothing written" in text


def test_dry_run_tells_which_parts_a_rerun_would_build(plants_dir, tmp_path, capsys):
    src = tmp_path / "plants"
    shutil.copytree(plants_dir, src)
    ms = sorted(src.glob("*/plant.yaml"))
    out = tmp_path / "c"
    build_corpus(ms, out, PrepConfig(), log=lambda *_: None)
    _edit_line_csv(src / "line_c" / "raw" / "line_power.csv", 1.0)
    pump = next((src / "pump_b" / "raw").iterdir())
    os.utime(pump, ns=(pump.stat().st_atime_ns, pump.stat().st_mtime_ns + 10**9))  # touched, same bytes
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["prep", "build", "--dry-run", "--out", str(out), *map(str, ms)]) == 3
    text = capsys.readouterr().out
    assert "2 part(s) would be reused and 1 built: line_c (raw or label files changed)" in text
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing written, not even a digest


def test_bad_file_is_quarantined_and_the_rest_goes_on(plants_dir, tmp_path, capsys):
    root = tmp_path / "plants"
    shutil.copytree(plants_dir, root)
    man = yaml.safe_load((root / "line_c/plant.yaml").read_text())
    man["files"].append({"path": "raw/broken.parquet", "format": "long_parquet"})
    (root / "line_c/plant.yaml").write_text(yaml.safe_dump(man))
    (root / "line_c/raw/broken.parquet").write_bytes(b"PAR1 this is not a parquet file")
    out = tmp_path / "c"
    rc = main(["prep", "build", "--out", str(out), *map(str, sorted(root.glob("*/plant.yaml")))])
    assert rc == 3
    m = json.loads((out / "manifest.json").read_text())
    assert m["plants"]["line_c"]["files_quarantined"] == 1
    assert m["plants"]["line_c"]["splits"]["train"]["series"] == 1  # the good file still made it
    report = (out / "parts/line_c/report.txt").read_text()
    assert "raw/broken.parquet: FILE QUARANTINED" in report


def test_clean_build_exits_zero(plants_dir, tmp_path):
    # pump_b has repaired (masked) values but no quarantined row
    assert main(["prep", "build", "--out", str(tmp_path / "c"), str(plants_dir / "pump_b/plant.yaml")]) == 0


def test_held_out_plants(manifests, tmp_path):
    out = tmp_path / "c"
    m = build_corpus(manifests, out, PrepConfig(held_out_plants=["pump_b"]), log=lambda *_: None)
    dd = datasets.load_from_disk(str(out / "data"))
    assert [r["plant_id"] for r in dd["heldout"]] == ["pump_b"]
    assert "pump_b" not in {r["plant_id"] for s in ("train", "validation", "test") for r in dd[s]}
    assert m["splits"]["heldout"]["steps"] == m["plants"]["pump_b"]["splits"]["heldout"]["steps"] > 0
    with pytest.raises(ValueError, match="without a manifest"):
        build_corpus(manifests, out, PrepConfig(held_out_plants=["nowhere"]), log=lambda *_: None)
