import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fm.model import ArchConfig, MaxFMConfig, MaxFMModel

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return MaxFMModel(MaxFMConfig.from_arch(ArchConfig(d_model=32, n_layers=2, n_heads=4))).eval()


def test_shapes(model):
    x = torch.randn(2, 3, 64)
    out = model(x)
    assert out.quantiles_norm.shape == (2, 3, 4, 16, 9)
    assert out.hidden_states.shape == (2, 3, 4, 32)
    assert out.quantiles.shape == out.quantiles_norm.shape
    assert model.forecast(x[..., :50], 20).shape == (2, 3, 20, 9)
    assert model.embed_series(x).shape == (2, 32)
    with pytest.raises(ValueError, match="multiple of patch_len"):
        model(torch.randn(1, 1, 20))


def test_masked_targets_do_not_leak(model):
    x = torch.randn(2, 3, 64)
    tm = torch.zeros(2, 3, 4, dtype=torch.bool)
    tm[..., 2] = True
    tm[:, 1, 0] = True
    y = x.clone()
    y[..., 32:48] += 100.0  # change only what is masked: patch 2 of every channel ...
    y[:, 1, :16] -= 30.0  # ... and patch 0 of channel 1
    a = model(x, target_mask=tm)
    b = model(y, target_mask=tm)
    torch.testing.assert_close(a.quantiles_norm, b.quantiles_norm)
    torch.testing.assert_close(a.loc, b.loc)


def test_unobserved_values_do_not_matter(model):
    x = torch.randn(1, 2, 64)
    obs = torch.rand(1, 2, 64) > 0.3
    y = torch.where(obs, x, torch.full_like(x, 1e6))
    torch.testing.assert_close(model(x, obs).quantiles, model(y, obs).quantiles)


def test_instance_scaling_makes_forecasts_affine_equivariant(model):
    """Each window is scaled by its own visible values: a shifted and stretched input gives the same
    normalized quantiles, and quantiles shifted and stretched the same way."""
    x = torch.randn(2, 3, 64)
    a, b = model(x), model(3.0 * x + 7.0)
    torch.testing.assert_close(b.quantiles_norm, a.quantiles_norm, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(b.quantiles, 3.0 * a.quantiles + 7.0, rtol=1e-4, atol=1e-3)


def test_time_attention_knows_patch_order(model):
    """RoPE gives time attention the patches' order: swapping two patches does not just swap the outputs
    (everything else in a block treats patches alike, so without positions it would)."""
    with torch.no_grad():  # sharper attention than at init (near uniform there), as after training
        for blk in model.blocks:
            blk.time_attn.qkv.weight.mul_(8.0)
    x = torch.randn(1, 2, 64)
    perm = torch.tensor([1, 0, 2, 3])
    swapped = x.view(1, 2, 4, 16)[:, :, perm].reshape(1, 2, 64)
    a, b = model(x).quantiles_norm, model(swapped).quantiles_norm
    assert (b - a[:, :, perm]).abs().max() > 1e-2


def test_padded_channels_do_not_affect_real_ones(model):
    x = torch.randn(1, 2, 64)
    kinds = torch.tensor([[1, 2]])
    ref = model(x, kinds=kinds).quantiles
    padded = torch.cat([x, torch.randn(1, 1, 64) * 100], dim=1)
    out = model(padded, kinds=torch.tensor([[1, 2, 5]]), channel_mask=torch.tensor([[True, True, False]])).quantiles
    torch.testing.assert_close(out[:, :2], ref, rtol=1e-4, atol=1e-4)


def test_channel_attention_mixes_channels(model):
    x = torch.randn(1, 2, 64)
    y = x.clone()
    y[:, 1] = torch.randn(64)
    assert not torch.allclose(model(x).quantiles[:, 0], model(y).quantiles[:, 0])


def test_gradients_reach_every_parameter(model):
    model.train()
    out = model(torch.randn(2, 2, 64), target_mask=torch.rand(2, 2, 4) > 0.5)
    out.quantiles_norm.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_save_and_load_roundtrip(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    again = MaxFMModel.from_pretrained(str(tmp_path)).eval()
    x = torch.randn(1, 3, 48)
    torch.testing.assert_close(again(x).quantiles, model(x).quantiles, rtol=0, atol=0)
    assert again.config.arch == model.config.arch


def test_arch_validation():
    with pytest.raises(ValueError, match="divisible"):
        ArchConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="median"):
        ArchConfig(quantiles=(0.1, 0.9))


def test_sizes_grow():
    counts = []
    import yaml

    for size in ("tiny", "small", "base", "large"):
        arch = yaml.safe_load((REPO / f"configs/model/{size}.yaml").read_text())["model"]["arch"]
        cfg = MaxFMConfig.from_arch(ArchConfig(**arch))
        with torch.device("meta"):
            counts.append(sum(p.numel() for p in MaxFMModel(cfg).parameters()))
    assert counts == sorted(counts) and counts[0] < 1e6 < counts[-1]


LAUNCH = ("lightning", "pytorch_lightning", "deepspeed", "wandb", "torch.distributed")


def test_model_imports_no_launch_code():
    for f in (REPO / "fm/model").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad = [n for n in names if any(n == m or n.startswith(m + ".") for m in LAUNCH)]
            assert not bad, f"{f} imports launch code {bad}"
    code = "import sys, fm.model; print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning', 'wandb')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
