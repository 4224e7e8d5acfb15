"""A run stopped and resumed from its checkpoint ends bitwise equal to the uninterrupted run (CPU)."""

import shutil

import pytest
import torch
from safetensors.torch import load_file

from fm.cli import main
from tests.conftest import tiny_pretrain_args


def _args(corpus, root, steps):
    # dropout on: the run draws from the global RNG every step, so the restored RNG state is put to the test
    return [*tiny_pretrain_args(corpus, root, steps=steps), "--model.optim.total_steps", "16", "--data.batch_size", "8",
            "--data.context_patches", "8", "--trainer.limit_val_batches", "0", "--model.arch.dropout", "0.1"]


def test_resume_is_bitwise_equal(corpus, tmp_path):
    # --resume auto on a fresh root starts from scratch (what a preemptible job does on its first start)
    assert main(["pretrain", *_args(corpus, tmp_path / "straight", 16), "--resume", "auto"]) == 0
    assert main(["pretrain", *_args(corpus, tmp_path / "split", 7)]) == 0
    mid = torch.load(next((tmp_path / "split").rglob("last.ckpt")), weights_only=True)
    assert mid["global_step"] == 7 and "rng_states" in mid
    # the same checkpoint resumed over other windows (another stride) is refused before a step is taken
    shutil.copytree(tmp_path / "split", tmp_path / "other")
    with pytest.raises(ValueError, match=r"training data differs .*window_spec"):
        main(["pretrain", *_args(corpus, tmp_path / "other", 16), "--data.stride_patches", "2", "--resume", "last"])
    assert main(["pretrain", *_args(corpus, tmp_path / "split", 16), "--resume", "last"]) == 0
    a = load_file(tmp_path / "straight/hf/model.safetensors")
    b = load_file(tmp_path / "split/hf/model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and the resumed run did train past the stop: its weights differ from the checkpoint it started from
    assert not torch.equal(mid["state_dict"]["model.head.weight"], b["head.weight"])


def test_resume_refuses_another_world_size(corpus, tmp_path):
    from fm.data.sampling import ResumableDataLoader, ResumableSampler

    loader = ResumableDataLoader(list(range(10)), sampler=ResumableSampler(10, 0, 0, 1), batch_size=2)
    with pytest.raises(ValueError, match="same world size"):
        loader.load_state_dict({"epoch": 0, "samples": 4, "world_size": 2})


def _loader(identity, seed=0, strict=True):
    from fm.data.sampling import ResumableDataLoader, ResumableSampler

    return ResumableDataLoader(list(range(10)), sampler=ResumableSampler(10, seed, 0, 1), batch_size=2,
                               identity=identity, strict=strict)


def test_resume_refuses_other_training_data():
    ident = {"corpus": "c0ffee", "windows": 10, "window_spec": {"context_patches": 8}, "plants": None}
    state = {**_loader(ident).state_dict(), "samples": 4}
    assert state["data"] == ident
    ok = _loader(dict(ident))
    ok.load_state_dict(state)
    assert list(ok.sampler) == ok.sampler.order(0)[4:].tolist()  # resumed past the 4 consumed samples
    with pytest.raises(ValueError, match=r"corpus 'c0ffee' -> 'beef'"):
        _loader({**ident, "corpus": "beef"}).load_state_dict(state)
    with pytest.raises(ValueError, match=r"windows 10 -> 12"):
        _loader({**ident, "windows": 12}).load_state_dict(state)
    with pytest.raises(ValueError, match=r"seed 0 -> 1"):
        _loader(ident, seed=1).load_state_dict(state)
    lax = _loader({**ident, "corpus": "beef"}, strict=False)
    with pytest.warns(UserWarning, match="training data differs"):
        lax.load_state_dict(state)
    assert list(lax.sampler) == lax.sampler.order(0)[4:].tolist()
    legacy = _loader(ident)  # a checkpoint from before identities were saved still resumes
    legacy.load_state_dict({k: v for k, v in state.items() if k != "data"})
