"""MAX-FM: a patch transformer over an asset's channels, as a `transformers` PreTrainedModel.

Design choices:
- Input is (batch, channels, time) in corpus-scaled units + observed mask + sensor kind per channel; the
  model cuts it into patches of ``patch_len`` (one token per patch per channel).
- Instance normalization per channel over the *visible* values only (observed and not masked as a target),
  so what the model has to predict never leaks into its own input statistics.
- A token embeds the normalized patch and its observed mask (so "missing" and "zero" differ), plus a
  sensor-kind embedding and, for patches to predict, a learned mask embedding.
- Blocks alternate time attention (RoPE, bidirectional, within a channel) and channel attention (across
  an asset's channels at the same patch; no positions: channels are a set), then a SwiGLU MLP.
- One output head predicts ``patch_len x n_quantiles`` values for every token. Forecasting is masked
  prediction of appended future patches; imputation and anomaly scoring are masked prediction inside the
  context: one objective, one head.
- ``MaxFMModel`` (registered with ``AutoModel``) is the foundation model: forecasts, hidden states,
  pooled embeddings. Task heads wrap it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from fm.model.config import MaxFMConfig
from fm.model.layers import MaxFMBlock, MaxFMRMSNorm

_EPS = 1e-5


@dataclass
class MaxFMOutput(ModelOutput):
    """Output of :class:`MaxFMModel`.

    ``quantiles_norm`` is in instance-normalized units; ``quantiles`` is the same in input units.
    """

    quantiles_norm: torch.Tensor | None = None  # (batch, channels, patches, patch_len, n_quantiles)
    loc: torch.Tensor | None = None  # (batch, channels, 1)
    scale: torch.Tensor | None = None  # (batch, channels, 1)
    hidden_states: torch.Tensor | None = None  # (batch, channels, patches, d_model)

    @property
    def quantiles(self) -> torch.Tensor:
        return self.quantiles_norm * self.scale[..., None, None] + self.loc[..., None, None]


def instance_norm(x: torch.Tensor, visible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean/std per (batch, channel) over visible values. x, visible: (batch, channels, time)."""
    w = visible.to(x.dtype)
    n = w.sum(-1, keepdim=True)
    loc = (x * w).sum(-1, keepdim=True) / n.clamp_min(1.0)
    var = (((x - loc) * w) ** 2).sum(-1, keepdim=True) / n.clamp_min(1.0)
    scale = torch.where(n > 1, var.add(_EPS).sqrt(), torch.ones_like(var))
    return loc, scale


class MaxFMPreTrainedModel(PreTrainedModel):
    config_class = MaxFMConfig
    base_model_prefix = "maxfm"
    main_input_name = "values"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["MaxFMBlock"]


