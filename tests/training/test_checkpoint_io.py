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
