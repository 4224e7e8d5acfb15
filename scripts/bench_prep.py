"""Benchmark of corpus preparation: MAX-FM ``build_corpus`` next to a Chronos-style conversion.

Both sides convert the same raw files of the synthetic plants (``data_prep.sim.plants.make_plants``):

* **MAX-FM**: ``data_prep.corpus.build_corpus(manifests, out, PrepConfig(), num_proc=1)``: read, validate
  (every row kept / repaired / quarantined with a reason), align, scale, split, write Arrow + manifest.
  Run twice: in one process, and with ``num_proc`` = the usable CPU cores (at least 2), which is how the
  builder is meant to run on a machine with several cores (plants are prepared in parallel: worker
  processes from 8 MB of raw input on, threads of the one process below that).
* **Chronos-style baseline**: what Chronos's training-data conversion does (``convert_to_arrow`` in the
  chronos-forecasting README): read each file with pandas (wide CSV with the manifest's delimiter and
  decimal mark; long Parquet pivoted to wide), one univariate series per tag (start timestamp + float32
  target, after ``resample(<tag interval>).mean()``), written per plant with
  ``gluonts.dataset.arrow.ArrowWriter(compression="lz4").write_to_file(list_of_dicts, path)``. No
  validation (limits, stuck sensors, duplicates, row accounting): Chronos does none.

Input sizes: ``1x`` = ``make_plants(seed=0, days=D)``; ``10x plants`` = ten plant sets (seeds 0..9,
plant ids suffixed ``_s<seed>``), the way a corpus grows over many plants; ``10x history`` =
``make_plants(days=10*D)``, the same plants with ten times the history.

Every (method, input) runs in a fresh subprocess, so peak RSS (``ru_maxrss``) belongs to that run alone;
the child's RSS right after its imports is reported too. Points = numeric cells of the raw input (rows x
tag columns for wide files, records for long files); MB = raw input bytes on disk (10^6 bytes).

    python scripts/bench_prep.py                 # default sizes (D=60)
    python scripts/bench_prep.py --quick         # small sizes (CI smoke test)
    python scripts/bench_prep.py --repeat 3 --json bench_prep.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _memory import peak_rss_mb, proc_status_mb  # scripts/_memory.py (the script's folder is on sys.path)


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


NUM_PROC = max(2, _usable_cpus())
METHODS = ("maxfm", "maxfm_par", "baseline")
MAXFM = ("maxfm", "maxfm_par")
LABELS = {"maxfm": "MAX-FM (validation on)", "maxfm_par": f"MAX-FM (validation on, --num-proc {NUM_PROC})",
          "baseline": "Chronos-style (no validation)"}
SIZES = ("1x", "10x plants", "10x history")
COPIES = 10
FLAT_RSS = 1.25
"""RSS(10x)/RSS(1x) at or below this counts as flat memory in the verdict lines."""
TARGET_SPEEDUP = 3.0
INSTALL_HINT = "gluonts is not installed: the Chronos-style baseline is skipped (rows n/a); pip install -e .[bench] to run it"


# ---------------------------------------------------------------------------------------------- child
def _rss_now_mb() -> float | None:
    return proc_status_mb("VmRSS") or peak_rss_mb()


def _hwm_mb() -> float | None:
    return proc_status_mb("VmHWM")


def _peak_rss_mb() -> float:
    return peak_rss_mb()


def _baseline_plant(manifest_path: Path, out: Path) -> int:
    """Chronos-style conversion of one plant's raw files into one GluonTS Arrow file; returns #series."""
    import numpy as np
    import pandas as pd
    import yaml
    from gluonts.dataset.arrow import ArrowWriter

    m = yaml.safe_load(manifest_path.read_text())
    interval = {t["name"]: float(t["interval_s"]) for t in m["tags"]}
    series = []
    for f in m["files"]:
        path = manifest_path.parent / f["path"]
        tcol = f.get("timestamp_column", "timestamp")
        if f["format"] == "wide_csv":
            decimal = f.get("decimal", ".")
            df = pd.read_csv(path, sep=f.get("delimiter", ","), decimal=decimal)
            index = pd.to_datetime(df[tcol], format=f.get("timestamp_format"))
            cols = {}
            for c in (c for c in df.columns if c in interval):
                s = df[c]
                if not pd.api.types.is_numeric_dtype(s):  # text in the column: pandas left its decimal marks alone
                    s = s.astype("string").str.replace(decimal, ".", regex=False)
                cols[c] = pd.to_numeric(s, errors="coerce")
            wide = pd.DataFrame(cols).set_index(pd.DatetimeIndex(index))
        elif f["format"] in ("long_parquet", "long_csv"):
            df = pd.read_parquet(path) if f["format"] == "long_parquet" else pd.read_csv(path)
            tag, val = f.get("tag_column", "tag"), f.get("value_column", "value")
            df[tcol] = pd.to_datetime(df[tcol])
            df = df.drop_duplicates([tcol, tag], keep="last")  # pivot refuses duplicate (time, tag) pairs
            wide = df.pivot(index=tcol, columns=tag, values=val)
            wide = wide[[c for c in wide.columns if c in interval]]
        else:
            raise ValueError(f"{manifest_path}: format {f['format']!r} is not covered by the baseline")
        for step in sorted({interval[c] for c in wide.columns}):
            names = [c for c in wide.columns if interval[c] == step]
            regular = wide[names].resample(pd.Timedelta(seconds=step)).mean()
            start = regular.index[0].tz_localize(None) if regular.index.tz is not None else regular.index[0]
            for c in names:
                series.append({"start": start.to_datetime64(), "target": regular[c].to_numpy(dtype=np.float32)})
    ArrowWriter(compression="lz4").write_to_file(series, path=out / f"{m['plant_id']}.arrow")
    return len(series)


