"""Strategies by name: ``ddp``, ``fsdp``, ``deepspeed_stage_1`` / ``_2`` / ``_3`` (JSON in configs/deepspeed/).

``fsdp`` is :class:`FSDP2Strategy`: PyTorch's per-parameter sharding (FSDP2, ``fully_shard`` over DTensors)
through Lightning's ``ModelParallelStrategy`` with all ranks in one data-parallel group. Unlike FSDP1
(Lightning's ``FSDPStrategy``, which torch refuses on CPU), FSDP2 runs on CPU over gloo, so the same
sharded path that runs on GPUs is tested for real on CPU. ``MaxFMModule.configure_model`` shards each
transformer block and then the rest of the model.

Lightning's DeepSpeed strategy refuses anything but CUDA ("only supported on CUDA GPUs"). On CPU (tests,
CI, laptops) :class:`DeepSpeedCPUStrategy` lifts exactly that restriction so ZeRO-2/3 run for real over
gloo; on CUDA it is Lightning's strategy unchanged. What it changes on CPU, and why:

* ``setup_environment``: skip the CUDA-accelerator check and run DDP's environment setup (ranks,
  cluster environment) as the parent would after the check;
* ``setup_distributed``: skip ``_validate_device_index_selection`` (it indexes CUDA devices) and let
  DeepSpeed initialise the gloo process group (Lightning picks gloo for a CPU root device);
* ``root_device``: ``cpu``; DeepSpeed's engine is given the *local rank* as ``device_rank`` (Lightning
  passes ``root_device.index``, which is None for ``cpu`` and which the engine cannot compare).

DeepSpeed JIT-compiles a CPU communication op on first use (about 30 s); set ``TORCH_EXTENSIONS_DIR`` to
a persistent folder to build it once (``.ci/run`` does).

Importing this module registers the names ``deepspeed_stage_1``, ``deepspeed_stage_2``,
``deepspeed_stage_3`` (and ``deepspeed``) with Lightning's strategy registry, pointing at
:class:`DeepSpeedCPUStrategy` with ``configs/deepspeed/zeroN.json`` (Lightning's stage defaults when the
package runs without its source tree), and ``fsdp`` and ``fsdp2`` pointing at :class:`FSDP2Strategy`. Lightning's
Trainer refuses the *string* ``fsdp`` without a GPU before it looks the name up (a check written for
FSDP1), so ``fm pretrain`` passes ``--trainer.strategy fsdp`` on as ``fsdp2`` (see ``fm.training.cli``).
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import torch
from lightning.fabric.plugins.collectives.torch_collective import default_pg_timeout
from lightning.pytorch.accelerators import CUDAAccelerator
from lightning.pytorch.strategies import (
    DDPStrategy,
    DeepSpeedStrategy,
    ModelParallelStrategy,
    StrategyRegistry,
)


class DeepSpeedCPUStrategy(DeepSpeedStrategy):
    """Lightning's DeepSpeed strategy, also on CPU (gloo). Identical to the parent on CUDA, except that a
    checkpoint folder is written atomically on every device (see ``save_checkpoint``)."""

    strategy_name = "deepspeed_cpu"

    def _on_cuda(self) -> bool:
        return isinstance(self.accelerator, CUDAAccelerator)

    def setup_environment(self) -> None:
        if self._on_cuda():
            return super().setup_environment()
        DDPStrategy.setup_environment(self)  # the parent's body minus its CUDA check

    def setup_distributed(self) -> None:
        if self._on_cuda():
            return super().setup_distributed()
        from lightning.fabric.utilities.seed import reset_seed

        reset_seed()
        self.set_world_ranks()
        self._init_deepspeed_distributed()

    @property
    def root_device(self) -> torch.device:
        if self._on_cuda():
            return super().root_device
        return torch.device("cpu")

    def save_checkpoint(self, checkpoint: dict, filepath, storage_options=None) -> None:
        """DeepSpeed writes its sharded checkpoint into the target folder file by file, so a job killed
        mid-write (preemption, time limit) would leave a half-written ``last.ckpt`` that ``--resume`` then
        reads. Here every rank writes into ``<name>.partial``; once all have finished, rank zero swaps it in
        (the old folder renamed aside, the new one renamed into place, the old one deleted). A kill at any
        point leaves a complete checkpoint: ``last.ckpt``, or between the two renames ``last.ckpt.old``,
        which ``fm.training.cli.find_last_checkpoint`` falls back to."""
        final = Path(self.broadcast(str(filepath)))
        staging = final.with_name(final.name + ".partial")
        if self.is_global_zero:
            shutil.rmtree(staging, ignore_errors=True)
        self.barrier("fm-ckpt-staging")
        super().save_checkpoint(checkpoint, str(staging), storage_options)
        self.barrier("fm-ckpt-written")
        if self.is_global_zero:
            swap_in(staging, final)
        self.barrier("fm-ckpt-swapped")

    def load_checkpoint(self, checkpoint_path, weights_only: bool | None = None) -> dict:
        with deepspeed_weights_only():  # resume reads the shards without pickle
            return super().load_checkpoint(checkpoint_path, weights_only=weights_only)

    def _setup_model_and_optimizer(self, model, optimizer, lr_scheduler=None):
        if self._on_cuda():
            return super()._setup_model_and_optimizer(model, optimizer, lr_scheduler)
        import argparse

        import deepspeed

        engine, ds_optimizer, _, _ = deepspeed.initialize(
            args=argparse.Namespace(device_rank=self.local_rank),
            config=self.config,
            model=model,
            model_parameters=[p for p in model.parameters() if p.requires_grad],
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            dist_init_required=False,
        )
        return engine, ds_optimizer


@contextmanager
def deepspeed_weights_only():
    """Every ``torch.load`` inside forced to ``weights_only=True``, with exactly three DeepSpeed classes
    allowed (the ZeRO-stage enum, the loss-scaler state and ZeRO-2's fragment-address record): DeepSpeed
    itself reads its checkpoint files with ``weights_only=False`` (pickle), for resume and consolidation."""
    from unittest import mock

    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    real_load = torch.load

    def weights_only_load(*args, **kwargs):
        kwargs["weights_only"] = True
        return real_load(*args, **kwargs)

    with torch.serialization.safe_globals([ZeroStageEnum, LossScaler, fragment_address]), mock.patch("torch.load", weights_only_load):
        yield


def swap_in(staging: Path, final: Path) -> None:
    """Replace the folder ``final`` by the complete folder ``staging`` (renames only; see
    ``DeepSpeedCPUStrategy.save_checkpoint``)."""
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


class FSDP2Strategy(ModelParallelStrategy):
    """Fully sharded data parallel (FSDP2) over every rank: parameters, gradients and optimizer state are
    split across all processes (ZeRO-3-like), on CUDA (NCCL) or CPU (gloo).

    Checkpoints are one full file, gathered on rank zero, in DDP's format: the optimizer state is numbered
    in the optimizer's parameter-group order, as ``torch.optim`` numbers it (Lightning's parent strategy
    numbers it in module order, which a DDP run could not resume from, nor this strategy from a DDP
    checkpoint). A run can therefore move between ``ddp`` and ``fsdp`` with ``--resume``. Checkpoints are
    read with ``torch.load(weights_only=True)``. Lightning's sharded alternative
    (``torch.distributed.checkpoint``) is not offered: its metadata file is a pickle. For checkpoints too
    large for one host, ZeRO-3 writes sharded checkpoints that load without pickle.

    Under ``bf16-mixed`` the blocks run in autocast and the parameters are gathered in fp32 (no FSDP2
    ``MixedPrecisionPolicy``); ``16-mixed`` (a gradient scaler) is refused.
    """

    strategy_name = "fsdp2"

    def __init__(self, process_group_backend: str | None = None, timeout: timedelta | None = default_pg_timeout):
        """
        Args:
            process_group_backend: ``nccl`` / ``gloo``; None = the device's default.
            timeout: Timeout of collective operations.
        """
        super().__init__(data_parallel_size="auto", tensor_parallel_size="auto", save_distributed_checkpoint=False,
                         process_group_backend=process_group_backend, timeout=timeout)

    def setup_environment(self) -> None:
        if self.cluster_environment is not None and self.cluster_environment.creates_processes_externally:
            # torchrun / SLURM start the processes: the parent then never checks devices x nodes against the
            # world size (DDP does), and a mismatch would surface as an IndexError or a device-mesh error
            self.cluster_environment.validate_settings(num_devices=self.num_processes, num_nodes=self.num_nodes)
        # one data-parallel group over all ranks, no tensor parallelism (the parent's "auto" would make the
        # ranks of a node a tensor-parallel group)
        self._data_parallel_size = self.num_nodes * self.num_processes
        self._tensor_parallel_size = 1
        super().setup_environment()

    def setup(self, trainer) -> None:
        if getattr(self.precision_plugin, "scaler", None) is not None:
            raise ValueError("fsdp: 16-mixed (fp16 with a gradient scaler) is not supported; use bf16-mixed or 32-true")
        super().setup(trainer)

    def _group_to_module(self, optimizer) -> list[int]:
        """For each parameter in the optimizer's group order, its index in ``model.parameters()``."""
        index = {id(p): i for i, p in enumerate(self.model.parameters())}
        return [index[id(p)] for g in optimizer.param_groups for p in g["params"]]

    def optimizer_state(self, optimizer) -> dict:
        state = super().optimizer_state(optimizer)  # full on rank zero, numbered in module order; others: {}
        if not state:
            return state
        from lightning.pytorch.core.optimizer import LightningOptimizer

        opt = optimizer._optimizer if isinstance(optimizer, LightningOptimizer) else optimizer
        return _renumber(state, {m: g for g, m in enumerate(self._group_to_module(opt))})

    def load_checkpoint(self, checkpoint_path, weights_only: bool | None = None) -> dict:
        from lightning.fabric.strategies.model_parallel import (
            _load_raw_module_state,
            _rekey_optimizer_state_if_needed,
        )
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        path = Path(self.broadcast(checkpoint_path))
        if not path.is_file():
            raise ValueError(f"{path}: fsdp resumes from a full checkpoint file (written by ddp or fsdp)")
        checkpoint = torch.load(path, mmap=True, map_location="cpu", weights_only=True)
        strict = self.lightning_module.strict_loading
        _load_raw_module_state(checkpoint.pop("state_dict"), self.model, strict=strict)
        options = StateDictOptions(broadcast_from_rank0=True, full_state_dict=True, strict=strict)
        for opt, saved in zip(self.optimizers, checkpoint.get("optimizer_states", []), strict=True):
            saved = _renumber(saved, dict(enumerate(self._group_to_module(opt))))  # -> module order, as loaded
            saved = _rekey_optimizer_state_if_needed(saved, self.model)
            set_optimizer_state_dict(self.model, opt, optim_state_dict=saved, options=options)
        return checkpoint


