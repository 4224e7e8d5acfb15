"""Training options: variable context lengths in one batch, activation checkpointing, bf16-mixed, accumulation."""

import csv
import math

import torch

from fm.cli import main
from fm.data.windows import WindowDataset, WindowSpec, collate, open_split
from fm.model import ArchConfig
from fm.training.module import MaxFMModule
from tests.conftest import tiny_pretrain_args


def test_variable_context_lengths_in_one_batch(corpus):
    ds = WindowDataset(open_split(corpus, "train"), WindowSpec(12, 2, 16, mask_ratio=0.2, seed=3, min_context_patches=4))
    pads = [ds.pad_patches(i) for i in range(64)]
    assert len(set(pads)) > 3 and min(pads) >= 0 and max(pads) <= 8
    i = next(j for j, p in enumerate(pads) if p >= 3)
    item = ds[i]
    assert not item["observed"][:, : pads[i] * 16].any() and not item["patch_mask"][:, : pads[i]].any()
    assert not item["target_mask"][:, : pads[i]].any()  # masked spans only inside the real context
    batch = collate([ds[j] for j in range(8)])
    assert batch["patch_mask"].shape == batch["target_mask"].shape


def test_padding_does_not_change_real_tokens():
    """A left-padded window gives the same outputs on its real patches as the unpadded window (RoPE is relative,
    padded keys are masked, statistics use visible values only)."""
    torch.manual_seed(0)
    module = MaxFMModule(arch=ArchConfig(d_model=32, n_layers=2, n_heads=4)).eval()
    x = torch.randn(1, 2, 6 * 16)
    short = module.model(x).quantiles
    padded = torch.cat([torch.zeros(1, 2, 3 * 16), x], dim=-1)
    obs = torch.cat([torch.zeros(1, 2, 3 * 16, dtype=torch.bool), torch.ones(1, 2, 6 * 16, dtype=torch.bool)], dim=-1)
    pm = torch.tensor([[False] * 3 + [True] * 6]).expand(1, 2, 9)
    long = module.model(padded, obs, patch_mask=pm).quantiles
    torch.testing.assert_close(long[:, :, 3:], short, rtol=1e-4, atol=1e-4)


def test_activation_checkpointing_same_loss_and_grads(corpus):
    ds = WindowDataset(open_split(corpus, "train"), WindowSpec(8, 2, 16, mask_ratio=0.2))
    batch = collate([ds[i] for i in range(4)])
    grads, calls = [], []
    for ckpt in (False, True):
        torch.manual_seed(0)
        m = MaxFMModule(arch=ArchConfig(d_model=32, n_layers=2, n_heads=4), activation_checkpointing=ckpt).train()
        n = [0]
        for blk in m.model.blocks:
            blk.register_forward_pre_hook(lambda *_, n=n: n.__setitem__(0, n[0] + 1))  # (recompute stops early)
        loss = m.losses(batch)["loss"]
        loss.backward()
        grads.append((float(loss), [p.grad.clone() for p in m.parameters()]))
        calls.append(n[0])
    assert calls == [2, 4]  # with checkpointing each block runs again in the backward pass: it was recomputed
    assert grads[0][0] == grads[1][0]
    for a, b in zip(grads[0][1], grads[1][1], strict=True):
        torch.testing.assert_close(a, b)


def _losses(root):
    rows = list(csv.DictReader(next(root.rglob("metrics.csv")).open()))
    return [float(r["train/loss"]) for r in rows if r.get("train/loss")]


def test_bf16_mixed_and_accumulation_run(corpus, tmp_path):
    args = [*tiny_pretrain_args(corpus, tmp_path, steps=4), "--trainer.precision", "bf16-mixed",
            "--trainer.accumulate_grad_batches", "2", "--data.min_context_patches", "8"]
    assert main(["pretrain", *args]) == 0
    losses = _losses(tmp_path)
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)  # logged per optimizer step
    ckpt = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=True)
    assert ckpt["global_step"] == 4
    assert ckpt["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"] == 8  # 2 micro-batches each


def test_compiled_blocks_match_eager(corpus):
    """torch.compile of each block (in place: parameter names unchanged) gives the eager loss and gradients."""
    ds = WindowDataset(open_split(corpus, "train"), WindowSpec(8, 2, 16, mask_ratio=0.2))
    batch = collate([ds[i] for i in range(4)])
    out = []
    for compiled in (False, True):
        torch.manual_seed(0)
        m = MaxFMModule(arch=ArchConfig(d_model=32, n_layers=1, n_heads=4), compile=compiled).train()
        torch._dynamo.reset()
        loss = m.losses(batch)["loss"]
        loss.backward()
        out.append((loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}))
        frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        assert (frames > 0) == compiled, frames  # the compiled module really ran through dynamo
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-4, atol=1e-5)
    assert out[0][1].keys() == out[1][1].keys()
    for n in out[0][1]:
        torch.testing.assert_close(out[0][1][n], out[1][1][n], rtol=1e-3, atol=1e-5, msg=n)
