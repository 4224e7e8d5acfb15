import csv
import json

import pytest
import torch

from data_prep.corpus import PrepConfig, build_corpus
from data_prep.tokenizer import TokenizerSpec
from fm.cli import main
from fm.model import MaxFMModel
from tests.conftest import tiny_pretrain_args


def _train_losses(root):
    f = next(root.rglob("metrics.csv"))
    rows = list(csv.DictReader(f.open()))
    return [float(r["train/loss"]) for r in rows if r.get("train/loss")]


def test_pretrain_learns_and_exports(pretrained):
    losses = _train_losses(pretrained)
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    export = pretrained / "hf"
    model = MaxFMModel.from_pretrained(str(export))
    assert model.config.tokenizer == TokenizerSpec().to_dict()
    summary = json.loads((export / "training_summary.json").read_text())
    assert summary["global_step"] == 30 and "val/loss" in summary["metrics"]


def test_checkpoint_is_weights_only_loadable(pretrained):
    ckpt = next(pretrained.rglob("last.ckpt"))
    state = torch.load(ckpt, weights_only=True, map_location="cpu")
    assert state["hyper_parameters"]["arch"]["d_model"] == 64
    assert any(k.startswith("model.blocks.0.time_attn") for k in state["state_dict"])


def test_refuses_corpus_with_other_tokenizer(tmp_path, manifests, capsys):
    other = tmp_path / "corpus8"
    build_corpus(manifests[:1], other, PrepConfig(tokenizer=TokenizerSpec(patch_len=8)), log=lambda *_: None)
    rc = main(["pretrain", *tiny_pretrain_args(other, tmp_path / "run", steps=2)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "tokenizer spec differs" in err and "patch_len" in err


def test_print_size(capsys, corpus, tmp_path):
    assert main(["pretrain", *tiny_pretrain_args(corpus, tmp_path), "--print_size", "true"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parameters"]["total"] == sum(out["parameters"][k] for k in ("blocks", "embeddings", "head"))


def test_finetune_requires_pretrained(corpus, tmp_path):
    with pytest.raises(SystemExit, match="init_from"):
        main(["finetune", *tiny_pretrain_args(corpus, tmp_path, steps=1)])
