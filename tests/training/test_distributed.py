"""Two processes on CPU, for real: DDP under torchrun, DeepSpeed ZeRO-2 and ZeRO-3, and FSDP2 over gloo.

Each run trains the same tiny model on the same global batches (2 ranks x 8 windows = the single
process's 16); the exported models must score the same validation loss within tolerance, and ZeRO must
match DDP closely (same arithmetic, sharded).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fm.model import MaxFMModel
from tests.conftest import REPO, tiny_pretrain_args

pytestmark = pytest.mark.timeout(900)


def _run(launcher: list[str], corpus: Path, root: Path, devices: int, batch: int, strategy: str | None,
         steps: int = 8, extra: tuple[str, ...] = ()) -> Path:
    """Train 8 steps (the schedule's length; ``steps`` < 8 stops early, ``--resume last`` in ``extra`` goes on)."""
    args = [*tiny_pretrain_args(corpus, root, steps=steps), "--data.batch_size", str(batch), "--data.context_patches", "8",
            "--trainer.limit_val_batches", "0", "--trainer.devices", str(devices),
            "--model.optim.lr", "0.005", "--model.optim.warmup_steps", "0", "--model.optim.total_steps", "8",
            "--trainer.callbacks+=fm.training.callbacks.ThroughputMonitor", *extra]
    if strategy:
        args += ["--trainer.strategy", strategy]
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache/max-fm/torch_extensions")),
           "OMP_NUM_THREADS": "1"}
    r = subprocess.run([*launcher, "pretrain", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (r.stdout + r.stderr).count("HF export written") == 1  # rank zero alone prints
    summary = json.loads((root / "hf/training_summary.json").read_text())
    assert summary["global_step"] == steps and summary["world_size"] == devices
    return root / "hf"


def _grad_norms(export: Path) -> list[float]:
    """train/grad_norm per step from the run's metrics.csv (the run's root holds the export)."""
    import csv

    with next(export.parent.rglob("metrics.csv")).open() as f:
        return [float(r["train/grad_norm"]) for r in csv.DictReader(f) if r.get("train/grad_norm")]


def _val_loss(export: Path | None, corpus: Path) -> float:
    """Loss of an export on a fixed slice of validation windows (None: the untrained init, seed 0)."""
    from fm.data.windows import WindowDataset, WindowSpec, collate, open_split
    from fm.model import ArchConfig
    from fm.training.module import MaxFMModule

    if export is None:
        import yaml

        torch.manual_seed(0)
        arch = yaml.safe_load((REPO / "configs/model/tiny.yaml").read_text())["model"]["arch"]
        module = MaxFMModule(arch=ArchConfig(**arch)).eval()
    else:
        module = MaxFMModule(init_from=str(export)).eval()
    ds = WindowDataset(open_split(corpus, "validation"), WindowSpec(8, 4, 16, stride_patches=4, mask_ratio=0.15, seed=1))
    with torch.no_grad():
        return float(module.losses(collate([ds[i] for i in range(0, len(ds), max(1, len(ds) // 64))]))["loss"])


@pytest.fixture(scope="module")
def single(corpus, tmp_path_factory):
    return _run([sys.executable, "-m", "fm.cli"], corpus, tmp_path_factory.mktemp("single"), 1, 16, None)


@pytest.fixture(scope="module")
def ddp(corpus, tmp_path_factory):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    launcher = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "fm.cli"]
    return _run(launcher, corpus, tmp_path_factory.mktemp("ddp"), 2, 8, "ddp")


def test_ddp_under_torchrun_matches_single_process(single, ddp, corpus):
    a, b = _val_loss(single, corpus), _val_loss(ddp, corpus)
    init = _val_loss(None, corpus)
    assert init - a > 0.1 * init  # the runs did learn: the comparison below is not between two untrained models
    assert abs(a - b) / a < 0.02, (a, b, init)


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_zero_matches_ddp(stage, ddp, single, corpus, tmp_path):
    export = _run([sys.executable, "-m", "fm.cli"], corpus, tmp_path, 2, 8, f"deepspeed_stage_{stage}")
    # the gradient norm is logged under ZeRO too (from the engine), and it is DDP's
    g_zero, g_ddp = _grad_norms(export), _grad_norms(ddp)
    assert len(g_zero) == len(g_ddp) == 8
    assert g_zero == pytest.approx(g_ddp, rel=1e-3)
    zero, ref = MaxFMModel.from_pretrained(str(export)), MaxFMModel.from_pretrained(str(ddp))
    for (n, p), (_, q) in zip(zero.state_dict().items(), ref.state_dict().items(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-4, msg=n)
    a, b = _val_loss(single, corpus), _val_loss(export, corpus)
    assert abs(a - b) / a < 0.02, (a, b)
    ckpt = next(tmp_path.rglob("last.ckpt"))
    assert ckpt.is_dir()  # ZeRO writes a sharded checkpoint folder ...
    from fm.release.export import load_model

    consolidated = load_model(ckpt)  # ... which converts to one model, equal to the gathered export
    for (n, p), (_, q) in zip(consolidated.state_dict().items(), zero.state_dict().items(), strict=True):
        assert torch.equal(p, q), n


def test_deepspeed_launcher_runs_the_same_config(ddp, corpus, tmp_path):
    """`deepspeed --num_gpus 2 fm/cli.py pretrain ...` (it passes --local_rank=N, which fm ignores) trains
    the same model as torchrun + DDP."""
    launcher = shutil.which("deepspeed", path=str(Path(sys.executable).parent))
    export = _run([launcher, "--num_gpus", "2", "--master_port", "29631", "fm/cli.py"], corpus, tmp_path, 2, 8,
                  "deepspeed_stage_2")
    zero, ref = MaxFMModel.from_pretrained(str(export)), MaxFMModel.from_pretrained(str(ddp))
    for (n, p), (_, q) in zip(zero.state_dict().items(), ref.state_dict().items(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-4, msg=n)


def test_fsdp2_matches_ddp_and_resumes_across_strategies(ddp, corpus, tmp_path):
    """`--trainer.strategy fsdp` (FSDP2: parameters, gradients and optimizer state sharded over the 2 ranks)
    writes the checkpoint DDP writes (full weights, optimizer state in torch's numbering; weights-only
    loadable), and an FSDP2 run resumed from DDP's step-4 checkpoint ends where the uninterrupted DDP run
    does."""
    launcher = [sys.executable, "-m", "fm.cli"]
    _run(launcher, corpus, tmp_path / "ddp4", 2, 8, "ddp", steps=4)
    _run(launcher, corpus, tmp_path / "fsdp4", 2, 8, "fsdp", steps=4)
    ckpt_ddp, ckpt_fsdp = (next((tmp_path / r).rglob("last.ckpt")) for r in ("ddp4", "fsdp4"))
    assert ckpt_fsdp.is_file()
    a, b = (torch.load(c, map_location="cpu", weights_only=True) for c in (ckpt_ddp, ckpt_fsdp))
    assert a["global_step"] == b["global_step"] == 4
    for key in ("state_dict", "optimizer_states", "lr_schedulers"):
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=lambda m, key=key: f"{key}: {m}")  # same keys, numbering, shapes
    n_params = len(list(MaxFMModel.from_pretrained(str(ddp)).parameters()))
    assert len(b["optimizer_states"][0]["state"]) == n_params

    root = tmp_path / "fsdp_from_ddp"
    export = _run(launcher, corpus, root, 2, 8, "fsdp", steps=8, extra=("--resume", str(ckpt_ddp)))
    assert json.loads((export / "training_summary.json").read_text())["strategy"] == "FSDP2Strategy"
    import pandas as pd

    steps = pd.read_csv(next(root.rglob("metrics.csv")))["step"].dropna().astype(int).unique().tolist()
    assert steps == [4, 5, 6, 7]  # it went on from the checkpoint, not from scratch
    got, ref = MaxFMModel.from_pretrained(str(export)), MaxFMModel.from_pretrained(str(ddp))
    for (n, p), (_, q) in zip(got.state_dict().items(), ref.state_dict().items(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=n)


def _slurm_up() -> bool:
    if not shutil.which("sbatch"):
        return False
    r = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return r.returncode == 0 and any(s in r.stdout for s in ("idle", "mix"))


@pytest.mark.slurm
@pytest.mark.skipif(not _slurm_up(), reason="no SLURM controller on this machine (CI starts one: tests/slurm_support/start_slurm.sh)")
def test_slurm_sbatch_runs_the_same_config(ddp, corpus, tmp_path):
    """slurm/pretrain.sbatch on a real one-node SLURM cluster (2 tasks via --ntasks-per-node, Lightning's
    SLURMEnvironment) trains the same model as torchrun + DDP."""
    root = tmp_path / "run"
    args = [*tiny_pretrain_args(corpus, root, steps=8), "--data.batch_size", "8", "--data.context_patches", "8",
            "--trainer.limit_val_batches", "0", "--trainer.devices", "2", "--trainer.strategy", "ddp",
            "--model.optim.lr", "0.005", "--model.optim.warmup_steps", "0"]
    cmd = ["sbatch", "--wait", "--nodes", "1", "--ntasks-per-node", "2", "--cpus-per-task", "1", "--gpus-per-node", "0",
           "--time", "15", "--output", str(tmp_path / "slurm-%j.out"),
           f"--export=ALL,MAXFM_VENV={Path(sys.executable).parent.parent},OMP_NUM_THREADS=1",
           str(REPO / "slurm/pretrain.sbatch"), *args]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=800)
    log = "\n".join(p.read_text() for p in tmp_path.glob("slurm-*.out"))
    assert r.returncode == 0, r.stderr + log[-3000:]
    assert "SLURM auto-requeueing enabled" in log  # Lightning picked up the SLURM environment
    summary = json.loads((root / "hf/training_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_step"] == 8
    got, ref = MaxFMModel.from_pretrained(str(root / "hf")), MaxFMModel.from_pretrained(str(ddp))
    for (n, p), (_, q) in zip(got.state_dict().items(), ref.state_dict().items(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=n)
