"""`fm demo`: the whole pipeline on the synthetic plants, at toy scale on CPU.

sim plants -> prep corpus -> pretrain (tiny) -> fine-tune energy forecasting -> evaluate vs seasonal
naive -> export -> load the export with transformers.AutoModel in a fresh process and compare outputs.
Each stage is the same `fm` command a user would type; the demo prints it before running it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from fm.cli import main as fm_main

REPO = Path(__file__).resolve().parents[1]

VERIFY = """
import json, sys, torch
import fm  # registers MAX-FM with the Auto classes
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1]).eval()
g = torch.Generator().manual_seed(0)
x = torch.randn(2, 3, 256, generator=g)
with torch.no_grad():
    q = model(x).quantiles
torch.save(q, sys.argv[2])
print(json.dumps({"class": type(model).__name__}))
"""


def verify_in_fresh_process(folder: Path, work: Path) -> float:
    """Load ``folder`` with AutoModel in a new interpreter; return max |difference| to the in-process model."""
    import torch

    from fm.model import MaxFMModel

    out = work / "verify_outputs.pt"
    subprocess.run([sys.executable, "-c", VERIFY, str(folder), str(out)], check=True, capture_output=True, text=True)
    fresh = torch.load(out, weights_only=True)
    model = MaxFMModel.from_pretrained(str(folder)).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 256, generator=g)
    with torch.no_grad():
        mine = model(x).quantiles
    return float((fresh - mine).abs().max())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fm demo", description=__doc__)
    p.add_argument("--workdir", default="runs/demo")
    p.add_argument("--configs", default=str(REPO / "configs"))
    p.add_argument("--days", type=int, default=60, help="history of the synthetic energy line (days)")
    p.add_argument("--pretrain-steps", type=int, default=None, help="override configs/pretrain/demo.yaml max_steps")
    p.add_argument("--finetune-steps", type=int, default=None, help="override configs/finetune/energy.yaml max_steps")
    a = p.parse_args(argv)
    w = Path(a.workdir)
    cfg = Path(a.configs)
    w.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def stage(name: str, args: list[str], ok: tuple[int, ...] = (0,)) -> None:
        print(f"\n=== [{len(timings) + 1}/7] {name}\n$ fm {' '.join(args)}", flush=True)
        t0 = time.perf_counter()
        rc = fm_main(args)
        timings[name] = time.perf_counter() - t0
        if rc not in ok:
            raise SystemExit(f"fm demo: stage {name!r} failed (exit {rc})")

    def overrides(root: Path, steps: int | None) -> list[str]:
        o = ["--trainer.default_root_dir", str(root), "--trainer.logger.init_args.save_dir", str(root)]
        return o + (["--trainer.max_steps", str(steps)] if steps else [])

    stage("synthetic plants", ["prep", "sim", "--out", str(w / "plants"), "--days", str(a.days)])
    manifests = sorted(str(m) for m in (w / "plants").glob("*/plant.yaml"))
    # Exit 3 = built, with quarantined rows: the synthetic plants carry duplicated export rows on purpose.
    stage("prep corpus", ["prep", "build", "--out", str(w / "corpus"), "--recipe", str(cfg / "data/corpus.yaml"), *manifests],
          ok=(0, 3))
    stage(
        "pretrain",
        ["pretrain", "--config", str(cfg / "model/tiny.yaml"), "--config", str(cfg / "pretrain/demo.yaml"),
         "--data.corpus", str(w / "corpus"), *overrides(w / "pretrain", a.pretrain_steps)],
    )
    stage(
        "finetune energy",
        ["finetune", "--config", str(cfg / "finetune/energy.yaml"), "--model.init_from", str(w / "pretrain/hf"),
         "--data.corpus", str(w / "corpus"), *overrides(w / "finetune_energy", a.finetune_steps)],
    )
    stage(
        "evaluate",
        ["evaluate", "--model", str(w / "finetune_energy/hf"), "--corpus", str(w / "corpus"), "--plants", "line_c",
         "--out", str(w / "eval/energy_test.json")],
    )
    release = w / "release/maxfm-tiny-energy"
    stage(
        "export",
        ["export", "--checkpoint", str(w / "finetune_energy/hf"), "--out", str(release), "--name", "maxfm-tiny-energy",
         "--corpus", str(w / "corpus"), "--metrics", str(w / "eval/energy_test.json")],
    )
    print("\n=== [7/7] load the release with transformers.AutoModel in a fresh process", flush=True)
    t0 = time.perf_counter()
    diff = verify_in_fresh_process(release, w)
    timings["fresh-process load"] = time.perf_counter() - t0
    if diff != 0.0:
        raise SystemExit(f"fm demo: the reloaded model differs from the in-memory one (max |diff| = {diff})")

    res = json.loads((w / "eval/energy_test.json").read_text())
    corpus = json.loads((w / "corpus/manifest.json").read_text())
    print("\n=== MAX-FM demo: done\n")
    print("artifacts")
    for label, path in [
        ("synthetic plants", w / "plants"),
        ("corpus (Arrow + manifest.json)", w / "corpus"),
        ("ingest reports", w / "corpus/parts/*/report.txt"),
        ("pretrained export", w / "pretrain/hf"),
        ("fine-tuned export", w / "finetune_energy/hf"),
        ("metrics", w / "eval/energy_test.json"),
        ("release (AutoModel-loadable)", release),
    ]:
        print(f"  {label:<32}{path}")
    print("\nresults")
    print(f"  {'corpus train tokens':<32}{corpus['splits']['train']['tokens']:,}")
    print(f"  {'energy test MASE (model/naive)':<32}{res['model']['MASE']:.3f} / {res['seasonal_naive']['MASE']:.3f}")
    print(f"  {'energy test WQL  (model/naive)':<32}{res['model']['WQL']:.3f} / {res['seasonal_naive']['WQL']:.3f}")
    print(f"  {'reload max |diff|':<32}{diff:g}")
    print("\ntime per stage (s)")
    for k, v in timings.items():
        print(f"  {k:<32}{v:8.1f}")
    print(f"  {'total':<32}{sum(timings.values()):8.1f}")
    return 0
