"""MAX-FM model: plain torch + `transformers`. Imports no Lightning, DeepSpeed, wandb or torch.distributed.

Importing this package registers the model with the `transformers` Auto classes, so
``AutoModel.from_pretrained(folder)`` works after ``import fm``.
"""

from transformers import AutoConfig, AutoModel

from fm.model.config import ArchConfig, MaxFMConfig
from fm.model.modeling import MaxFMModel, MaxFMOutput, MaxFMPreTrainedModel

AutoConfig.register(MaxFMConfig.model_type, MaxFMConfig, exist_ok=True)
AutoModel.register(MaxFMConfig, MaxFMModel, exist_ok=True)

__all__ = ["ArchConfig", "MaxFMConfig", "MaxFMModel", "MaxFMOutput", "MaxFMPreTrainedModel"]
