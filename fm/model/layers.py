"""Building blocks: RMSNorm, RoPE, SDPA attention, SwiGLU. Plain torch, no biases."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MaxFMRMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.type_as(x) * self.weight


def rope_cos_sin(n: int, head_dim: int, theta: float, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (n, head_dim). Computed per call: no buffers, so meta-device loading stays exact."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    ang = torch.outer(torch.arange(n, device=device, dtype=torch.float32), inv)
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos().to(dtype), ang.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (batch, heads, seq, head_dim)
    h = x.shape[-1] // 2
    rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
    return x * cos + rot * sin


class MaxFMAttention(nn.Module):
    """Multi-head self-attention over the second-to-last axis, through SDPA (FlashAttention on GPU)."""

    def __init__(self, d_model: int, n_heads: int, dropout: float, rope_theta: float | None):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.rope_theta = rope_theta
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        # x: (batch, seq, d_model); key_mask: (batch, seq) True = attend to this key
        b, s, d = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rope_theta is not None:
            cos, sin = rope_cos_sin(s, self.head_dim, self.rope_theta, x.device, q.dtype)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, s, d))


class MaxFMSwiGLU(nn.Module):
    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.gate_up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, u = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(g) * u)


class MaxFMBlock(nn.Module):
    """Time attention (RoPE, within each channel) -> channel attention (same patch) -> SwiGLU; pre-norm."""

    def __init__(self, d_model: int, n_heads: int, mlp_hidden: int, dropout: float, rope_theta: float, channel_attention: bool):
        super().__init__()
        self.time_norm = MaxFMRMSNorm(d_model)
        self.time_attn = MaxFMAttention(d_model, n_heads, dropout, rope_theta)
        self.channel_attention = channel_attention
        if channel_attention:
            self.chan_norm = MaxFMRMSNorm(d_model)
            self.chan_attn = MaxFMAttention(d_model, n_heads, dropout, None)
        self.mlp_norm = MaxFMRMSNorm(d_model)
        self.mlp = MaxFMSwiGLU(d_model, mlp_hidden)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, h: torch.Tensor, patch_mask: torch.Tensor | None, channel_mask: torch.Tensor | None
    ) -> torch.Tensor:
        # h: (batch, channels, patches, d_model); patch_mask: (batch, channels, patches) or None (all real);
        # channel_mask: (batch, channels) or None (all real)
        b, c, p, d = h.shape
        t = h.reshape(b * c, p, d)
        tm = None if patch_mask is None else patch_mask.reshape(b * c, p)
        h = h + self.drop(self.time_attn(self.time_norm(t), tm)).view(b, c, p, d)
        if self.channel_attention:
            x = h.transpose(1, 2).reshape(b * p, c, d)
            cm = None if channel_mask is None else channel_mask[:, None, :].expand(b, p, c).reshape(b * p, c)
            y = self.chan_attn(self.chan_norm(x), cm).view(b, p, c, d).transpose(1, 2)
            h = h + self.drop(y)
        return h + self.drop(self.mlp(self.mlp_norm(h)))
