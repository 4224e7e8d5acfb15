"""`fm pretrain` / `fm finetune`: LightningCLI over MaxFMModule + CorpusDataModule, YAML-stacked configs.

    fm pretrain --config configs/model/tiny.yaml --config configs/pretrain/demo.yaml [--data.corpus DIR]
    fm finetune --config configs/finetune/energy.yaml --model.init_from runs/demo/pretrain/hf

Both end by writing an HF export (``save_pretrained``) of the trained model to ``--export_dir``
(default ``<trainer.default_root_dir>/hf``). ``--resume last`` continues from the last checkpoint;
``--resume auto`` does so when there is one (preemptible SLURM jobs).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from fm.data.datamodule import CorpusDataModule
from fm.training import strategies  # noqa: F401  (registers deepspeed_stage_N names that also run on CPU)
from fm.training.module import MaxFMModule


class MaxFMCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--export_dir", type=str | None, default=None, help="Where to write the HF export.")
        parser.add_argument(
            "--resume", type=str | None, default=None,
            help="Checkpoint to resume from; 'last' = the newest last.ckpt under the run's root (error if none); "
                 "'auto' = the same when there is one, else start fresh (for preemptible jobs).",
        )
        parser.add_argument("--print_size", type=bool, default=False, help="Print the parameter count and exit.")

    def instantiate_trainer(self, **kwargs):
        # "fsdp" is FSDP2 here (fm.training.strategies); Lightning refuses that string on CPU before looking
        # it up (its check is for FSDP1), so it is passed on under the other registered name
        strategy = self._get(self.config_init, "trainer", default={}).get("strategy")
        if kwargs.get("strategy") is None and isinstance(strategy, str) and strategy.lower() == "fsdp":
            kwargs["strategy"] = "fsdp2"
        return super().instantiate_trainer(**kwargs)


def count_parameters(module) -> dict[str, int]:
    total = sum(p.numel() for p in module.parameters())
    head = sum(p.numel() for n, p in module.named_parameters() if n.startswith("head"))
    emb = sum(p.numel() for n, p in module.named_parameters() if "embed" in n)
    return {"total": total, "blocks": total - head - emb, "embeddings": emb, "head": head}


def run(args: list[str], stage: str) -> int:
    # `fm` hands LightningCLI its own argument list; sys.argv holds the `fm` command line, which is expected.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    cli = MaxFMCLI(
        MaxFMModule,
        CorpusDataModule,
        args=args,
        run=False,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "callbacks": [ModelCheckpoint(filename="step{step}", save_last=True, auto_insert_metric_name=False)],
            # the data module shards by rank itself, resumably (fm.data.sampling)
            "use_distributed_sampler": False,
        },
    )
    cfg = cli.config
    model = cli.model
    if cfg.print_size:
        sizes = count_parameters(model.model)
        print(json.dumps({"arch": model.arch.to_dict(), "parameters": sizes}, indent=2))
        return 0
    if stage == "finetune" and not model.hparams.init_from:
        raise SystemExit("fm finetune: --model.init_from (a pretrained export folder) is required")
    root = Path(cli.trainer.default_root_dir)
    ckpt = cfg.resume
    if ckpt == "last":
        ckpt = find_last_checkpoint(root)
    elif ckpt == "auto":
        try:
            ckpt = find_last_checkpoint(root)
        except FileNotFoundError:
            ckpt = None
    trainer = cli.trainer
    trainer.fit(model, datamodule=cli.datamodule, ckpt_path=ckpt, weights_only=True)  # no pickle when resuming
    export = Path(cfg.export_dir) if cfg.export_dir else root / "hf"
    summary = {
        "stage": stage,
        "global_step": int(trainer.global_step),
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
        "corpus": cli.datamodule.corpus,
        "corpus_tokens": (cli.datamodule.manifest or {}).get("splits"),
        "plants": cli.datamodule.hparams.plants,
        "world_size": trainer.world_size,
        "strategy": type(trainer.strategy).__name__,
    }
    export_hf(trainer, model, export, summary)
    finish_run(trainer)
    return 0


def find_last_checkpoint(root: Path) -> str:
    """The newest ``last.ckpt`` under a run's root (file, or folder for DeepSpeed's sharded checkpoints). A
    ``last.ckpt.old`` folder without its ``last.ckpt`` is a DeepSpeed checkpoint whose replacement was
    interrupted between two renames (see ``DeepSpeedCPUStrategy.save_checkpoint``): it is complete, use it."""
    found = list(root.rglob("last.ckpt"))
    found += [p for p in root.rglob("last.ckpt.old") if not p.with_name("last.ckpt").exists()]
    if not found:
        raise FileNotFoundError(f"{root}: no last.ckpt to resume from")
    return str(max(found, key=lambda p: p.stat().st_mtime))


def export_hf(trainer, model: MaxFMModule, export: Path, summary: dict) -> None:
    """Write the trained model with save_pretrained on rank zero. Under ZeRO-3 every rank first joins the
    gathering of the partitioned parameters; under FSDP (FSDP2, or FSDP1 by class path) every rank joins the
    gather of the full state dict (rank zero receives it, unsharded, on the CPU) and rank zero rebuilds the
    backbone from it."""
    from lightning.pytorch.strategies import FSDPStrategy

    def save(net) -> None:
        if trainer.is_global_zero:
            net.save_pretrained(export)
            (export / "training_summary.json").write_text(json.dumps(summary, indent=2))
            print(f"[{summary['stage']}] HF export written to {export}")

    if strategies.is_zero3(trainer.strategy):
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(model.model.parameters()), modifier_rank=None):
            save(model.model)
    elif strategies.is_fsdp(trainer.strategy) or isinstance(trainer.strategy, FSDPStrategy):
        # the parameters are shards (FSDP2: DTensors; FSDP1 by class path: flat shards), so save_pretrained on
        # them would write one rank's pieces: every rank joins the gather, rank zero gets the full tensors
        from fm.release.export import backbone_from_state_dict

        if strategies.is_fsdp(trainer.strategy):
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        else:
            full = trainer.strategy.lightning_module_state_dict()
        if trainer.is_global_zero:
            save(backbone_from_state_dict(model.model.config, full))
    else:
        save(model.model)


def finish_run(trainer) -> None:
    """Close wandb runs (flushes offline files), then barrier + destroy_process_group: without it, gloo
    runs abort at interpreter exit now and then."""
    import torch.distributed as dist
    from lightning.pytorch.loggers import WandbLogger

    for lg in trainer.loggers:
        if isinstance(lg, WandbLogger) and trainer.is_global_zero:
            lg.experiment.finish()

    if dist.is_available() and dist.is_initialized():
        trainer.strategy.barrier("fm-finish")
        dist.destroy_process_group()


def pretrain_main(args: list[str]) -> int:
    return run(args, "pretrain")


def finetune_main(args: list[str]) -> int:
    return run(args, "finetune")