class MaxFMModel(MaxFMPreTrainedModel):
    def __init__(self, config: MaxFMConfig):
        super().__init__(config)
        arch = config.arch
        self.patch_len = arch.patch_len
        self.n_quantiles = len(arch.quantiles)
        self.embed = nn.Linear(2 * arch.patch_len, arch.d_model, bias=False)
        self.kind_embed = nn.Embedding(arch.n_kinds, arch.d_model)
        self.mask_embed = nn.Embedding(1, arch.d_model)
        self.blocks = nn.ModuleList(
            MaxFMBlock(arch.d_model, arch.n_heads, arch.mlp_hidden, arch.dropout, arch.rope_theta, arch.channel_attention)
            for _ in range(arch.n_layers)
        )
        self.norm = MaxFMRMSNorm(arch.d_model)
        self.head = nn.Linear(arch.d_model, arch.patch_len * self.n_quantiles, bias=False)
        self.gradient_checkpointing = False
        self.post_init()

    def forward(
        self,
        values: torch.Tensor,  # (batch, channels, time), time a multiple of patch_len
        observed: torch.Tensor | None = None,  # (batch, channels, time) bool
        kinds: torch.Tensor | None = None,  # (batch, channels) long sensor-kind ids
        target_mask: torch.Tensor | None = None,  # (batch, channels, patches) bool: patches to predict
        channel_mask: torch.Tensor | None = None,  # (batch, channels) bool: real (not padded) channels
        patch_mask: torch.Tensor | None = None,  # (batch, channels, patches) bool: real (not padded) patches
    ) -> MaxFMOutput:
        b, c, t = values.shape
        L = self.patch_len
        if t % L:
            raise ValueError(f"time length {t} is not a multiple of patch_len {L}; left-pad with unobserved values")
        p = t // L
        dev = values.device
        if observed is None:
            observed = torch.isfinite(values)
        values = torch.nan_to_num(values) * observed
        if kinds is None:
            kinds = torch.zeros(b, c, dtype=torch.long, device=dev)
        if target_mask is None:
            target_mask = torch.zeros(b, c, p, dtype=torch.bool, device=dev)
        if channel_mask is None:
            channel_mask = torch.ones(b, c, dtype=torch.bool, device=dev)
        if patch_mask is None:
            patch_mask = torch.ones(b, c, p, dtype=torch.bool, device=dev)
        patch_mask = patch_mask & channel_mask[:, :, None]
        # A sequence with no real key (a padded channel) attends to everything: its output is ignored.
        patch_mask = patch_mask | ~patch_mask.any(-1, keepdim=True)
        # Without padding, attend without a mask: SDPA can then pick FlashAttention on GPU.
        time_keys = None if bool(patch_mask.all()) else patch_mask
        channel_keys = None if bool(channel_mask.all()) else channel_mask

        visible = observed & ~target_mask.repeat_interleave(L, dim=-1)
        loc, scale = instance_norm(values, visible)
        x = ((values - loc) / scale) * visible
        x = x.view(b, c, p, L)
        vis = visible.view(b, c, p, L).to(x.dtype)
        h = self.embed(torch.cat([x, vis], dim=-1))
        h = h + self.kind_embed(kinds)[:, :, None, :]
        h = h + target_mask[..., None].to(h.dtype) * self.mask_embed.weight[0]
        for blk in self.blocks:
            if self.gradient_checkpointing and self.training:
                h = self._gradient_checkpointing_func(blk.__call__, h, time_keys, channel_keys)
            else:
                h = blk(h, time_keys, channel_keys)
        h = self.norm(h)
        q = self.head(h).view(b, c, p, L, self.n_quantiles)
        return MaxFMOutput(quantiles_norm=q, loc=loc, scale=scale, hidden_states=h)

    @torch.no_grad()
    def forecast(
        self,
        context: torch.Tensor,  # (batch, channels, time)
        horizon: int,
        observed: torch.Tensor | None = None,
        kinds: torch.Tensor | None = None,
        channel_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Quantile forecasts (batch, channels, horizon, n_quantiles) for the ``horizon`` steps after ``context``.

        The context is left-padded (unobserved) to a whole number of patches; the future is appended as
        masked patches and predicted in one pass.
        """
        b, c, t = context.shape
        L = self.patch_len
        if observed is None:
            observed = torch.isfinite(context)
        pad = (-t) % L
        hp = -(-horizon // L)
        if hp > self.config.max_horizon_patches:
            raise ValueError(f"horizon {horizon} needs {hp} patches > max_horizon_patches={self.config.max_horizon_patches}")
        z = context.new_zeros(b, c, pad)
        f = context.new_zeros(b, c, hp * L)
        values = torch.cat([z, torch.nan_to_num(context), f], dim=-1)
        obs = torch.cat([z.bool(), observed.bool(), f.bool()], dim=-1)
        p = values.shape[-1] // L
        tm = torch.zeros(b, c, p, dtype=torch.bool, device=context.device)
        tm[..., p - hp :] = True
        out = self(values, obs, kinds=kinds, target_mask=tm, channel_mask=channel_mask)
        q = out.quantiles[:, :, p - hp :].reshape(b, c, hp * L, self.n_quantiles)
        return q[:, :, :horizon]

    @torch.no_grad()
    def embed_series(
        self, values: torch.Tensor, observed: torch.Tensor | None = None, kinds: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Pooled embedding (batch, d_model): mean of hidden states over channels and patches."""
        h = self(values, observed, kinds).hidden_states
        return h.mean(dim=(1, 2))

