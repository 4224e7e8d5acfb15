"""End to end: `fm demo` on a short synthetic history with few steps (the same stages as `make demo`)."""

import json
import re

from fm.demo import main


def test_demo_pipeline(tmp_path, capsys):
    w = tmp_path / "demo"
    assert main(["--workdir", str(w), "--days", "24", "--pretrain-steps", "20", "--finetune-steps", "10"]) == 0
    out = capsys.readouterr().out
    assert "MAX-FM demo: done" in out
    assert re.search(r"reload max \|diff\|\s+0\n", out)
    res = json.loads((w / "eval/energy_test.json").read_text())
    assert res["windows"] > 0 and res["model"]["MASE"] > 0 and res["seasonal_naive"]["MASE"] > 0
    release = w / "release/maxfm-tiny-energy"
    assert {p.name for p in release.iterdir()} == {"README.md", "config.json", "model.safetensors"}
    corpus = json.loads((w / "corpus/manifest.json").read_text())
    for p in corpus["plants"].values():
        assert p["kept"] + p["repaired"] + p["quarantined"] == p["rows_in"]
