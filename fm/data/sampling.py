"""Deterministic, rank-sharded, resumable sampling.

Every epoch has one global order (a permutation seeded by (seed, epoch)); rank ``r`` of ``w`` reads
positions ``r, r + w, r + 2w, ...`` of it, truncated so every rank has the same number of samples. The
loader is *stateful* for Lightning (``state_dict`` / ``load_state_dict``): a checkpoint records how many
samples of the current epoch this rank has consumed, and a resumed run skips exactly those, so it sees the
batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Sampler


class ResumableSampler(Sampler[int]):
    def __init__(self, n: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.n, self.seed, self.rank, self.world_size, self.shuffle = n, seed, rank, world_size, shuffle
        self.epoch = 0  # the pass being read
        self._next = 0
        self._resume: tuple[int, int] | None = None  # (epoch, samples to skip)

    def set_epoch(self, epoch: int) -> None:
        """Ignored on purpose: the sampler counts its own passes. Lightning's epoch counter moves on when a
        run stops at max_steps mid-epoch, so after a resume it no longer names the pass being read."""

    def __len__(self) -> int:
        return self.n // self.world_size

    def order(self, epoch: int) -> torch.Tensor:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = torch.randperm(self.n, generator=g)
        else:
            perm = torch.arange(self.n)
        return perm[self.rank :: self.world_size][: len(self)]

    def __iter__(self) -> Iterator[int]:
        if self._resume is not None:
            epoch, skip = self._resume
            self._resume = None
        else:
            epoch, skip = self._next, 0
        self.epoch, self._next = epoch, epoch + 1
        yield from self.order(epoch)[skip:].tolist()

    def resume_at(self, epoch: int, samples: int) -> None:
        self._resume = (epoch, samples)


class ResumableDataLoader(DataLoader):
    """A DataLoader over a :class:`ResumableSampler` whose position travels in Lightning checkpoints.

    ``progress`` returns the batches of the current epoch consumed by the training loop; the data module
    wires it to the trainer's loop counter, which is exact at checkpoint time (the loader itself runs
    ahead of training by the prefetched batch). The epoch is the sampler's (set by Lightning)."""

    def __init__(self, *args, progress: Callable[[], int] | None = None, identity: dict | None = None,
                 strict: bool = True, **kwargs):
        """``identity``: what defines the samples (corpus content hash, window count and settings...); it
        is saved with the position, and a resume whose identity differs is refused (``strict``) or warned
        about: the saved position would point into another order."""
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, ResumableSampler):
            raise TypeError("ResumableDataLoader needs a ResumableSampler")
        self._progress = progress
        self._identity = identity
        self._strict = strict

    def state_dict(self) -> dict:
        batches = self._progress() if self._progress else 0
        state = {"epoch": int(self.sampler.epoch), "samples": int(batches * self.batch_size), "seed": self.sampler.seed,
                 "world_size": self.sampler.world_size}
        if self._identity is not None:
            state["data"] = self._identity
        return state

    def load_state_dict(self, state: dict) -> None:
        if state.get("world_size", self.sampler.world_size) != self.sampler.world_size:
            raise ValueError(
                f"checkpoint was written with {state['world_size']} data-parallel ranks, this run has "
                f"{self.sampler.world_size}: the sample order would differ (resume on the same world size)"
            )
        changed = []
        if state.get("seed", self.sampler.seed) != self.sampler.seed:
            changed.append(f"seed {state['seed']!r} -> {self.sampler.seed!r}")
        saved, mine = state.get("data"), self._identity
        if saved is not None and mine is not None:  # checkpoints from before identities carry none
            changed += [f"{k} {saved.get(k)!r} -> {mine.get(k)!r}" for k in sorted({*saved, *mine}) if saved.get(k) != mine.get(k)]
        if changed:
            msg = ("the checkpoint's training data differs from this run's (" + "; ".join(changed) + "): the resumed "
                   "run would not see the batches the interrupted one would have. Resume with the same corpus and data "
                   "settings, or start a new run from the checkpoint's weights; --data.strict_resume false goes on anyway")
            if self._strict:
                raise ValueError(msg)
            warnings.warn(msg, stacklevel=2)
        self.sampler.resume_at(state["epoch"], state["samples"])
