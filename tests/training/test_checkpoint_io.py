"""Checkpoint writes are atomic: a write that dies midway leaves the previous checkpoint intact."""

import pytest
import torch
from fsspec.implementations.local import LocalFileOpener
from lightning.pytorch.plugins.io import TorchCheckpointIO


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    io = TorchCheckpointIO()  # what the Trainer uses for single-file checkpoints (last.ckpt included)
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.arange(1000.0)}, path)
    before = path.read_bytes()

    def dying_write(self, data):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(LocalFileOpener, "write", dying_write)
    with pytest.raises(OSError, match="simulated"):
        io.save_checkpoint({"step": 2, "w": torch.zeros(1000)}, path)
    assert path.read_bytes() == before
    assert torch.load(path, weights_only=True)["step"] == 1


def test_export_from_a_full_state_dict_rebuilds_the_backbone(tmp_path):
    """The FSDP export path: rank zero gets the LightningModule's full state dict and rebuilds the backbone
    from it (FSDP2 runs it end to end in tests/training/test_distributed.py; FSDP1 by class path needs a GPU).
    The export loads with AutoModel and holds exactly the trained weights; a state dict missing a backbone
    weight is refused."""
    from transformers import AutoModel

    from fm.model import ArchConfig
    from fm.training.cli import backbone_from_state_dict
    from fm.training.module import MaxFMModule

    torch.manual_seed(0)
    module = MaxFMModule(arch=ArchConfig(d_model=32, n_layers=1, n_heads=4))
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p))  # weights no fresh init would give
    full = {k: v.clone() for k, v in module.state_dict().items()}
    net = backbone_from_state_dict(module.model.config, full)
    net.save_pretrained(tmp_path / "hf")
    loaded = AutoModel.from_pretrained(tmp_path / "hf")
    expected = module.model.state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, expected[k]), k
    del full["model.head.weight"]
    with pytest.raises(RuntimeError, match="head.weight"):
        backbone_from_state_dict(module.model.config, full)
