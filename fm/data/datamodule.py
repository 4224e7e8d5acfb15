"""LightningDataModule over a corpus on disk."""

from __future__ import annotations

from dataclasses import asdict

import lightning as L
import torch
from torch.utils.data import DataLoader

from data_prep.corpus import load_corpus_manifest
from fm.data.sampling import ResumableDataLoader, ResumableSampler
from fm.data.windows import WindowDataset, WindowSpec, check_spec, collate, open_split


class CorpusDataModule(L.LightningDataModule):
    def __init__(
        self,
        corpus: str,
        context_patches: int = 32,
        horizon_patches: int = 4,
        batch_size: int = 32,
        mask_ratio: float = 0.15,
        mean_span: int = 3,
        min_context_patches: int | None = None,
        stride_patches: int = 1,
        eval_stride_patches: int | None = None,
        plants: list[str] | None = None,
        num_workers: int = 0,
        seed: int = 0,
        strict_resume: bool = True,
    ):
        """
        Args:
            corpus: Folder written by ``fm prep build``.
            context_patches: Patches of context per window.
            horizon_patches: Future patches per window (the forecast target).
            batch_size: Windows per batch (per device).
            mask_ratio: Share of context patches masked in random spans (reconstruction target); 0 = forecast only.
            mean_span: Mean length (patches) of a masked span.
            min_context_patches: Train on context lengths drawn in [this, context_patches] (left-padded, masked).
            stride_patches: Step between training windows, in patches.
            eval_stride_patches: Step between validation windows (default: horizon_patches, non-overlapping futures).
            plants: Only these plant ids (default: all).
            num_workers: DataLoader workers.
            seed: Seeds the shuffling and the masks.
            strict_resume: Refuse to resume from a checkpoint whose training data (corpus content hash,
                window settings, plants, seed) differs from this run's; False warns and goes on.
        """
        super().__init__()
        if context_patches < 1 or horizon_patches < 1:
            raise ValueError("context_patches and horizon_patches must be >= 1")
        if not 0 <= mask_ratio < 1:
            raise ValueError("mask_ratio must be in [0, 1)")
        self.save_hyperparameters()
        self.corpus = corpus
        self.manifest: dict | None = None

    def check_model_spec(self, model_spec) -> None:
        self.manifest = check_spec(self.corpus, model_spec)

    def _spec(self, train: bool) -> WindowSpec:
        hp = self.hparams
        if self.manifest is None:
            self.manifest = load_corpus_manifest(self.corpus)
        return WindowSpec(
            context_patches=hp.context_patches,
            horizon_patches=hp.horizon_patches,
            patch_len=int(self.manifest["tokenizer"]["patch_len"]),
            stride_patches=hp.stride_patches if train else (hp.eval_stride_patches or hp.horizon_patches),
            mask_ratio=hp.mask_ratio,
            mean_span=hp.mean_span,
            seed=hp.seed if train else hp.seed + 1,
            min_context_patches=hp.min_context_patches if train else None,
        )

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", None):
            self.train_set = WindowDataset(open_split(self.corpus, "train"), self._spec(True), self.hparams.plants)
            self.val_set = WindowDataset(open_split(self.corpus, "validation"), self._spec(False), self.hparams.plants)
            if len(self.train_set) == 0:
                raise ValueError(f"{self.corpus}: no training window of {self._spec(True).length} steps; shorten the context")

    def _rank_world(self) -> tuple[int, int]:
        t = self.trainer
        return (t.global_rank, t.world_size) if t is not None else (0, 1)

    def _progress(self) -> int:
        return self.trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def train_dataloader(self) -> DataLoader:
        # Each rank reads its own share of one seeded global order; the position is saved in checkpoints.
        rank, world = self._rank_world()
        sampler = ResumableSampler(len(self.train_set), self.hparams.seed, rank, world, shuffle=True)
        return ResumableDataLoader(
            self.train_set,
            batch_size=self.hparams.batch_size,
            sampler=sampler,
            collate_fn=collate,
            num_workers=self.hparams.num_workers,
            drop_last=True,
            progress=self._progress if self.trainer is not None else None,
            identity=self._identity(),
            strict=self.hparams.strict_resume,
            generator=self._loader_generator(),
        )

    def _loader_generator(self) -> torch.Generator:
        """A loader's own generator: starting an iterator draws a base seed from it. Drawn from the global
        RNG instead, a resumed run (whose iterator starts at the resume step, after the checkpoint's RNG
        state was restored) would move the global RNG, and dropout, off the uninterrupted run's sequence."""
        return torch.Generator().manual_seed(int(self.hparams.seed))

    def _identity(self) -> dict:
        """What decides the training samples; saved with the sampler position (see ResumableDataLoader)."""
        spec = asdict(self.train_set.spec)
        return {"corpus": self.manifest.get("content_hash"), "windows": len(self.train_set), "window_spec": spec,
                "plants": None if self.hparams.plants is None else sorted(self.hparams.plants)}

    def val_dataloader(self) -> DataLoader:
        rank, world = self._rank_world()
        sampler = ResumableSampler(len(self.val_set), self.hparams.seed, rank, world, shuffle=False)
        return DataLoader(
            self.val_set, batch_size=self.hparams.batch_size, sampler=sampler, collate_fn=collate,
            num_workers=self.hparams.num_workers, generator=self._loader_generator(),
        )
