"""Experiment loggers. wandb runs offline unless an API key is set, and never prompts."""

from __future__ import annotations

import os

from lightning.pytorch.loggers import WandbLogger


class MaxFMWandbLogger(WandbLogger):
    """Lightning's WandbLogger, offline unless ``WANDB_API_KEY`` is set (and ``WANDB_MODE`` is not offline).

    Offline runs land in ``save_dir/wandb/offline-run-*`` and can be uploaded later with ``wandb sync``.
    The hyper-parameters logged are the model/optimizer/objective dicts: no keys, tokens or paths of secrets.
    """

    def __init__(self, project: str = "max-fm", save_dir: str = ".", name: str | None = None, **kwargs):
        online = bool(os.environ.get("WANDB_API_KEY")) and os.environ.get("WANDB_MODE", "") != "offline"
        os.environ.setdefault("WANDB_SILENT", "true")
        os.environ.setdefault("WANDB_CONSOLE", "off")
        if not online:
            os.environ["WANDB_MODE"] = "offline"  # no login prompt, no network
        kwargs.setdefault("offline", not online)
        super().__init__(project=project, save_dir=save_dir, name=name, **kwargs)
