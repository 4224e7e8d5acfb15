"""Model configuration: the few knobs that size a MAX-FM model, and its `transformers` config class.

``ArchConfig`` is the typed, validated source of truth (used by the training CLI and YAML in
``configs/model/``); ``MaxFMConfig`` is the ``PreTrainedConfig`` that travels inside every checkpoint and
export (``config.json``), so a model loads without the YAML that made it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from transformers import PreTrainedConfig

from data_prep.manifest import SENSOR_KINDS
from data_prep.tokenizer import TokenizerSpec

DEFAULT_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class ArchConfig:
    """Architecture of a MAX-FM model."""

    d_model: int = 64
    """Width of the residual stream."""
    n_layers: int = 2
    """Number of blocks; each block = time attention + channel attention + SwiGLU MLP."""
    n_heads: int = 4
    """Attention heads (d_model must divide evenly)."""
    mlp_ratio: float = 8 / 3
    """SwiGLU hidden width = round_up(mlp_ratio * d_model, 8)."""
    channel_attention: bool = True
    """Alternate time attention with attention across an asset's channels."""
    dropout: float = 0.0
    """Dropout on attention and MLP outputs."""
    rope_theta: float = 10000.0
    """RoPE base for time attention."""
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    """Quantile levels predicted for every masked or future value."""
    n_kinds: int = len(SENSOR_KINDS)
    """Size of the sensor-kind vocabulary (kind id 0 = other / unknown)."""
    max_horizon_patches: int = 64
    """Longest forecast (in patches) the model is asked for in one shot."""
    initializer_range: float = 0.02
    """Std of the normal init of linear and embedding weights."""
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    """The corpus tokenizer spec this model was built for (patch length, scaling...)."""

    def __post_init__(self) -> None:
        if isinstance(self.tokenizer, dict):
            self.tokenizer = TokenizerSpec(**self.tokenizer)
        self.quantiles = tuple(float(q) for q in self.quantiles)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError("head dim (d_model / n_heads) must be even for RoPE")
        if self.n_layers < 1:
            raise ValueError("n_layers must be >= 1")
        if not self.quantiles or any(not 0 < q < 1 for q in self.quantiles) or list(self.quantiles) != sorted(self.quantiles):
            raise ValueError(f"quantiles must be increasing levels in (0, 1), got {self.quantiles}")
        if 0.5 not in self.quantiles:
            raise ValueError("quantiles must include the median 0.5")

    @property
    def patch_len(self) -> int:
        return self.tokenizer.patch_len

    @property
    def mlp_hidden(self) -> int:
        return int(-(-int(self.mlp_ratio * self.d_model) // 8) * 8)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["quantiles"] = list(self.quantiles)
        return d


class MaxFMConfig(PreTrainedConfig):
    """`transformers` config of MAX-FM; its fields are those of :class:`ArchConfig`."""

    model_type = "maxfm"

    def __init__(self, **kwargs):
        names = {f.name for f in fields(ArchConfig)}
        arch = ArchConfig(**{k: kwargs.pop(k) for k in list(kwargs) if k in names})
        for k, v in arch.to_dict().items():
            setattr(self, k, v)
        super().__init__(**kwargs)

    @classmethod
    def from_arch(cls, arch: ArchConfig, **kwargs) -> MaxFMConfig:
        return cls(**arch.to_dict(), **kwargs)

    @property
    def arch(self) -> ArchConfig:
        return ArchConfig(**{f.name: getattr(self, f.name) for f in fields(ArchConfig)})

    @property
    def tokenizer_spec(self) -> TokenizerSpec:
        return TokenizerSpec(**self.tokenizer)
