"""Windows over the corpus: the training and evaluation samples of MAX-FM.

A window is ``context_patches + horizon_patches`` patches of one asset (all its channels). The last
``horizon_patches`` are the *future* (always masked: the forecast target); inside the context, random spans
of patches are masked with probability ``mask_ratio`` (the reconstruction target). Masks are drawn from a
generator seeded by (seed, window index), so a window is the same sample whenever and wherever it is read:
resumed runs and other ranks see exactly the same data for the same index.

Validation/test rows carry ``prefix_len`` leading steps from the previous split: windows there start so
that their future lies entirely after the prefix (the prefix is context only, never a target).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from data_prep.corpus import load_corpus_manifest
from data_prep.tokenizer import TokenizerSpec


def _nested_to_numpy(scalar, dtype) -> np.ndarray:
    """A list<list<x>> Arrow scalar (channels of equal length) as a (channels, time) array. Float buffers
    are viewed without a copy; booleans are bit-packed in Arrow and get unpacked."""
    channels = scalar.values  # ListArray: one list per channel
    flat = channels.flatten()
    n = len(channels)
    arr = flat.to_numpy(zero_copy_only=False)
    return arr.astype(dtype, copy=False).reshape(n, -1) if n else np.zeros((0, 0), dtype)


class SpecMismatchError(ValueError):
    """A corpus was built with another tokenizer spec than the model's."""


def check_spec(corpus: str | Path, model_spec: TokenizerSpec) -> dict:
    """Refuse a corpus whose tokenizer spec differs from the model's (like an LLM refuses another tokenizer)."""
    manifest = load_corpus_manifest(corpus)
    corpus_spec = manifest["tokenizer"]
    if corpus_spec != model_spec.to_dict():
        diff = {k: (corpus_spec.get(k), v) for k, v in model_spec.to_dict().items() if corpus_spec.get(k) != v}
        raise SpecMismatchError(
            f"{corpus}: corpus tokenizer spec differs from the model config's (key: (corpus, model)) {diff}; "
            "rebuild the corpus with the model's spec or pick a model config that matches"
        )
    return manifest


def open_split(corpus: str | Path, split: str):
    import datasets

    path = Path(corpus) / "data"
    if not path.is_dir():
        raise FileNotFoundError(f"{corpus}: no data/ folder; build the corpus with `fm prep build`")
    dd = datasets.load_from_disk(str(path))
    if split not in dd:
        raise KeyError(f"{corpus}: no split {split!r}; splits are {list(dd)}")
    return dd[split]


@dataclass
class WindowSpec:
    context_patches: int
    horizon_patches: int
    patch_len: int
    stride_patches: int = 1
    mask_ratio: float = 0.0
    mean_span: int = 3
    seed: int = 0
    min_context_patches: int | None = None
    """When set, each window's context length is drawn in [min_context_patches, context_patches]; the
    rest is left padding (unobserved, ``patch_mask`` False): variable context lengths in one batch."""

    def __post_init__(self) -> None:
        if self.min_context_patches is not None and not 1 <= self.min_context_patches <= self.context_patches:
            raise ValueError("min_context_patches must be in [1, context_patches]")

    @property
    def length(self) -> int:
        return (self.context_patches + self.horizon_patches) * self.patch_len


