import json
import subprocess
import sys

import pytest
import torch

from fm.model import MaxFMModel
from fm.release.export import export, load_model
from fm.release.push import push

FRESH = """
import sys, torch
import fm
from transformers import AutoModel, AutoConfig
model = AutoModel.from_pretrained(sys.argv[1]).eval()
assert type(model).__name__ == "MaxFMModel", type(model)
assert AutoConfig.from_pretrained(sys.argv[1]).model_type == "maxfm"
x = torch.load(sys.argv[2], weights_only=True)
with torch.no_grad():
    torch.save(model(x).quantiles, sys.argv[3])
"""


@pytest.mark.parametrize("source", ["checkpoint", "export_folder"])
def test_export_loads_in_fresh_process_with_automodel(pretrained, corpus, tmp_path, source):
    src = next(pretrained.rglob("last.ckpt")) if source == "checkpoint" else pretrained / "hf"
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({"model": {"MASE": 0.5}}))
    out = export(src, tmp_path / "release", name="org/maxfm-tiny", corpus=corpus, metrics=metrics)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    x = torch.randn(2, 3, 96, generator=torch.Generator().manual_seed(1))
    torch.save(x, tmp_path / "x.pt")
    subprocess.run([sys.executable, "-c", FRESH, str(out), str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
                   check=True, capture_output=True, text=True)
    fresh = torch.load(tmp_path / "y.pt", weights_only=True)
    mine = load_model(src).eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh, mine(x).quantiles, rtol=0, atol=0)
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers")
    assert "org/maxfm-tiny" in card and "line_c" in card and '"MASE": 0.5' in card


def test_checkpoint_and_export_hold_the_same_weights(pretrained):
    a = load_model(next(pretrained.rglob("last.ckpt")))
    b = MaxFMModel.from_pretrained(str(pretrained / "hf"))
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(p, q), n


def test_push_without_token_is_refused(pretrained, tmp_path, monkeypatch):
    out = export(pretrained / "hf", tmp_path / "rel")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    with pytest.raises(PermissionError, match="HF_TOKEN"):
        push(out, "org/maxfm-tiny")


def test_push_refuses_incomplete_folder(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="missing model.safetensors; run `fm export` first"):
        push(tmp_path, "org/x")
