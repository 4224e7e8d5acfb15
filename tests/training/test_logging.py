"""Logging: wandb offline without a key (no prompt, no network), throughput / grad norm from step one, MFU formula."""

import csv

import pytest

from fm.cli import main
from fm.model import ArchConfig
from fm.training.callbacks import flops_per_token
from tests.conftest import REPO, tiny_pretrain_args


def test_wandb_runs_offline_without_a_key(corpus, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    args = [*tiny_pretrain_args(corpus, tmp_path, steps=3), "--config", str(REPO / "configs/cluster/local_cpu.yaml"),
            "--trainer.logger", "fm.training.loggers.MaxFMWandbLogger", "--trainer.logger.save_dir", str(tmp_path)]
    assert main(["pretrain", *args]) == 0
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    (data,) = run.glob("run-*.wandb")
    blob = data.read_bytes()
    for key in (b"train/loss_forecast", b"train/loss_reconstruction", b"perf/tokens_per_s", b"perf/samples_per_s",
                b"train/grad_norm"):
        assert key in blob


def test_throughput_in_csv_logs_from_the_first_step(corpus, tmp_path):
    args = [*tiny_pretrain_args(corpus, tmp_path, steps=3), "--config", str(REPO / "configs/cluster/local_cpu.yaml")]
    assert main(["pretrain", *args]) == 0
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    tps = [float(r["perf/tokens_per_s"]) for r in rows if r.get("perf/tokens_per_s")]
    assert len(tps) == 3 and all(t > 0 for t in tps)
    assert all("perf/mfu" not in r or not r["perf/mfu"] for r in rows)  # no peak known on CPU: no MFU


def test_flops_per_token_formula():
    a = ArchConfig(d_model=64, n_layers=2, n_heads=4)
    h, d = a.mlp_hidden, 64
    expected = 2 * 32 * d + 2 * (16 * d * d + 4 * 10 * d + 4 * 3 * d + 6 * d * h) + 2 * d * 16 * 9
    assert flops_per_token(a, patches=10, channels=3) == expected
    # the matmul part is 2 x the parameters touched per token (a standard sanity check)
    from fm.model import MaxFMConfig, MaxFMModel

    n = sum(p.numel() for name, p in MaxFMModel(MaxFMConfig.from_arch(a)).named_parameters() if "norm" not in name and "kind" not in name and "mask" not in name)
    attention_part = 2 * (4 * 10 * d + 4 * 3 * d)
    assert flops_per_token(a, 10, 3) - attention_part == pytest.approx(2 * n)


def test_mfu_is_logged_with_a_peak(corpus, tmp_path):
    """With a device peak given (detected on known GPUs), every step logs MFU = achieved model FLOP/s / peak."""
    args = [*tiny_pretrain_args(corpus, tmp_path, steps=3), "--config", str(REPO / "configs/cluster/local_cpu.yaml"),
            "--trainer.callbacks.peak_tflops", "0.001"]
    assert main(["pretrain", *args]) == 0
    rows = [r for r in csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()) if r.get("perf/mfu")]
    assert len(rows) == 3
    for r in rows:
        mfu, step_s, tokens = float(r["perf/mfu"]), float(r["perf/step_s"]), float(r["perf/tokens_per_s"]) * float(r["perf/step_s"])
        arch = ArchConfig(d_model=64, n_layers=2, n_heads=4)  # configs/model/tiny.yaml
        flops = 3 * flops_per_token(arch, patches=16 + 4, channels=3) * tokens
        assert mfu == pytest.approx(flops / step_s / 1e9, rel=0.05)
