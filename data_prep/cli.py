"""`fm prep`: build a corpus from plant manifests, write the synthetic plants, inspect a corpus.

    fm prep sim --out runs/plants [--seed 0 --days 60]
    fm prep build --out runs/corpus [--recipe configs/data/corpus.yaml] MANIFEST [MANIFEST ...]
    fm prep inspect runs/corpus
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data_prep.corpus import SPLITS, PrepConfig, build_corpus, load_corpus_manifest


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fm prep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sim", help="write the synthetic plants (raw files + manifests)")
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--days", type=int, default=60, help="days of history of the energy line (kiln/pump: a third)")
    b = sub.add_parser("build", help="build a corpus from plant manifests")
    b.add_argument("manifests", nargs="+", help="plant manifest YAML files")
    b.add_argument("--out", required=True)
    b.add_argument("--recipe", default=None, help="corpus recipe YAML (tokenizer spec, splits); default: built-in")
    i = sub.add_parser("inspect", help="print what a corpus holds")
    i.add_argument("corpus")
    return p


def inspect(corpus: str | Path) -> str:
    m = load_corpus_manifest(corpus)
    lines = [f"corpus {corpus}  tokenizer {json.dumps(m['tokenizer'], sort_keys=True)}"]
    lines.append(f"{'plant':<14}{'stage':<12}{'sharing':<12}{'split':<12}{'series':>7}{'steps':>10}{'tokens':>10}{'missing%':>10}")
    for pid, p in sorted(m["plants"].items()):
        for s in SPLITS:
            c = p["splits"][s]
            lines.append(
                f"{pid:<14}{p['stage']:<12}{p['sharing']:<12}{s:<12}{c['series']:>7}{c['steps']:>10}{c['tokens']:>10}{c['missing_pct']:>10.2f}"
            )
        lines.append(f"{'':<14}rows in {p['rows_in']}: kept {p['kept']}, repaired {p['repaired']}, quarantined {p['quarantined']}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    a = _parser().parse_args(argv)
    if a.cmd == "sim":
        from data_prep.sim import make_plants

        for path in make_plants(a.out, seed=a.seed, days=a.days):
            print(path)
        return 0
    if a.cmd == "build":
        cfg = PrepConfig.from_yaml(a.recipe) if a.recipe else PrepConfig()
        m = build_corpus(a.manifests, a.out, cfg)
        print(inspect(a.out))
        quarantined = sum(p["quarantined"] for p in m["plants"].values())
        if quarantined:
            print(f"[prep] {quarantined} input rows quarantined; see {Path(a.out) / 'quarantine'}")
        return 0
    print(inspect(a.corpus))
    return 0
