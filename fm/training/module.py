"""LightningModule for pretraining and forecast fine-tuning of MAX-FM.

One module serves both: pretraining masks random context spans and the future; forecast fine-tuning
(the energy task) starts from a pretrained export (``init_from``) and masks only the future. Hyper-
parameters are stored as plain dicts, so checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

import lightning as L
import numpy as np
import torch

from fm.model import ArchConfig, MaxFMConfig, MaxFMModel
from fm.training.losses import masked_mean, pinball


@dataclass
class OptimConfig:
    lr: float = 1e-3
    """Peak learning rate (AdamW)."""
    weight_decay: float = 0.05
    """Decoupled weight decay on matrices (not on norms or embeddings)."""
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 50
    """Linear warmup steps, then cosine decay to ``min_lr_ratio * lr`` at ``total_steps``."""
    min_lr_ratio: float = 0.1
    total_steps: int | None = None
    """Length of the schedule; None = the trainer's max_steps. Set it when a run is split into jobs that
    stop early and resume (the schedule must not depend on where a job stops)."""

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("optim: need lr > 0, warmup_steps >= 0, 0 <= min_lr_ratio <= 1")


@dataclass
class ObjectiveConfig:
    forecast_weight: float = 1.0
    """Weight of the pinball loss on future patches."""
    reconstruction_weight: float = 1.0
    """Weight of the pinball loss on masked context patches."""

    def __post_init__(self) -> None:
        if self.forecast_weight < 0 or self.reconstruction_weight < 0 or self.forecast_weight + self.reconstruction_weight == 0:
            raise ValueError("objective weights must be >= 0 and not both 0")


class MaxFMModule(L.LightningModule):
    def __init__(
        self,
        arch: ArchConfig | None = None,
        optim: OptimConfig | None = None,
        objective: ObjectiveConfig | None = None,
        init_from: str | None = None,
        activation_checkpointing: bool = False,
        compile: bool = False,
    ):
        """
        Args:
            arch: Model architecture (``configs/model/*.yaml``).
            optim: Optimizer and schedule.
            objective: Loss weights.
            init_from: A MAX-FM export folder (``save_pretrained``) to start from; its architecture wins over ``arch``.
            activation_checkpointing: Recompute each block in the backward pass (less memory, ~1/3 more compute).
            compile: ``torch.compile`` each block in place (parameter names, checkpoints and exports unchanged).
        """
        super().__init__()
        arch = arch or ArchConfig()
        optim = optim or OptimConfig()
        objective = objective or ObjectiveConfig()
        if init_from:
            self.model = MaxFMModel.from_pretrained(init_from).train()  # from_pretrained returns eval mode
            arch = self.model.config.arch
        else:
            self.model = MaxFMModel(MaxFMConfig.from_arch(arch))
        self.arch, self.optim_cfg, self.objective = arch, optim, objective
        if activation_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if compile:
            for blk in self.model.blocks:
                blk.compile()
        self.save_hyperparameters(
            {"arch": arch.to_dict(), "optim": asdict(optim), "objective": asdict(objective), "init_from": init_from,
             "activation_checkpointing": activation_checkpointing, "compile": compile}
        )
        self.register_buffer("quantiles", torch.tensor(arch.quantiles), persistent=False)

    def configure_model(self) -> None:
        """Under ``fsdp`` (FSDP2, fm.training.strategies): shard each transformer block, then the rest of the
        model (embeddings, head, final norm), over the data-parallel ranks. Other strategies: nothing."""
        mesh = self.device_mesh
        if mesh is None:
            return
        from torch.distributed.fsdp import FSDPModule, fully_shard

        if isinstance(self.model, FSDPModule):  # already sharded (the hook can run more than once)
            return
        if mesh["tensor_parallel"].size() != 1:  # e.g. Lightning's ModelParallelStrategy with its defaults
            raise ValueError("MAX-FM has no tensor-parallel plan: use --trainer.strategy fsdp (all ranks data-parallel)")
        dp = mesh["data_parallel"]
        for blk in self.model.blocks:
            fully_shard(blk, mesh=dp)
        fully_shard(self.model, mesh=dp)

    def on_fit_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "check_model_spec"):
            dm.check_model_spec(self.arch.tokenizer)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        out = self.model(
            batch["values"], batch["observed"], batch["kinds"], batch["target_mask"], batch["channel_mask"],
            batch.get("patch_mask"),
        )
        b, c, p, L, q = out.quantiles_norm.shape
        y = ((batch["values"] - out.loc) / out.scale).view(b, c, p, L)
        per_value = pinball(out.quantiles_norm, y, self.quantiles)  # (b, c, p, L)
        obs = batch["observed"].view(b, c, p, L) & batch["channel_mask"][:, :, None, None]
        tm = batch["target_mask"][..., None]
        n_ctx = p - int(batch["n_future"])
        future = torch.zeros_like(tm)
        future[:, :, n_ctx:] = True
        f_loss = masked_mean(per_value, obs & tm & future)
        r_loss = masked_mean(per_value, obs & tm & ~future)
        total = self.objective.forecast_weight * f_loss + self.objective.reconstruction_weight * r_loss
        return {"loss": total, "loss_forecast": f_loss, "loss_reconstruction": r_loss}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self.losses(batch)
        bs = batch["values"].shape[0]
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=bs)
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "loss"}, batch_size=bs)
        self.log("lr", self.optimizers().param_groups[0]["lr"], batch_size=bs)
        return losses["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        losses = self.losses(batch)
        bs = batch["values"].shape[0]
        self.log_dict({f"val/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=bs, sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # RNG states as tensors and plain numbers, so the checkpoint stays loadable with weights_only=True.
        np_state = np.random.get_state()
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
            "python": random.getstate(),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        rng = checkpoint.get("rng_states")
        if rng:
            torch.set_rng_state(rng["torch"])
            name, keys, pos, has_gauss, cached = rng["numpy"]
            np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), cached))
            random.setstate(rng["python"])

    def configure_optimizers(self):
        decay, no_decay = [], []
        for n, p in self.model.named_parameters():
            (decay if p.ndim >= 2 and "embed" not in n else no_decay).append(p)
        o = self.optim_cfg
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=o.lr,
            betas=tuple(o.betas),
        )
        if o.total_steps:
            total = o.total_steps
        elif self.trainer.max_steps and self.trainer.max_steps > 0:
            total = int(self.trainer.max_steps)
        else:
            raise ValueError("set trainer.max_steps or model.optim.total_steps: the LR schedule needs its length")

        def schedule(step: int) -> float:
            if step < o.warmup_steps:
                return (step + 1) / (o.warmup_steps + 1)
            t = min(1.0, (step - o.warmup_steps) / max(1, total - o.warmup_steps))
            return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
