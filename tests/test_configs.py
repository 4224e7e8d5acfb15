"""Every YAML in configs/ is parsed against the entry point it belongs to."""

from pathlib import Path

import pytest
import yaml

from data_prep.corpus import PrepConfig
from fm.model import ArchConfig
from tests.conftest import REPO

CONFIGS = sorted([*(REPO / "configs").rglob("*.yaml"), *(REPO / "configs").rglob("*.json")])


def test_all_configs_are_covered():
    covered = {"model", "pretrain", "finetune", "data", "cluster", "deepspeed"}
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


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.parent.name == "real"], ids=lambda p: p.stem)
def test_real_plant_manifests(path: Path):
    from data_prep.manifest import load_manifest

    m = load_manifest(path, data_root="/nonexistent")  # schema only: files are not opened here
    assert m.tags and m.sharing == "public"


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.parent.name == "deepspeed"], ids=lambda p: p.stem)
def test_deepspeed_configs(path: Path):
    import json

    from fm.training.strategies import DeepSpeedCPUStrategy

    cfg = json.loads(path.read_text())
    assert cfg["zero_optimization"]["stage"] == int(path.stem[-1])
    assert DeepSpeedCPUStrategy(config=str(path)).config["zero_optimization"]["stage"] == int(path.stem[-1])
    # the strategy name runs with this file (not with Lightning's own stage settings)
    from lightning.pytorch.strategies import StrategyRegistry

    by_name = StrategyRegistry.get(f"deepspeed_stage_{path.stem[-1]}")
    assert isinstance(by_name, DeepSpeedCPUStrategy) and by_name.config == cfg


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.parent.name == "cluster"], ids=lambda p: p.stem)
def test_cluster_configs_through_the_cli(path: Path, corpus, tmp_path, capsys, monkeypatch):
    from fm.cli import main

    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    args = ["pretrain", "--config", str(REPO / "configs/model/tiny.yaml"), "--config", str(REPO / "configs/pretrain/demo.yaml"),
            "--config", str(path), "--data.corpus", str(corpus), "--trainer.default_root_dir", str(tmp_path),
            # this machine has no GPU: the rest of the file (strategy, logger, callbacks) is instantiated as written
            "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--print_size", "true"]
    assert main(args) == 0
    assert '"total"' in capsys.readouterr().out


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