def _renumber(state: dict, mapping: dict[int, int]) -> dict:
    """An optimizer state dict with its integer parameter ids mapped through ``mapping``."""
    return {**state, "state": {mapping[k]: v for k, v in state["state"].items()},
            "param_groups": [{**g, "params": [mapping[i] for i in g["params"]]} for g in state["param_groups"]]}


def is_fsdp(strategy) -> bool:
    """Parameters are DTensor shards (FSDP2, or Lightning's ModelParallelStrategy by class path)."""
    return isinstance(strategy, ModelParallelStrategy)


DEEPSPEED_CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "deepspeed"
"""``zero1.json`` .. ``zero3.json``: what the names ``deepspeed_stage_N`` run with (in a source checkout)."""


def register() -> None:
    for stage in (1, 2, 3):
        # the repo's JSON when it is there (a checkout, or pip install -e); else Lightning's stage defaults
        json_file = DEEPSPEED_CONFIGS / f"zero{stage}.json"
        config = {"config": str(json_file)} if json_file.is_file() else {}
        StrategyRegistry.register(
            f"deepspeed_stage_{stage}", DeepSpeedCPUStrategy, description=f"DeepSpeed ZeRO stage {stage} (CPU or CUDA)",
            override=True, stage=stage, **config,
        )
    StrategyRegistry.register("deepspeed", DeepSpeedCPUStrategy, description="DeepSpeed (CPU or CUDA)", override=True)
    for name in ("fsdp", "fsdp2"):
        StrategyRegistry.register(name, FSDP2Strategy, description="FSDP2 over all ranks (CPU or CUDA)", override=True)


def is_zero3(strategy) -> bool:
    return isinstance(strategy, DeepSpeedStrategy) and strategy.zero_stage_3


register()
