"""Governance: a shared corpus holds only what each owner allows, under keyed pseudonyms.

Canaries are planted in private data (a private plant and a private tag inside a consortium plant);
they must appear nowhere in a consortium corpus: not their names, not their raw values, not their
encoded values, not the key.
"""

import shutil

import numpy as np
import pytest
import yaml

from data_prep.corpus import PrepConfig, build_corpus
from data_prep.governance import GovernanceError, Names, allowed

SHARING = "private"
KEY = "test-key-0123456789abcdef"
CANARY_VALUE = "987654,321"  # as the kiln CSV writes it (decimal comma)


def _canary_plants(plants_dir, tmp_path):
    root = tmp_path / "plants"
    shutil.copytree(plants_dir, root)
    rng = np.random.default_rng(42)
    # 1) a private tag inside the consortium kiln: i.i.d. values, unique to this tag
    csv = root / "kiln_a/raw/kiln_export.csv"
    lines = csv.read_text().splitlines()
    canary = rng.uniform(500.0, 600.0, len(lines) - 1)
    canary[7] = 987654.321
    out = [lines[0] + ";CANARY_PRIVATE_TAG"]
    out += [line + ";" + f"{v:.3f}".replace(".", ",") for line, v in zip(lines[1:], canary, strict=True)]
    csv.write_text("\n".join(out) + "\n")
    man = yaml.safe_load((root / "kiln_a/plant.yaml").read_text())
    man["tags"].append({"name": "CANARY_PRIVATE_TAG", "asset": "kiln1", "kind": "other", "unit": "x",
                        "interval_s": 60, "limits": [0, 1e7], "sharing": SHARING})
    (root / "kiln_a/plant.yaml").write_text(yaml.safe_dump(man))
    # 2) a whole private plant
    sec = root / "secret_foundry"
    shutil.copytree(root / "line_c", sec)
    man = yaml.safe_load((sec / "plant.yaml").read_text())
    man.update(plant_id="secret_foundry", sharing="private")
    man["tags"][0]["name"] = "SECRET_FURNACE_KW"
    (sec / "plant.yaml").write_text(yaml.safe_dump(man))
    raw = sec / "raw/line_power.csv"
    raw.write_text(raw.read_text().replace("P_LINE_kW", "SECRET_FURNACE_KW"))
    return root, canary


def test_levels_order():
    assert allowed("public", "consortium") and allowed("consortium", "consortium")
    assert not allowed("private", "consortium") and not allowed("consortium", "public")
    assert all(allowed(level, "private") for level in ("private", "consortium", "public"))


def test_pseudonyms_are_keyed_and_stable():
    a, b, c = Names("consortium", KEY.encode()), Names("consortium", KEY.encode()), Names("consortium", b"another-key-0123456789")
    assert a("plant", "kiln_a") == b("plant", "kiln_a") != c("plant", "kiln_a")
    assert a("plant", "kiln_a") != a("asset", "kiln_a")
    assert Names("private", None)("plant", "kiln_a") == "kiln_a"
    assert KEY not in repr(a)
    with pytest.raises(GovernanceError, match="MAXFM_PSEUDONYM_KEY"):
        Names("consortium", None)


def test_canaries_never_reach_a_consortium_corpus(plants_dir, tmp_path, monkeypatch):
    root, canary = _canary_plants(plants_dir, tmp_path)
    monkeypatch.setenv("MAXFM_PSEUDONYM_KEY", KEY)
    manifests = sorted(root.glob("*/plant.yaml"))
    out = tmp_path / "shared"
    m = build_corpus(manifests, out, PrepConfig(sharing="consortium"), log=lambda *_: None)
    assert m["pseudonymized"] and m["plants_excluded_by_sharing"] == 1 and len(m["plants"]) == 3
    kiln = m["plants"][Names("consortium", KEY.encode())("plant", "kiln_a")]
    assert kiln["tags_withheld"] == 1

    needles = [b"CANARY_PRIVATE_TAG", b"secret_foundry", b"SECRET_FURNACE_KW", b"kiln_a", b"kiln_export",
               b"987654", KEY.encode()]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".arrow" for p in files)
    for p in files:
        data = p.read_bytes()
        for n in needles:
            assert n not in data, f"{n[:20]!r} leaked into {p.relative_to(out)}"

    # And the values: no stored channel correlates with the canary (the kiln rows start at the same instant).
    import datasets

    tr = datasets.load_from_disk(str(out / "data"))["train"].with_format("numpy")
    for r in tr:
        v = np.stack(r["values"])
        if v.shape[1] >= 1000:
            for ch in v:
                corr = np.corrcoef(ch[:1000], canary[:1000])[0, 1]
                assert not abs(corr) > 0.2


def test_private_corpus_keeps_names_and_everything(plants_dir, tmp_path):
    root, _ = _canary_plants(plants_dir, tmp_path)
    m = build_corpus(sorted(root.glob("*/plant.yaml")), tmp_path / "own", PrepConfig(), log=lambda *_: None)
    assert set(m["plants"]) == {"kiln_a", "line_c", "pump_b", "secret_foundry"}
    assert m["plants"]["kiln_a"]["tags_withheld"] == 0 and not m["pseudonymized"]


def test_public_corpus_takes_only_public(plants_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MAXFM_PSEUDONYM_KEY", KEY)
    m = build_corpus(sorted(plants_dir.glob("*/plant.yaml")), tmp_path / "pub", PrepConfig(sharing="public"), log=lambda *_: None)
    assert len(m["plants"]) == 1 and m["plants_excluded_by_sharing"] == 2  # only pump_b is public


def test_lineage_traces_rows_to_files(corpus):
    import datasets

    dd = datasets.load_from_disk(str(corpus / "data"))
    (tr,) = next(r for r in dd["train"] if r["plant_id"] == "kiln_a")["lineage"]
    (va,) = next(r for r in dd["validation"] if r["plant_id"] == "kiln_a")["lineage"]
    assert tr["file"] == va["file"] == "raw/kiln_export.csv" and len(tr["sha256"]) == 64
    assert tr["first_row"] == 0 and va["first_row"] == tr["last_row"] + 1  # consecutive row ranges per split


def test_cli_shared_corpus_with_key_file(plants_dir, tmp_path, monkeypatch, capsys):
    from fm.cli import main

    monkeypatch.delenv("MAXFM_PSEUDONYM_KEY", raising=False)
    manifests = [str(p) for p in sorted(plants_dir.glob("*/plant.yaml"))]
    # no key at all: one clear error, nothing built
    assert main(["prep", "build", "--sharing", "consortium", "--out", str(tmp_path / "c0"), *manifests]) == 1
    assert "MAXFM_PSEUDONYM_KEY" in capsys.readouterr().err
    short = tmp_path / "short.key"
    short.write_text("tooshort")
    assert main(["prep", "build", "--sharing", "consortium", "--key-file", str(short), "--out", str(tmp_path / "c1"),
                 *manifests]) == 1
    assert "at least 16 bytes" in capsys.readouterr().err
    key = tmp_path / "site.key"
    key.write_text(KEY + "\n")
    out = tmp_path / "c2"
    assert main(["prep", "build", "--sharing", "consortium", "--key-file", str(key), "--out", str(out), *manifests]) == 3
    text = capsys.readouterr().out
    assert "audience consortium" in text and "kiln_a" not in text
    assert Names("consortium", KEY.encode())("plant", "kiln_a") in text  # same key file = same pseudonyms as the env var
