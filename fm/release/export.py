"""Release folder: config.json + model.safetensors + README.md (model card), loadable with
``transformers.AutoModel.from_pretrained(folder)`` after ``import fm``.

The source is an HF export folder (``save_pretrained``), a Lightning checkpoint file, or a DeepSpeed ZeRO
checkpoint folder (sharded; consolidated to fp32 here). Checkpoints are read with
``torch.load(weights_only=True)`` (no pickle code execution) and carry their resolved config.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from fm.model import ArchConfig, MaxFMConfig, MaxFMModel


def _load_zero_checkpoint(src: Path) -> tuple[dict, dict]:
    """(hyper_parameters, fp32 state dict) of a DeepSpeed ZeRO checkpoint folder written by Lightning, read
    without pickle (``fm.training.strategies.deepspeed_weights_only``)."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    from fm.training.strategies import deepspeed_weights_only

    states = sorted((src / "checkpoint").glob("*model_states.pt"))
    if not states:
        raise FileNotFoundError(f"{src}: a DeepSpeed checkpoint folder without model_states files")
    with deepspeed_weights_only():
        client = torch.load(states[0], map_location="cpu")
        state = get_fp32_state_dict_from_zero_checkpoint(str(src))
    return client["hyper_parameters"], state


def load_model(src: str | Path) -> MaxFMModel:
    """A MAX-FM model from an export folder, a Lightning checkpoint file, or a DeepSpeed (ZeRO) checkpoint folder."""
    src = Path(src)
    if src.is_dir() and (src / "checkpoint").is_dir():
        hparams, state = _load_zero_checkpoint(src)
        return _from_lightning_state(hparams, state, src)
    if src.is_dir():
        if not (src / "config.json").is_file():
            raise FileNotFoundError(f"{src}: no config.json; expected a MAX-FM export folder or a .ckpt file")
        return MaxFMModel.from_pretrained(str(src))
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such checkpoint or export folder")
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    return _from_lightning_state(ckpt.get("hyper_parameters", {}), ckpt["state_dict"], src)


def _from_lightning_state(hparams: dict, state_dict: dict, src: Path) -> MaxFMModel:
    try:
        arch = ArchConfig(**hparams["arch"])
    except KeyError:
        raise ValueError(f"{src}: not a MAX-FM Lightning checkpoint (no hyper_parameters.arch)") from None
    return backbone_from_state_dict(MaxFMConfig.from_arch(arch), state_dict)


def backbone_from_state_dict(config: MaxFMConfig, state: dict, prefix: str = "model.") -> MaxFMModel:
    """A fresh ``MaxFMModel`` (CPU) holding the backbone weights of a full, unsharded ``MaxFMModule``
    state dict (its keys under ``prefix``); every backbone weight must be there."""
    model = MaxFMModel(config)
    model.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
    return model


def model_card(model: MaxFMModel, name: str, corpus_manifest: dict | None, metrics: dict | None) -> str:
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())
    lines = [
        "---",
        "library_name: transformers",
        "license: apache-2.0",
        "pipeline_tag: time-series-forecasting",
        "tags: [time-series, foundation-model, manufacturing, max-fm]",
        "---",
        f"# {name}",
        "",
        "A MAX-FM time-series foundation model for manufacturing sensor data: a patch transformer that",
        "alternates attention over time (within a sensor channel) and across the channels of one asset,",
        "and predicts quantiles for masked and future patches.",
        "",
        "## Use",
        "```python",
        "import fm  # registers MAX-FM with the transformers Auto classes (pip install max-fm)",
        "import torch",
        "from transformers import AutoModel",
        f'model = AutoModel.from_pretrained("{name}").eval()',
        "context = torch.randn(1, 3, 512)  # (batch, channels, time), corpus-scaled values",
        "quantiles = model.forecast(context, horizon=64)  # (batch, channels, 64, n_quantiles)",
        "```",
        "",
        "## Architecture",
        "| knob | value |",
        "|---|---|",
        f"| parameters | {n_params:,} |",
        f"| d_model / layers / heads | {cfg.d_model} / {cfg.n_layers} / {cfg.n_heads} |",
        f"| channel attention | {cfg.channel_attention} |",
        f"| quantiles | {', '.join(str(q) for q in cfg.quantiles)} |",
        f"| tokenizer | {json.dumps(cfg.tokenizer, sort_keys=True)} |",
        "",
        "Inputs must be tokenized with the same spec (patch length, scaling, clipping) as the training corpus.",
    ]
    if corpus_manifest:
        lines += ["", "## Training data", "| plant | stage | sharing | train tokens |", "|---|---|---|---|"]
        for pid, p in sorted(corpus_manifest.get("plants", {}).items()):
            lines.append(f"| {pid} | {p['stage']} | {p['sharing']} | {p['splits']['train']['tokens']:,} |")
    if metrics:
        lines += ["", "## Evaluation", "```json", json.dumps(metrics, indent=2, sort_keys=True), "```"]
    lines += ["", "## Limitations", "Trained at the scale stated above; check the evaluation against simple baselines",
              "on your own plant before relying on its forecasts."]
    return "\n".join(lines) + "\n"


def export(src: str | Path, out: str | Path, name: str | None = None, corpus: str | Path | None = None,
           metrics: str | Path | None = None) -> Path:
    model = load_model(src)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    manifest = json.loads((Path(corpus) / "manifest.json").read_text()) if corpus else None
    met = json.loads(Path(metrics).read_text()) if metrics else None
    (out / "README.md").write_text(model_card(model, name or out.name, manifest, met), encoding="utf-8")
    return out