class WindowDataset(Dataset):
    """Map-style dataset of windows over one split of a corpus."""

    def __init__(self, rows, spec: WindowSpec, plants: list[str] | None = None, min_observed: float = 0.5):
        """``rows``: one split of a corpus (a memory-mapped ``datasets.Dataset``). Only the window index and
        per-series metadata are held in memory; window values are sliced out of the Arrow buffers on access."""
        self.spec = spec
        if getattr(rows, "_indices", None) is not None:  # a select()/filter() view: row numbers must be physical
            rows = rows.flatten_indices()
        self.rows = rows  # pickles by file path (DataLoader workers re-map it), not by value
        self.series: list[dict] = []
        index = []
        W, L = spec.length, spec.patch_len
        meta = rows.select_columns(["series_id", "plant_id", "kinds", "loc", "scale", "channels", "interval_s", "prefix_len"])
        observed_col = rows.data.table.column("observed")
        for row, r in enumerate(meta):
            if plants and r["plant_id"] not in plants:
                continue
            observed = _nested_to_numpy(observed_col[row], bool)  # (channels, time), transient
            sid = len(self.series)
            self.series.append(
                {
                    "row": row,
                    "series_id": r["series_id"],
                    "kinds": np.asarray(r["kinds"], dtype=np.int64),
                    "loc": np.asarray(r["loc"], dtype=np.float64),
                    "scale": np.asarray(r["scale"], dtype=np.float64),
                    "channels": list(r["channels"]),
                    "interval_s": float(r["interval_s"]),
                    "prefix_len": int(r["prefix_len"]),
                    "length": observed.shape[1],
                }
            )
            T = observed.shape[1]
            first = max(0, int(r["prefix_len"]) - spec.context_patches * L)
            for s in range(first, T - W + 1, spec.stride_patches * L):
                fut = observed[:, s + spec.context_patches * L : s + W]
                ctx = observed[:, s : s + spec.context_patches * L]
                if ctx.mean() >= min_observed and fut.any():
                    index.append((sid, s))
        self.index = np.asarray(index, dtype=np.int64).reshape(-1, 2)

    def window_arrays(self, sid: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        """(values float32, observed bool), each (channels, window length), read from the Arrow buffers."""
        row = self.series[sid]["row"]
        table = self.rows.data.table
        W = self.spec.length

        def window(column: str, dtype) -> np.ndarray:  # slice each channel in Arrow, convert only the window
            channels = table.column(column)[row].values
            return np.stack([channels[c].values.slice(start, W).to_numpy(zero_copy_only=False).astype(dtype)
                             for c in range(len(channels))])

        return window("values", np.float32), window("observed", bool)

    def __len__(self) -> int:
        return len(self.index)

    def pad_patches(self, i: int) -> int:
        """Left-padding patches of window ``i`` (0 unless variable context lengths are on)."""
        sp = self.spec
        if sp.min_context_patches is None:
            return 0
        rng = np.random.default_rng((sp.seed, int(i), 1))
        return sp.context_patches - int(rng.integers(sp.min_context_patches, sp.context_patches + 1))

    def target_mask(self, i: int) -> np.ndarray:
        """(patches,) bool: masked context spans (reconstruction) + the future patches (forecast)."""
        sp = self.spec
        p = sp.context_patches + sp.horizon_patches
        pad = self.pad_patches(i)
        m = np.zeros(p, dtype=bool)
        m[sp.context_patches :] = True
        if sp.mask_ratio > 0:
            rng = np.random.default_rng((sp.seed, int(i)))
            real = sp.context_patches - pad
            want = int(round(sp.mask_ratio * real))
            while m[pad : sp.context_patches].sum() < want:
                span = int(rng.geometric(1.0 / sp.mean_span))
                start = pad + int(rng.integers(0, real))
                m[start : min(start + span, sp.context_patches)] = True
        return m

    def __getitem__(self, i: int) -> dict:
        sid, s = self.index[i]
        r = self.series[sid]
        L = self.spec.patch_len
        values, observed = self.window_arrays(int(sid), int(s))
        c = values.shape[0]
        p = self.spec.context_patches + self.spec.horizon_patches
        pad = self.pad_patches(i)
        values[:, : pad * L] = 0.0
        observed[:, : pad * L] = False
        patch_mask = np.ones((c, p), dtype=bool)
        patch_mask[:, :pad] = False
        return {
            "values": torch.from_numpy(values),
            "observed": torch.from_numpy(observed),
            "kinds": torch.from_numpy(r["kinds"]),
            "target_mask": torch.from_numpy(np.broadcast_to(self.target_mask(i), (c, p)).copy()),
            "patch_mask": torch.from_numpy(patch_mask),
            "n_future": self.spec.horizon_patches,
        }


def collate(items: list[dict]) -> dict:
    """Stack windows, padding channels to the widest asset in the batch (channel_mask marks real ones)."""
    c = max(it["values"].shape[0] for it in items)
    b = len(items)
    t = items[0]["values"].shape[1]
    p = items[0]["target_mask"].shape[1]
    out = {
        "values": torch.zeros(b, c, t),
        "observed": torch.zeros(b, c, t, dtype=torch.bool),
        "kinds": torch.zeros(b, c, dtype=torch.long),
        "target_mask": torch.zeros(b, c, p, dtype=torch.bool),
        "patch_mask": torch.zeros(b, c, p, dtype=torch.bool),
        "channel_mask": torch.zeros(b, c, dtype=torch.bool),
        "n_future": torch.tensor(items[0]["n_future"]),
    }
    for j, it in enumerate(items):
        k = it["values"].shape[0]
        out["values"][j, :k] = it["values"]
        out["observed"][j, :k] = it["observed"]
        out["kinds"][j, :k] = it["kinds"]
        out["target_mask"][j, :k] = it["target_mask"]
        out["patch_mask"][j, :k] = it["patch_mask"]
        out["channel_mask"][j, :k] = True
    return out