def child(method: str, manifests: list[str], out: str) -> dict:
    """One measured run (in its own process). Prints nothing else on stdout."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if method in MAXFM:
        from data_prep.corpus import PARTS_IN, PrepConfig, build_corpus
    else:
        import numpy  # noqa: F401
        import pandas  # noqa: F401
        import pyarrow.parquet  # noqa: F401
        import yaml  # noqa: F401
        from gluonts.dataset.arrow import ArrowWriter  # noqa: F401
    rss_imports = _rss_now_mb()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    logs: list[str] = []
    if method in MAXFM:
        build_corpus(manifests, out_dir, PrepConfig(), num_proc=NUM_PROC if method == "maxfm_par" else 1, log=logs.append)
        n_out = None
    else:
        n_out = sum(_baseline_plant(Path(p), out_dir) for p in manifests)
    seconds = time.perf_counter() - t0
    # where the builder says it built the parts: worker processes, threads, or this process alone
    where = next((line for line in logs if line.startswith(PARTS_IN)), "") if method in MAXFM else ""
    parallel = "processes" if where.endswith("worker processes") else "threads" if where.endswith("threads") else None
    out_bytes = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    import resource

    # the largest worker process (Linux: KiB); none when the parts were built in threads of this process
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if parallel == "processes" else None
    return {"seconds": seconds, "rss_imports_mb": rss_imports, "peak_rss_mb": _peak_rss_mb(), "vm_hwm_mb": _hwm_mb(),
            "out_bytes": out_bytes, "series_out": n_out, "worker_peak_rss_mb": workers or None,
            "parallel": parallel}


# ---------------------------------------------------------------------------------------------- inputs
def _lines(path: Path) -> int:
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def count_input(manifests: list[Path]) -> dict:
    """Points (numeric cells) and bytes of the raw files the manifests name; counted once per size."""
    import pyarrow.parquet as pq
    import yaml

    points = size = files = 0
    for mp in manifests:
        m = yaml.safe_load(mp.read_text())
        tags = {t["name"] for t in m["tags"]}
        for f in m["files"]:
            path = mp.parent / f["path"]
            size += path.stat().st_size
            files += 1
            if f["format"] == "wide_csv":
                with open(path, encoding="utf-8-sig") as fh:
                    header = fh.readline().rstrip("\r\n").split(f.get("delimiter", ","))
                n_tags = sum(1 for h in header if h.strip() in tags)
                points += (_lines(path) - 1) * n_tags
            elif f["format"] == "long_parquet":
                points += pq.ParquetFile(path).metadata.num_rows
            else:
                points += _lines(path) - 1
    return {"points": points, "bytes": size, "files": files, "plants": len(manifests)}


def _rename_plant(manifest: Path, new_id: str) -> None:
    import yaml

    m = yaml.safe_load(manifest.read_text())
    m["plant_id"] = new_id
    manifest.write_text(yaml.safe_dump(m, sort_keys=False), encoding="utf-8")


def make_inputs(root: Path, days: int) -> dict[str, list[Path]]:
    import yaml

    from data_prep.sim.plants import make_plants

    inputs = {"1x": make_plants(root / "1x", seed=0, days=days)}
    many = []
    for seed in range(COPIES):
        for mp in make_plants(root / "10x_plants" / f"s{seed}", seed=seed, days=days):
            _rename_plant(mp, f"{yaml.safe_load(mp.read_text())['plant_id']}_s{seed}")
            many.append(mp)
    inputs["10x plants"] = many
    inputs["10x history"] = make_plants(root / "10x_history", seed=0, days=COPIES * days)
    return inputs


def prepare(root: Path, days: int) -> dict:
    """Child mode --prepare: write the inputs and count them (keeps pandas & co. out of the parent)."""
    inputs = make_inputs(root, days)
    return {size: {"manifests": [str(p) for p in ms], **count_input(ms)} for size, ms in inputs.items()}


# ---------------------------------------------------------------------------------------------- parent
# The parent imports nothing beyond the standard library: see _peak_rss_mb.
def _subprocess(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "TQDM_DISABLE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)


def _last_json(p: subprocess.CompletedProcess):
    return json.loads(p.stdout.strip().splitlines()[-1])


def _error(p: subprocess.CompletedProcess) -> str:
    return (p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1]


def run_child(method: str, manifests: list[str], out: Path) -> dict:
    try:
        p = _subprocess([str(Path(__file__).resolve()), "--child", method, "--manifests", json.dumps(manifests), "--out", str(out)])
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {"error": _error(p)} if p.returncode != 0 else _last_json(p)


def _has_gluonts() -> bool:
    return _subprocess(["-c", "import gluonts.dataset.arrow"]).returncode == 0


def _fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def _x(v) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def table(rows: list[dict]) -> str:
    head = ["method", "input", "points", "MB", "seconds", "Mpoints/s", "MB/s", "RSS after imports MB", "peak RSS MB"]
    body = [
        [LABELS[r["method"]], r["input"], f"{r['points']:,}", f"{r['mb']:.2f}", _fmt(r["seconds"], ".2f"),
         _fmt(r["mpoints_s"], ".3f"), _fmt(r["mb_s"], ".2f"), _fmt(r["rss_imports_mb"], ".0f"), _fmt(r["peak_rss_mb"], ".0f")]
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    sep = "|" + "|".join("-" * (w + 1) + ":" if i >= 2 else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), sep, *(line(b) for b in body)])


def ratios(rows: list[dict]) -> dict:
    by = {(r["method"], r["input"]): r for r in rows}

    def get(method, size, key):
        r = by.get((method, size))
        return None if r is None else r.get(key)

    out: dict = {"throughput": {}, "throughput_parallel": {}, "rss": {}}
    for size in SIZES:
        b = get("baseline", size, "mpoints_s")
        for key, method in (("throughput", "maxfm"), ("throughput_parallel", "maxfm_par")):
            a = get(method, size, "mpoints_s")
            out[key][size] = a / b if a and b else None
    for method in ("maxfm", "baseline"):  # the parallel run's workers are separate processes: see worker_peak_rss_mb
        for size in SIZES[1:]:
            p1, p10 = get(method, "1x", "peak_rss_mb"), get(method, size, "peak_rss_mb")
            i1, i10 = get(method, "1x", "rss_imports_mb"), get(method, size, "rss_imports_mb")
            peak = p10 / p1 if p1 and p10 else None
            growth = (p10 - i10) / (p1 - i1) if None not in (p1, p10, i1, i10) and p1 - i1 > 0 else None
            out["rss"][f"{method} {size}"] = {"peak": peak, "above_imports": growth}
    return out


def ratio_lines(rat: dict, methods: list[str]) -> str:
    lines = []
    for key, what in (("throughput", "one process"), ("throughput_parallel", f"--num-proc {NUM_PROC}")):
        if not any(v is not None for v in rat[key].values()):
            continue
        lines.append(f"throughput ratio MAX-FM ({what}) / Chronos-style (points/s; target >= {TARGET_SPEEDUP:g}x with validation on):")
        for size, v in rat[key].items():
            verdict = "" if v is None else ("  (target met)" if v >= TARGET_SPEEDUP else "  (target NOT met)")
            lines.append(f"  {size:<12} {_x(v)}{verdict}")
    lines.append(f"memory ratio RSS(10x) / RSS(1x) (flat = peak ratio <= {FLAT_RSS:g}):")
    for key, v in rat["rss"].items():
        method, size = key.split(" ", 1)
        if method not in methods:
            continue
        verdict = "" if v["peak"] is None else ("  (flat)" if v["peak"] <= FLAT_RSS else "  (NOT flat)")
        lines.append(f"  {LABELS[method]:<30} {size:<12} peak {_x(v['peak'])}, above imports {_x(v['above_imports'])}{verdict}")
    return "\n".join(lines)


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("pandas", "pyarrow", "datasets", "numpy", "gluonts"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench_prep.py",
        description="Corpus preparation benchmark: MAX-FM build_corpus (validation on) vs a Chronos-style "
                    "pandas + GluonTS ArrowWriter conversion of the same raw files, at 1x, 10x plants and 10x history.",
    )
    p.add_argument("--days", type=int, default=60, help="history of the 1x input (line: D days at 15 min; kiln, pump: D//3 days at 1 min)")
    p.add_argument("--repeat", type=int, default=1, help="runs per (method, input), each a fresh process; the fastest is reported "
                   "(peak RSS: the largest of the runs)")
    p.add_argument("--only", choices=METHODS, default=None, help="run one method only")
    p.add_argument("--json", default=None, metavar="PATH", help="write the results as JSON")
    p.add_argument("--quick", action="store_true", help="small sizes for a CI smoke test (--days 12)")
    p.add_argument("--workdir", default=None, help="where inputs and outputs go (default: a temporary folder, removed)")
    p.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    p.add_argument("--manifests", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--prepare", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.quick:
        a.days = 12
    if a.days < 1 or a.repeat < 1:
        p.error("--days and --repeat must be >= 1")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child, json.loads(a.manifests), a.out)))
        return 0
    if a.prepare:
        print(json.dumps(prepare(Path(a.prepare), a.days)))
        return 0
    methods = [a.only] if a.only else list(METHODS)
    if "baseline" in methods and not _has_gluonts():
        print(INSTALL_HINT, flush=True)
        methods = [m for m in methods if m != "baseline"]
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="bench_prep_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        p = _subprocess([str(Path(__file__).resolve()), "--prepare", str(work / "inputs"), "--days", str(a.days)])
        if p.returncode != 0:
            print(f"[bench_prep] could not write the inputs: {_error(p)}", file=sys.stderr)
            return 1
        info = _last_json(p)
        inputs = {size: info[size].pop("manifests") for size in SIZES}
        print(f"[bench_prep] inputs written in {time.perf_counter() - t0:.1f} s under {work / 'inputs'}: "
              + "; ".join(f"{s}: {i['plants']} plants, {i['points']:,} points, {i['bytes'] / 1e6:.2f} MB" for s, i in info.items()),
              flush=True)
        runs: dict[tuple[str, str], list[dict]] = {}
        for rep in range(a.repeat):  # interleaved, so a slow spell of the machine hits both methods
            for size in SIZES:
                for method in methods:
                    res = run_child(method, inputs[size], work / "out" / f"{method}-{size.replace(' ', '_')}-{rep}")
                    runs.setdefault((method, size), []).append(res)
                    msg = res["error"] if "error" in res else f"{res['seconds']:.2f} s, peak RSS {res['peak_rss_mb']:.0f} MB"
                    print(f"[bench_prep] run {rep + 1}/{a.repeat} {method:<9} {size:<11} {msg}", flush=True)
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)
    rows, failed = [], []
    for method in (*methods, *(["baseline"] if "baseline" not in methods and a.only not in MAXFM else [])):
        for size in SIZES:
            pts, mb = info[size]["points"], info[size]["bytes"] / 1e6
            row = {"method": method, "label": LABELS[method], "input": size, "points": pts, "mb": mb,
                   "validation": method in MAXFM, "num_proc": NUM_PROC if method == "maxfm_par" else 1, "seconds": None, "mpoints_s": None, "mb_s": None,
                   "rss_imports_mb": None, "peak_rss_mb": None, "repeats": a.repeat}
            ok = [r for r in runs.get((method, size), []) if "error" not in r]
            errs = [r["error"] for r in runs.get((method, size), []) if "error" in r]
            if errs:
                failed.append(f"{method} {size}: {errs[0]}")
                row["error"] = errs[0]
            if ok:
                best = min(ok, key=lambda r: r["seconds"])
                row.update(seconds=best["seconds"], mpoints_s=pts / best["seconds"] / 1e6, mb_s=mb / best["seconds"],
                           rss_imports_mb=max(r["rss_imports_mb"] for r in ok), peak_rss_mb=max(r["peak_rss_mb"] for r in ok),
                           vm_hwm_mb=max((r["vm_hwm_mb"] for r in ok if r["vm_hwm_mb"] is not None), default=None),
                           out_bytes=best["out_bytes"],
                           worker_peak_rss_mb=max((r.get("worker_peak_rss_mb") or 0 for r in ok), default=0) or None,
                           parallel=best.get("parallel"))
            rows.append(row)
    rat = ratios(rows)
    print()
    print(table(rows))
    print()
    print(ratio_lines(rat, methods))
    for f in failed:
        print(f"[bench_prep] FAILED {f}", file=sys.stderr)
    if a.json:
        result = {
            "command": " ".join(["python", "scripts/bench_prep.py", *(argv if argv is not None else sys.argv[1:])]),
            "days": a.days, "repeat": a.repeat, "copies": COPIES,
            "machine": {"processor": platform.processor(), "machine": platform.machine(), "cpus": os.cpu_count(),
                        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None},
            "versions": _versions(),
            "inputs": info, "rows": rows, "ratios": rat,
        }
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
