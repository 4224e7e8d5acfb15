"""`fm prep`: build a corpus from plant manifests, write the synthetic plants, inspect a corpus.

    fm prep sim --out runs/plants [--seed 0 --days 60]
    fm prep build --out runs/corpus [--recipe configs/data/corpus.yaml] [--sharing consortium --key-file K]
                  [--num-proc 4] [--shard-index I --num-shards N] [--dry-run] MANIFEST [MANIFEST ...]
    fm prep merge --out runs/corpus [--recipe ...] MANIFEST [MANIFEST ...]   (after sharded builds)
    fm prep inspect runs/corpus

Exit status of build/merge: 0 = every input row kept or repaired; 3 = done, but rows or whole files were
quarantined (see parts/<plant>/quarantine.csv and report.txt); 1 = error (a message names the file/key).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data_prep.corpus import (
    SPLITS,
    PrepConfig,
    build_parts,
    load_corpus_manifest,
    merge,
    prep_plant,
    select_plants,
)
from data_prep.manifest import ManifestError

EXIT_QUARANTINED = 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fm prep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sim", help="write the synthetic plants (raw files + manifests)")
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--days", type=int, default=60, help="days of history of the energy line (kiln/pump: a third)")
    for name, help_ in (("build", "build a corpus (or this shard's plants) from plant manifests"),
                        ("merge", "merge the parts of sharded builds into one corpus")):
        b = sub.add_parser(name, help=help_)
        b.add_argument("manifests", nargs="+", help="plant manifest YAML files")
        b.add_argument("--out", required=True)
        b.add_argument("--recipe", default=None, help="corpus recipe YAML (tokenizer spec, splits, sharing); default: built-in")
        b.add_argument("--sharing", default=None, choices=["private", "consortium", "public"], help="corpus audience (overrides the recipe)")
        b.add_argument("--key-file", default=None, help="pseudonym key file (default: $MAXFM_PSEUDONYM_KEY)")
        b.add_argument("--data-root", default=None,
                       help="folder the manifests' relative raw-file paths point into (default: each manifest's folder); "
                            "for configs/data/real/*.yaml use the shared data folder, e.g. ../shared/data")
        if name == "build":
            b.add_argument("--num-proc", type=int, default=1,
                           help="plants prepared in parallel: worker processes, or threads of this process below 8 MB of raw input")
            b.add_argument("--shard-index", type=int, default=None, help="this task's shard (SLURM_ARRAY_TASK_ID)")
            b.add_argument("--num-shards", type=int, default=1, help="number of shards; > 1 writes parts only (merge after)")
            b.add_argument("--force", action="store_true", help="rebuild finished parts too")
            b.add_argument("--dry-run", action="store_true", help="validate manifests and raw files, print the reports, write nothing")
    i = sub.add_parser("inspect", help="print what a corpus holds")
    i.add_argument("corpus")
    return p


def inspect(corpus: str | Path) -> str:
    m = load_corpus_manifest(corpus)
    lines = [f"corpus {corpus}  tokenizer {json.dumps(m['tokenizer'], sort_keys=True)}  audience {m['recipe']['sharing']}"]
    head = f"{'plant':<26}{'stage':<12}{'sharing':<12}{'split':<12}{'series':>7}{'steps':>10}{'tokens':>10}{'missing%':>10}"
    lines.append(head)
    by_level: dict[tuple[str, str], list[int]] = {}
    for pid, p in sorted(m["plants"].items()):
        for s in SPLITS:
            c = p["splits"][s]
            if not c["series"]:
                continue
            lines.append(
                f"{pid:<26}{p['stage']:<12}{p['sharing']:<12}{s:<12}{c['series']:>7}{c['steps']:>10}{c['tokens']:>10}{c['missing_pct']:>10.2f}"
            )
            acc = by_level.setdefault((p["sharing"], s), [0, 0, 0])
            acc[0] += c["series"]
            acc[1] += c["steps"]
            acc[2] += c["tokens"]
        extra = f", {p['files_quarantined']} file(s) quarantined" if p["files_quarantined"] else ""
        lines.append(f"{'':<26}rows in {p['rows_in']}: kept {p['kept']}, repaired {p['repaired']}, quarantined {p['quarantined']}{extra}")
    lines.append("per sharing level")
    for (level, s), (n, steps, tokens) in sorted(by_level.items()):
        lines.append(f"{'':<26}{'':<12}{level:<12}{s:<12}{n:>7}{steps:>10}{tokens:>10}")
    if m.get("plants_excluded_by_sharing"):
        lines.append(f"{m['plants_excluded_by_sharing']} plant(s) left out: their sharing level does not allow this audience")
    return "\n".join(lines)


def _dry_run(a, cfg: PrepConfig) -> int:
    from data_prep.corpus import human_report, part_plan
    from data_prep.governance import Names, load_key

    key = load_key(a.key_file)
    names = Names(cfg.sharing, key)
    sel = select_plants(a.manifests, cfg, a.data_root)
    bad = 0
    for m in sel.included:
        res = prep_plant(m, cfg, names)
        print(human_report(res.report), end="")
        bad += res.report["quarantined"] + len(res.report["files_quarantined"])
    if (Path(a.out) / "parts").is_dir():  # what a build into this folder would redo (a rerun, a changed plant)
        plans = {names("plant", m.plant_id): part_plan(m.source, a.out, cfg, key, a.data_root) for m in sel.included}
        rebuild = [f"{pid} ({why})" for pid, (verb, why) in plans.items() if verb == "build"]
        print(f"[prep] dry run: in {a.out}, {len(plans) - len(rebuild)} part(s) would be reused and {len(rebuild)} built"
              + (": " + ", ".join(rebuild) if rebuild else ""))
    print(f"[prep] dry run: {len(sel.included)} plant(s) valid, {sel.excluded} left out by sharing; nothing written")
    return EXIT_QUARANTINED if bad else 0


def main(argv: list[str]) -> int:
    a = _parser().parse_args(argv)
    if a.cmd == "sim":
        from data_prep.sim import make_plants

        for path in make_plants(a.out, seed=a.seed, days=a.days):
            print(path)
        return 0
    if a.cmd == "inspect":
        print(inspect(a.corpus))
        return 0
    try:
        cfg = PrepConfig.from_yaml(a.recipe, sharing=a.sharing) if a.recipe else PrepConfig(**({"sharing": a.sharing} if a.sharing else {}))
    except (ValueError, TypeError) as e:  # a bad recipe is the user's input: one line naming the file
        raise ManifestError(f"recipe {a.recipe or '(built-in)'}: {e}") from None
    if a.cmd == "build" and a.dry_run:
        return _dry_run(a, cfg)
    if a.cmd == "build":
        shard = a.shard_index if a.shard_index is not None else 0
        infos = build_parts(a.manifests, a.out, cfg, a.key_file, num_proc=a.num_proc, shard_index=shard,
                            num_shards=a.num_shards, force=a.force, data_root=a.data_root)
        if a.num_shards > 1:
            print(f"[prep] shard {shard}/{a.num_shards}: {len(infos)} plant part(s) in {Path(a.out) / 'parts'}; "
                  "run `fm prep merge` when every shard is done")
        else:
            merge(a.manifests, a.out, cfg, a.key_file, data_root=a.data_root)
            print(inspect(a.out))
        bad = sum(i["quarantined"] + i["files_quarantined"] for i in infos)
    else:
        m = merge(a.manifests, a.out, cfg, a.key_file, data_root=a.data_root)
        print(inspect(a.out))
        bad = sum(p["quarantined"] + p["files_quarantined"] for p in m["plants"].values())
    if bad:
        print(f"[prep] quarantined: {bad} input row(s)/file(s); see {Path(a.out) / 'parts'}/<plant>/report.txt")
        return EXIT_QUARANTINED
    return 0
