"""Shared fixtures: the synthetic plants, a corpus built from them, a tiny pretrained export.

Everything is made here from the project's own generators; nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow (> ~30 s on 2 cores): run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def plants_dir(tmp_path_factory) -> Path:
    from data_prep.sim import make_plants

    root = tmp_path_factory.mktemp("plants")
    make_plants(root, seed=0, days=24)
    return root


@pytest.fixture(scope="session")
def manifests(plants_dir) -> list[Path]:
    return sorted(plants_dir.glob("*/plant.yaml"))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, manifests) -> Path:
    from data_prep.corpus import PrepConfig, build_corpus

    out = tmp_path_factory.mktemp("corpus") / "corpus"
    build_corpus(manifests, out, PrepConfig(), log=lambda *_: None)
    return out


def tiny_pretrain_args(corpus: Path, root: Path, steps: int = 30) -> list[str]:
    return [
        "--config", str(REPO / "configs/model/tiny.yaml"),
        "--config", str(REPO / "configs/pretrain/demo.yaml"),
        "--data.corpus", str(corpus),
        "--data.context_patches", "16",
        "--data.batch_size", "16",
        "--trainer.max_steps", str(steps),
        "--trainer.val_check_interval", str(steps),
        "--trainer.log_every_n_steps", "1",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--trainer.default_root_dir", str(root),
        "--trainer.logger.init_args.save_dir", str(root),
    ]


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory, corpus) -> Path:
    """Run `fm pretrain` for a few steps; returns its root dir (export in root/hf)."""
    from fm.cli import main

    root = tmp_path_factory.mktemp("pretrain")
    assert main(["pretrain", *tiny_pretrain_args(corpus, root)]) == 0
    return root
