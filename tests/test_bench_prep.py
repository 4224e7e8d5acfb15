"""Smoke test of scripts/bench_prep.py (--quick): it runs, writes JSON rows for both methods and prints the
ratios. No timing assertions: throughput depends on the machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_prep.py"


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench_prep") / "out.json"
    p = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True, text=True,
                       timeout=300, cwd=SCRIPT.parents[1])
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(out.read_text()), p.stdout


def _rows(result: dict, method: str) -> list[dict]:
    return [r for r in result["rows"] if r["method"] == method]


def test_help_runs_nothing():
    p = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "--quick" in p.stdout and "inputs written" not in p.stdout


def test_quick_maxfm_rows(quick):
    result, stdout = quick
    rows = _rows(result, "maxfm")
    assert {r["input"] for r in rows} == {"1x", "10x plants", "10x history"}
    for r in rows:
        assert r["points"] > 0 and r["mb"] > 0 and r["validation"] is True
        assert r["mpoints_s"] > 0 and r["mb_s"] > 0 and r["peak_rss_mb"] >= r["rss_imports_mb"] > 0
    par = _rows(result, "maxfm_par")
    assert {r["input"] for r in par} == {"1x", "10x plants", "10x history"}
    assert all(r["num_proc"] >= 2 and r["validation"] is True and r["mpoints_s"] > 0 for r in par)
    # the --quick inputs are below the worker pool's 8 MB: the plants were prepared in threads, no worker process
    assert all(r["parallel"] == "threads" and r["worker_peak_rss_mb"] is None for r in par)
    assert all(r["parallel"] is None for r in rows)
    assert "ratio" in stdout


def test_quick_baseline_rows(quick):
    pytest.importorskip("gluonts", reason="the Chronos-style baseline needs gluonts (optional: pip install -e .[bench])")
    result, stdout = quick
    rows = _rows(result, "baseline")
    assert {r["input"] for r in rows} == {"1x", "10x plants", "10x history"}
    for r in rows:
        assert r["validation"] is False and r["mpoints_s"] > 0 and r["mb_s"] > 0 and r["peak_rss_mb"] > 0
    assert all(v is not None and v > 0 for v in result["ratios"]["throughput"].values())
    assert "ratio" in stdout
