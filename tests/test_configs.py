"""Every YAML in configs/ is parsed against the entry point it belongs to."""

from pathlib import Path

import pytest
import yaml

from data_prep.corpus import PrepConfig
from fm.model import ArchConfig
from tests.conftest import REPO

CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))


def test_all_configs_are_covered():
    covered = {"model", "pretrain", "finetune", "data"}
    stray = [p for p in CONFIGS if p.relative_to(REPO / "configs").parts[0] not in covered]
    assert CONFIGS and stray == []


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.parent.name == "model"], ids=lambda p: p.stem)
def test_model_sizes(path: Path):
    raw = yaml.safe_load(path.read_text())
    assert set(raw) == {"model"} and set(raw["model"]) == {"arch"}
    ArchConfig(**raw["model"]["arch"])


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.parent.name == "data"], ids=lambda p: p.stem)
def test_corpus_recipes(path: Path):
    PrepConfig.from_yaml(path)


@pytest.mark.parametrize(
    "path", [p for p in CONFIGS if p.parent.name in ("pretrain", "finetune")], ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_run_configs_through_the_cli(path: Path, corpus, pretrained, tmp_path, capsys):
    from fm.cli import main

    stage = path.parent.name
    args = [stage]
    if stage == "pretrain":
        args += ["--config", str(REPO / "configs/model/tiny.yaml")]
    args += ["--config", str(path), "--data.corpus", str(corpus), "--trainer.default_root_dir", str(tmp_path)]
    if stage == "finetune":
        args += ["--model.init_from", str(pretrained / "hf")]
    assert main([*args, "--print_size", "true"]) == 0
    assert '"total"' in capsys.readouterr().out
