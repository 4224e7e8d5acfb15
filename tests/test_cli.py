import subprocess
import sys

import pytest

from fm.cli import COMMANDS, main


def _fm(*args, **kw):
    return subprocess.run([sys.executable, "-m", "fm.cli", *args], capture_output=True, text=True, **kw)


def test_usage_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in ("prep", "pretrain", "finetune", "evaluate", "export", "push", "bench"):
        assert name in COMMANDS and f"  {name}" in out


def test_unbuilt_command_is_one_clear_line(monkeypatch, capsys):
    import fm.cli

    monkeypatch.setitem(fm.cli.COMMANDS, "serve", (None, "serving (a later issue)"))
    assert main(["serve", "--port", "1"]) == 2
    assert capsys.readouterr().err.strip() == "fm serve: not built yet"


def test_bench_dispatches_to_the_scripts():
    r = _fm("bench")
    assert r.returncode == 2 and "fm bench {prep|train}" in r.stderr
    r = _fm("bench", "train", "--help")
    assert r.returncode == 0 and "--sizes" in r.stdout


def test_unknown_command(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_bad_manifest_is_one_line_naming_file_and_key(tmp_path):
    bad = tmp_path / "plant.yaml"
    bad.write_text("plant_id: x\nstage: s\nsharing: secret\nfiles: []\ntags: []\nassets: {}\n")
    r = _fm("prep", "build", "--out", str(tmp_path / "c"), str(bad))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert str(bad) in r.stderr and "'sharing'" in r.stderr


def test_prep_inspect(corpus, capsys):
    assert main(["prep", "inspect", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert "line_c" in out and "quarantined 2" in out


@pytest.mark.parametrize("cmd", ["evaluate", "export"])
def test_missing_model_is_a_clear_error(cmd, tmp_path, corpus, capsys):
    args = {"evaluate": ["--model", str(tmp_path / "none"), "--corpus", str(corpus)],
            "export": ["--checkpoint", str(tmp_path / "none"), "--out", str(tmp_path / "o")]}[cmd]
    assert main([cmd, *args]) == 1
    assert str(tmp_path / "none") in capsys.readouterr().err


def test_bad_recipe_is_one_line(tmp_path, manifests, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("val_fraction: 0.6\ntest_fraction: 0.6\n")
    assert main(["prep", "build", "--recipe", str(recipe), "--out", str(tmp_path / "c"), *map(str, manifests)]) == 1
    err = capsys.readouterr().err
    assert str(recipe) in err and "sum to < 1" in err
