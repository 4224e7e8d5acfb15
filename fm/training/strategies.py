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
:class:`DeepSpeedCPUStrategy`, and ``fsdp`` and ``fsdp2`` pointing at :class:`FSDP2Strategy`. Lightning's
Trainer refuses the *string* ``fsdp`` without a GPU before it looks the name up (a check written for
FSDP1), so ``fm pretrain`` passes ``--trainer.strategy fsdp`` on as ``fsdp2`` (see ``fm.training.cli``).
"""

from __future__ import annotations

import torch
from lightning.pytorch.accelerators import CUDAAccelerator
from lightning.pytorch.strategies import (
    DDPStrategy,
    DeepSpeedStrategy,
    ModelParallelStrategy,
    StrategyRegistry,
)


class DeepSpeedCPUStrategy(DeepSpeedStrategy):
    """Lightning's DeepSpeed strategy, also on CPU (gloo). Identical to the parent on CUDA."""

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


class FSDP2Strategy(ModelParallelStrategy):
    """Fully sharded data parallel (FSDP2) over every rank: parameters, gradients and optimizer state are
    split across all processes (ZeRO-3-like), on CUDA (NCCL) or CPU (gloo).

    Checkpoints are one full file, gathered on rank zero: the same format as DDP's, so resume and
    ``fm.release.export.load_model`` read it with ``torch.load(weights_only=True)``. Lightning's sharded
    alternative (``torch.distributed.checkpoint``) is not offered: its metadata file is a pickle. For
    checkpoints too large for one host, ZeRO-3 writes sharded checkpoints that load without pickle.
    """

    strategy_name = "fsdp2"

    def __init__(self, **kwargs):
        for fixed in ("data_parallel_size", "tensor_parallel_size", "save_distributed_checkpoint"):
            if fixed in kwargs:
                raise TypeError(f"FSDP2Strategy: {fixed!r} is fixed (all ranks data-parallel, full checkpoints)")
        super().__init__(save_distributed_checkpoint=False, **kwargs)

    def setup_environment(self) -> None:
        # one data-parallel group over all ranks, no tensor parallelism (the parent's "auto" would make the
        # ranks of a node a tensor-parallel group)
        self._data_parallel_size = self.num_nodes * self.num_processes
        self._tensor_parallel_size = 1
        super().setup_environment()


def is_fsdp(strategy) -> bool:
    return isinstance(strategy, ModelParallelStrategy)


def register() -> None:
    for stage in (1, 2, 3):
        StrategyRegistry.register(
            f"deepspeed_stage_{stage}", DeepSpeedCPUStrategy, description=f"DeepSpeed ZeRO stage {stage} (CPU or CUDA)",
            override=True, stage=stage,
        )
    StrategyRegistry.register("deepspeed", DeepSpeedCPUStrategy, description="DeepSpeed (CPU or CUDA)", override=True)
    for name in ("fsdp", "fsdp2"):
        StrategyRegistry.register(name, FSDP2Strategy, description="FSDP2 over all ranks (CPU or CUDA)", override=True)


def is_zero3(strategy) -> bool:
    return isinstance(strategy, DeepSpeedStrategy) and strategy.zero_stage_3


register()
