"""`fm`: one entry point, thin; each subcommand delegates to the package that does the work."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> ("module:function", help). A None target is a stage that is not built yet.
COMMANDS: dict[str, tuple[str | None, str]] = {
    "prep": ("data_prep.cli:main", "plant manifests + raw files -> tokenized corpus (sim | build | inspect)"),
    "pretrain": ("fm.training.cli:pretrain_main", "pretrain a model on a corpus (LightningCLI, YAML configs)"),
    "finetune": ("fm.training.cli:finetune_main", "fine-tune a task head from a pretrained export"),
    "evaluate": ("fm.cli:evaluate_main", "score a model on held-out data next to baselines"),
    "export": ("fm.cli:export_main", "write a release folder (config, safetensors, model card)"),
    "push": ("fm.cli:push_main", "push a release folder to the Hugging Face Hub (needs HF_TOKEN)"),
    "bench": ("fm.cli:bench_main", "benchmarks: fm bench prep|train [args] (scripts/bench_*.py, print a table)"),
    "demo": ("fm.demo:main", "run the whole pipeline on the synthetic plants"),
}



def _usage() -> str:
    lines = ["usage: fm <command> [args]  (fm <command> --help)", "", "commands:"]
    lines += [f"  {name:<10}{help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def evaluate_main(argv: list[str]) -> int:
    import json
    from pathlib import Path

    p = argparse.ArgumentParser(prog="fm evaluate", description="Energy forecasting: model vs seasonal naive on held-out data.")
    p.add_argument("--model", required=True, help="export folder (save_pretrained)")
    p.add_argument("--corpus", required=True)
    p.add_argument("--task", default="energy", choices=["energy"])
    p.add_argument("--plants", nargs="*", default=None)
    p.add_argument("--split", default="test", choices=["validation", "test"])
    p.add_argument("--context", type=int, default=512, help="context steps")
    p.add_argument("--horizon", type=int, default=64, help="forecast steps")
    p.add_argument("--target-kind", default="power", help="sensor kind of the forecast target channel(s)")
    p.add_argument("--out", default=None, help="write the metrics JSON here")
    a = p.parse_args(argv)
    from fm.tasks.energy import evaluate_forecast, format_table

    res = evaluate_forecast(a.model, a.corpus, a.plants, a.split, a.context, a.horizon, a.target_kind)
    res.update({"task": a.task, "split": a.split, "plants": a.plants, "target_kind": a.target_kind})
    print(format_table(res, f"{a.task} forecasting on {a.split} ({', '.join(a.plants or ['all plants'])})"))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=2))
    return 0


def export_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="fm export", description="Write a release folder loadable by transformers.")
    p.add_argument("--checkpoint", required=True, help="Lightning .ckpt or an export folder")
    p.add_argument("--out", required=True)
    p.add_argument("--name", default=None, help="model name for the card (e.g. org/maxfm-tiny)")
    p.add_argument("--corpus", default=None, help="corpus the model was trained on (summarised in the card)")
    p.add_argument("--metrics", default=None, help="metrics JSON from fm evaluate (shown in the card)")
    a = p.parse_args(argv)
    from fm.release.export import export

    out = export(a.checkpoint, a.out, a.name, a.corpus, a.metrics)
    print(f"[export] {out}: " + ", ".join(sorted(f.name for f in out.iterdir())))
    return 0


def push_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="fm push", description="Push a release folder to the Hugging Face Hub.")
    p.add_argument("folder")
    p.add_argument("--repo-id", required=True)
    p.add_argument("--public", action="store_true", help="create the repo public (default private)")
    a = p.parse_args(argv)
    from fm.release.push import push

    print(push(a.folder, a.repo_id, private=not a.public))
    return 0


def bench_main(argv: list[str]) -> int:
    import subprocess
    from pathlib import Path

    names = ("prep", "train")
    if not argv or argv[0] not in names:
        print(f"usage: fm bench {{{'|'.join(names)}}} [args]  (fm bench train --help)", file=sys.stderr)
        return 2
    script = Path(__file__).resolve().parents[1] / "scripts" / f"bench_{argv[0]}.py"
    if not script.is_file():
        raise FileNotFoundError(f"{script}: the benchmarks ship with a source checkout of max-fm, not with the wheel")
    return subprocess.call([sys.executable, str(script), *argv[1:]])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The `deepspeed` launcher passes --local_rank=N first; the rank is also in $LOCAL_RANK, which Lightning reads.
    argv = [a for a in argv if not a.startswith("--local_rank=")]
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"fm: unknown command {cmd!r}\n{_usage()}", file=sys.stderr)
        return 2
    target, _ = COMMANDS[cmd]
    if target is None:
        print(f"fm {cmd}: not built yet", file=sys.stderr)
        return 2
    from data_prep.governance import GovernanceError
    from data_prep.manifest import ManifestError
    from fm.data.windows import SpecMismatchError

    # Errors in the user's input, not bugs: one line, no traceback.
    user_errors = (FileNotFoundError, PermissionError, ManifestError, SpecMismatchError, GovernanceError)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-tensor "Loading weights" bars: noise at this model size
    mod, fn = target.split(":")
    try:
        return int(getattr(importlib.import_module(mod), fn)(rest) or 0)
    except user_errors as e:
        print(f"fm {cmd}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
