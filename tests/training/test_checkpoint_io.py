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
    from fm.release.export import backbone_from_state_dict
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


_DYING_SAVE = '''
import sys
from pathlib import Path

from deepspeed.runtime.engine import DeepSpeedEngine

real_save = DeepSpeedEngine.save_checkpoint
saves = []


def dying_save(self, save_dir, *args, **kwargs):
    """The second write of last.ckpt in this run writes part of the checkpoint, then the job dies
    (preemption, time limit)."""
    if "last.ckpt" in str(save_dir):
        saves.append(save_dir)
        if len(saves) == 2:
            Path(save_dir, "checkpoint").mkdir(parents=True, exist_ok=True)
            Path(save_dir, "checkpoint", "mp_rank_00_model_states.pt").write_bytes(b"half a file")
            raise SystemExit("killed while writing " + str(save_dir))
    return real_save(self, save_dir, *args, **kwargs)


DeepSpeedEngine.save_checkpoint = dying_save
from fm.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
'''


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.timeout(600)
def test_zero_checkpoint_folder_is_swapped_in_whole(corpus, tmp_path):
    """A DeepSpeed (ZeRO-2) job killed while it rewrites last.ckpt (step 4) leaves the step-2 last.ckpt
    complete, --resume last goes on from it, and a completed write leaves no staging folder behind."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from fm.release.export import load_model
    from fm.training.cli import find_last_checkpoint
    from tests.conftest import REPO, tiny_pretrain_args

    root = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache/max-fm/torch_extensions"))}

    def pretrain(*extra, script=None):
        args = [*tiny_pretrain_args(corpus, root, steps=4), "--data.batch_size", "8", "--data.context_patches", "8",
                "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1", "--trainer.devices", "1",
                "--trainer.strategy", "deepspeed_stage_2", *extra]
        cmd = [sys.executable, str(script) if script else "-m", *([] if script else ["fm.cli"]), "pretrain", *args]
        return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=500)

    script = tmp_path / "dying.py"
    script.write_text(_DYING_SAVE)
    r = pretrain(script=script)
    assert r.returncode != 0 and "killed while writing" in r.stderr + r.stdout, r.stderr[-3000:]
    last = Path(find_last_checkpoint(root))
    assert last.name == "last.ckpt"
    assert b"half a file" not in _tree(last).values()  # the step-2 checkpoint is untouched ...
    assert (last.parent / "last.ckpt.partial").is_dir()  # ... and the killed write lies beside it
    step2 = load_model(last)  # complete: it consolidates
    r = pretrain("--resume", "last")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((root / "hf/training_summary.json").read_text())["global_step"] == 4
    newest = Path(find_last_checkpoint(root))
    assert newest.parent != last.parent
    names = sorted(p.name for p in newest.parent.iterdir())
    assert "last.ckpt" in names and not [n for n in names if n.endswith((".partial", ".old"))], names
    at4 = load_model(newest)
    assert any(not torch.equal(a, b) for a, b in zip(step2.state_dict().values(), at4.state_dict().values(), strict=True))


def test_resume_finds_a_checkpoint_caught_between_the_two_renames(tmp_path):
    """Killed between renaming last.ckpt aside and renaming the new folder in, a run leaves only
    last.ckpt.old, which is complete: --resume last / auto use it; a last.ckpt beside it wins."""
    from fm.training.cli import find_last_checkpoint

    old = tmp_path / "logs/version_0/checkpoints/last.ckpt.old"
    (old / "checkpoint").mkdir(parents=True)
    (old.parent / "last.ckpt.partial").mkdir()
    assert find_last_checkpoint(tmp_path) == str(old)
    (old.parent / "last.ckpt").mkdir()
    assert find_last_checkpoint(tmp_path) == str(old.parent / "last.ckpt")
    with pytest.raises(FileNotFoundError, match="no last.ckpt"):
        find_last_checkpoint(tmp_path / "elsewhere")
