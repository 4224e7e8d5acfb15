"""Training-throughput benchmark: MAX-FM next to transformers' PatchTSTForPrediction at equal parameter count.

Both models train on the same synthetic batch (same batch size B, channels C, context and horizon), fp32 on
CPU, with the same optimizer (``torch.optim.AdamW``, lr 1e-3, betas (0.9, 0.95), weight decay 0.05) and the
same number of torch threads. One timed step = zero_grad + forward + loss + backward + optimizer step; the
first ``--warmup`` steps are dropped and the median of ``--steps`` steps is reported.

* **MAX-FM** (``configs/model/<size>.yaml``): ``MaxFMModule(arch=...).losses(batch)["loss"]`` on a batch shaped
  like a training batch (``fm.data.windows.collate``): values (B, C, T) with T = (context + horizon patches) x
  patch_len, everything observed, sensor kinds 0, ``target_mask`` = the horizon patches + 15 % masked context
  spans (``WindowDataset.target_mask``, mean span 3), all channels real, ``n_future`` = horizon patches.
* **PatchTST** (``transformers.PatchTSTForPrediction``): ``PatchTSTConfig(num_input_channels=C,
  context_length=context x patch_len, prediction_length=horizon x patch_len, patch_length=patch_stride=16,
  scaling="std", loss="mse")``, other fields at their transformers defaults (pre-norm, BatchNorm, GELU,
  sin-cos positions, channel-independent, ``pooling_type="mean"`` head unless ``--patchtst-head flatten``),
  fed ``past_values`` (B, context, C) and ``future_values`` (B, horizon, C) cut from the same values. Its
  layer count and heads are MAX-FM's; ``d_model`` / ``ffn_dim`` come from a grid (d_model a multiple of the
  heads up to 4x MAX-FM's width; ffn_dim = 4, 2 or 1 x d_model, 4x first: PatchTST's default ratio, and the
  GELU-MLP counterpart of MAX-FM's SwiGLU) so its trainable parameter count is the closest to MAX-FM's, within
  +-10 %.

Tokens: one token = one patch of one channel. Both models are credited B x C x (context + horizon) patches
per step, the window they are trained on; PatchTST's encoder itself sees only the B x C x context patches
(its head maps them to the horizon), which the JSON reports as ``encoder_tokens_per_step``. With equal
tokens per step the tokens/s ratio equals the inverse ratio of the step times.

Memory: every (model, size) runs in a fresh subprocess; on CPU the table gives its peak RSS (``ru_maxrss``),
its RSS right after the imports (both children import the same modules) and the growth between the two.
The parent imports only the standard library so that it never sets the floor of a child's ``ru_maxrss``.

``--gpu`` (needs CUDA): the same comparison on the GPU with bf16 autocast (fp32 weights, like Lightning's
``bf16-mixed``), peak memory from ``torch.cuda.max_memory_allocated``, and MFU: MAX-FM's from
``fm.training.callbacks.flops_per_token`` (the ``ThroughputMonitor`` formula), PatchTST's from the same
counting applied to its layers (``patchtst_flops_per_token``); peaks from ``detect_peak_tflops`` or
``--peak-tflops``. Then DDP vs DeepSpeed ZeRO-2 vs ZeRO-3 vs FSDP2 step time: ``python -m fm.cli pretrain`` with
``configs/cluster/local_cpu.yaml`` switched to ``--trainer.accelerator gpu --trainer.precision bf16-mixed``,
``--trainer.devices N`` (all visible GPUs, or ``--gpus N``), reading ``perf/step_s`` (``ThroughputMonitor``)
from each run's ``metrics.csv``, on ``--corpus`` or a synthetic corpus built on the spot.

    python scripts/bench_train.py                        # tiny and small on CPU, all cores
    python scripts/bench_train.py --quick --json out.json
    python scripts/bench_train.py --threads 1 --sizes small --steps 30
    python scripts/bench_train.py --gpu --sizes small base --batch 128
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _memory import peak_rss_mb, proc_status_mb  # scripts/_memory.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("maxfm", "patchtst")
LABELS = {"maxfm": "MAX-FM", "patchtst": "PatchTST (transformers)"}
SIZES = ("tiny", "small", "base", "large")
TARGET_RATIO = 1.5
PARAM_TOL = 0.10
FFN_RATIOS = (4, 2, 1)
MASK_RATIO = 0.15
MEAN_SPAN = 3
OPTIM = {"lr": 1e-3, "betas": (0.9, 0.95), "weight_decay": 0.05}
STRATEGIES = ("ddp", "deepspeed_stage_2", "deepspeed_stage_3", "fsdp")


# ---------------------------------------------------------------------------------------------- memory
def _rss_now_mb() -> float | None:
    return proc_status_mb("VmRSS")


def _hwm_mb() -> float | None:
    return proc_status_mb("VmHWM")


def _peak_rss_mb() -> float:
    return peak_rss_mb()


def load_arch(size: str):
    import yaml

    from fm.model import ArchConfig

    cfg = yaml.safe_load((ROOT / "configs" / "model" / f"{size}.yaml").read_text())
    return ArchConfig(**cfg["model"]["arch"])


def trainable(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def patchtst_config(shape: dict, n_layers: int, n_heads: int, d_model: int, ffn_dim: int, head: str):
    from transformers import PatchTSTConfig

    L = shape["patch_len"]
    return PatchTSTConfig(
        num_input_channels=shape["channels"],
        context_length=shape["context_patches"] * L,
        prediction_length=shape["horizon_patches"] * L,
        patch_length=L,
        patch_stride=L,
        d_model=d_model,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        ffn_dim=ffn_dim,
        loss="mse",
        scaling="std",
        pooling_type="mean" if head == "mean" else None,
    )


def match_patchtst(size: str, shape: dict, head: str) -> dict:
    """MAX-FM's parameter count for ``size`` and the PatchTST (d_model, ffn_dim) closest to it (grid on meta)."""
    import torch
    from transformers import PatchTSTForPrediction

    from fm.training.module import MaxFMModule

    arch = load_arch(size)
    target = trainable(MaxFMModule(arch=arch).model)
    grid = []
    for d in range(arch.n_heads, 4 * arch.d_model + 1, arch.n_heads):
        for r in FFN_RATIOS:
            with torch.device("meta"):
                m = PatchTSTForPrediction(patchtst_config(shape, arch.n_layers, arch.n_heads, d, r * d, head))
            grid.append({"d_model": d, "ffn_dim": r * d, "ffn_ratio": r, "params": trainable(m)})

    def rel(c: dict) -> float:
        return abs(c["params"] - target) / target

    best = None
    for r in FFN_RATIOS:  # PatchTST's default ratio first; another only when it cannot get within tolerance
        cand = min((c for c in grid if c["ffn_ratio"] == r), key=rel)
        if rel(cand) <= PARAM_TOL:
            best = cand
            break
    if best is None:
        best = min(grid, key=rel)
    return {"size": size, "maxfm_params": target, "arch": {"d_model": arch.d_model, "n_layers": arch.n_layers,
            "n_heads": arch.n_heads, "mlp_hidden": arch.mlp_hidden},
            "patchtst": {**best, "n_layers": arch.n_layers, "n_heads": arch.n_heads, "head": head},
            "param_ratio": best["params"] / target, "within_tolerance": rel(best) <= PARAM_TOL, "grid_points": len(grid)}


def patchtst_flops_per_token(cfg, patches: int) -> float:
    """Forward FLOPs per encoder token of PatchTST, counted like ``fm.training.callbacks.flops_per_token``:
    embed 2*L*d; per layer 8 d^2 (q, k, v, out) + 4 P d (scores + mix) + 4 d f (FFN d -> f -> d); head per
    token: flatten 2 d H (its d*P -> H projection shared over P tokens) or mean-pooled 2 d H / P."""
    d, f, L, H = cfg.d_model, cfg.ffn_dim, cfg.patch_length, cfg.prediction_length
    head = 2 * d * H if cfg.pooling_type is None else 2 * d * H / patches
    return 2 * L * d + cfg.num_hidden_layers * (8 * d * d + 4 * patches * d + 4 * d * f) + head


def synthetic_batch(shape: dict, seed: int = 0) -> dict:
    """A training-shaped batch: windows through ``fm.data.windows.collate``, masks from ``WindowDataset``."""
    import math

    import torch

    from fm.data.windows import WindowDataset, WindowSpec, collate

    B, C, L = shape["batch"], shape["channels"], shape["patch_len"]
    spec = WindowSpec(context_patches=shape["context_patches"], horizon_patches=shape["horizon_patches"], patch_len=L,
                      mask_ratio=MASK_RATIO, mean_span=MEAN_SPAN, seed=seed)
    masks = WindowDataset.__new__(WindowDataset)  # only target_mask(i) is used: it needs the spec alone
    masks.spec = spec
    g = torch.Generator().manual_seed(seed)
    T, P = spec.length, spec.context_patches + spec.horizon_patches
    t = torch.arange(T, dtype=torch.float32)
    items = []
    for i in range(B):
        period = torch.randint(24, 400, (C, 1), generator=g).float()
        phase = torch.rand(C, 1, generator=g) * 2 * math.pi
        level, amp = torch.randn(C, 1, generator=g), 0.5 + torch.rand(C, 1, generator=g)
        walk = torch.randn(C, T, generator=g).cumsum(-1) * 0.02
        values = level + amp * torch.sin(2 * math.pi * t / period + phase) + walk + 0.1 * torch.randn(C, T, generator=g)
        items.append({
            "values": values,
            "observed": torch.ones(C, T, dtype=torch.bool),
            "kinds": torch.zeros(C, dtype=torch.long),
            "target_mask": torch.from_numpy(masks.target_mask(i)).expand(C, P).clone(),
            "patch_mask": torch.ones(C, P, dtype=torch.bool),
            "n_future": spec.horizon_patches,
        })
    return collate(items)


# ---------------------------------------------------------------------------------------------- child
def child(model: str, size: str, shape: dict, plan: dict, threads: int, steps: int, warmup: int, gpu: bool,
          peak_tflops: float | None) -> dict:
    """One measured configuration (in its own process). Prints nothing else on stdout."""
    import contextlib
    import math

    # Both children import the same modules, so "RSS after imports" is the same floor for both.
    import torch
    from transformers import PatchTSTForPrediction
    from transformers.utils import logging as hf_logging

    import fm.data.windows  # noqa: F401
    from fm.training.callbacks import detect_peak_tflops, flops_per_token
    from fm.training.module import MaxFMModule

    hf_logging.set_verbosity_error()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rss_imports = _rss_now_mb()
    dev = torch.device("cuda" if gpu else "cpu")
    L, ctx, hor = shape["patch_len"], shape["context_patches"], shape["horizon_patches"]
    P = ctx + hor
    batch = {k: v.to(dev) for k, v in synthetic_batch(shape).items()}
    B, C, T = batch["values"].shape
    if model == "maxfm":
        arch = load_arch(size)
        net = MaxFMModule(arch=arch).to(dev).train()

        def loss_fn():
            return net.losses(batch)["loss"]

        flops_tok, flop_tokens = flops_per_token(arch, P, C), B * C * P
        desc = f"d_model={arch.d_model} layers={arch.n_layers} heads={arch.n_heads} swiglu={arch.mlp_hidden}"
    else:
        pt = plan["patchtst"]
        cfg = patchtst_config(shape, pt["n_layers"], pt["n_heads"], pt["d_model"], pt["ffn_dim"], pt["head"])
        net = PatchTSTForPrediction(cfg).to(dev).train()
        past = batch["values"][:, :, : ctx * L].transpose(1, 2).contiguous()
        future = batch["values"][:, :, ctx * L :].transpose(1, 2).contiguous()

        def loss_fn():
            return net(past_values=past, future_values=future).loss

        flops_tok, flop_tokens = patchtst_flops_per_token(cfg, ctx), B * C * ctx
        desc = (f"d_model={cfg.d_model} layers={cfg.num_hidden_layers} heads={cfg.num_attention_heads} "
                f"ffn={cfg.ffn_dim} head={pt['head']}")
    params = trainable(net)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], **OPTIM)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if gpu else contextlib.nullcontext()
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_ready = _rss_now_mb()

    times, losses = [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = loss_fn()
        loss.backward()
        opt.step()
        if gpu:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        losses.append(float(loss.detach()))
        if i >= warmup:
            times.append(dt)
    if not all(math.isfinite(v) for v in losses):
        raise RuntimeError(f"{model} {size}: non-finite loss {losses}")
    step_s = statistics.median(times)
    tokens = B * C * P
    out = {
        "model": model, "label": LABELS[model], "size": size, "desc": desc, "params": params,
        "batch": B, "channels": C, "time": T, "patches": P, "context_patches": ctx, "horizon_patches": hor,
        "tokens_per_step": tokens, "encoder_tokens_per_step": B * C * (P if model == "maxfm" else ctx),
        "step_ms": step_s * 1e3, "step_ms_min": min(times) * 1e3, "step_ms_max": max(times) * 1e3,
        "tokens_per_s": tokens / step_s, "samples_per_s": B / step_s, "steps": steps, "warmup": warmup,
        "loss_first": losses[0], "loss_last": losses[-1], "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if gpu else "cpu", "precision": "bf16 autocast" if gpu else "fp32",
        "rss_imports_mb": rss_imports, "rss_ready_mb": rss_ready, "peak_rss_mb": _peak_rss_mb(), "vm_hwm_mb": _hwm_mb(),
        "model_flops_per_step": 3 * flops_tok * flop_tokens,
    }
    out["rss_growth_mb"] = None if rss_imports is None else out["peak_rss_mb"] - rss_imports
    if gpu:
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        peak = peak_tflops or detect_peak_tflops()
        out["peak_tflops"] = peak
        out["achieved_tflops"] = out["model_flops_per_step"] / step_s / 1e12
        out["mfu"] = out["achieved_tflops"] / peak if peak else None
    return out


def make_corpus(out: str) -> dict:
    """Child mode: a synthetic corpus (the test fixtures' plants) for the strategy comparison."""
    from data_prep.corpus import PrepConfig, build_corpus
    from data_prep.sim import make_plants

    root = Path(out)
    manifests = make_plants(root / "plants", seed=0, days=24)
    build_corpus(manifests, root / "corpus", PrepConfig(), log=lambda *_: None)
    return {"corpus": str(root / "corpus")}


def cuda_devices() -> dict:
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return {"count": n, "name": torch.cuda.get_device_name(0) if n else None, "torch": torch.__version__}


# ---------------------------------------------------------------------------------------------- parent
# The parent imports nothing beyond the standard library: see _peak_rss_mb.
def _env() -> dict:
    env = {**os.environ, "TQDM_DISABLE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "WANDB_MODE": "offline",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "PYTHONWARNINGS": "ignore"}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _subprocess(args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=timeout)


def _last_json(p: subprocess.CompletedProcess):
    return json.loads(p.stdout.strip().splitlines()[-1])


def _error(p: subprocess.CompletedProcess) -> str:
    return (p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1]


def _child_mode(mode: str, payload: dict) -> dict:
    p = _subprocess([str(Path(__file__).resolve()), "--child", mode, "--payload", json.dumps(payload)])
    return {"error": _error(p)} if p.returncode != 0 else _last_json(p)


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def table(rows: list[dict], gpu: bool) -> str:
    head = ["model", "size", "params", "B", "C", "T", "tokens/step", "GFLOP/step", "step ms", "tokens/s"]
    head += ["CUDA peak MB", "MFU"] if gpu else ["RSS after imports MB", "peak RSS MB", "RSS growth MB"]
    body = []
    for r in rows:
        cells = [r["label"], r["size"], f"{r['params']:,}", str(r["batch"]), str(r["channels"]), str(r["time"]),
                 f"{r['tokens_per_step']:,}", f"{r['model_flops_per_step'] / 1e9:.1f}", _fmt(r.get("step_ms"), ".1f"), _fmt(r.get("tokens_per_s"), ",.0f")]
        if gpu:
            mfu = r.get("mfu")
            cells += [_fmt(r.get("cuda_peak_mb"), ",.0f"), "n/a" if mfu is None else f"{100 * mfu:.1f} %"]
        else:
            cells += [_fmt(r.get("rss_imports_mb"), ".0f"), _fmt(r.get("peak_rss_mb"), ".0f"), _fmt(r.get("rss_growth_mb"), ".0f")]
        body.append(cells)
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    sep = "|" + "|".join("-" * (w + 1) + ":" if i >= 2 else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), sep, *(line(b) for b in body)])


def ratios(rows: list[dict], sizes: list[str]) -> dict:
    by = {(r["model"], r["size"]): r for r in rows}
    out = {}
    for s in sizes:
        a, b = by.get(("maxfm", s), {}).get("tokens_per_s"), by.get(("patchtst", s), {}).get("tokens_per_s")
        out[s] = a / b if a and b else None
    return out


def ratio_lines(rat: dict) -> str:
    lines = []
    for size, v in rat.items():
        if v is None:
            lines.append(f"{size}: ratio MAX-FM/PatchTST tokens/s = n/a (a run failed)")
        else:
            verdict = "target met" if v >= TARGET_RATIO else "target NOT met"
            lines.append(f"{size}: ratio MAX-FM/PatchTST tokens/s = {v:.2f} (target ≥ {TARGET_RATIO:g}; {verdict})")
    return "\n".join(lines)


def token_note(shape: dict) -> str:
    B, C, ctx, hor = shape["batch"], shape["channels"], shape["context_patches"], shape["horizon_patches"]
    return (f"tokens: one token = one patch ({shape['patch_len']} steps) of one channel; both models are credited "
            f"B x C x (context + horizon) patches = {B} x {C} x ({ctx} + {hor}) = {B * C * (ctx + hor):,} per step. "
            f"MAX-FM's transformer runs on all {ctx + hor} patches (the horizon as masked patches); PatchTST's encoder "
            f"runs on the {ctx} context patches ({B * C * ctx:,} per step) and its head maps them to the horizon. "
            "Equal tokens per step: the tokens/s ratio is the inverse step-time ratio. GFLOP/step = 3 x forward model "
            "FLOPs (fm.training.callbacks.flops_per_token for MAX-FM, patchtst_flops_per_token for PatchTST).")


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "machine": platform.machine(), "cpu_count": os.cpu_count()}
    for pkg in ("torch", "transformers", "lightning", "deepspeed"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


# ---------------------------------------------------------------------------------------------- strategies
def _read_metric(metrics_csv: Path, key: str, skip: int) -> list[float]:
    with open(metrics_csv, newline="") as f:
        vals = [float(r[key]) for r in csv.DictReader(f) if r.get(key) not in (None, "")]
    return vals[skip:] if len(vals) > skip else vals


def strategy_run(size: str, strategy: str, devices: int, corpus: str, shape: dict, steps: int, warmup: int,
                 root: Path, accelerator: str = "gpu", precision: str = "bf16-mixed", timeout: float = 1800) -> dict:
    """``fm pretrain`` for ``steps`` steps under ``strategy``; median ``perf/step_s`` after ``warmup`` steps."""
    root.mkdir(parents=True, exist_ok=True)
    args = [
        "-m", "fm.cli", "pretrain",
        "--config", str(ROOT / "configs/model" / f"{size}.yaml"),
        "--config", str(ROOT / "configs/pretrain/demo.yaml"),
        "--config", str(ROOT / "configs/cluster/local_cpu.yaml"),
        "--trainer.accelerator", accelerator, "--trainer.devices", str(devices), "--trainer.strategy", strategy,
        "--trainer.precision", precision,
        "--data.corpus", corpus, "--data.batch_size", str(shape["batch"]),
        "--data.context_patches", str(shape["context_patches"]), "--data.horizon_patches", str(shape["horizon_patches"]),
        "--trainer.max_steps", str(steps), "--trainer.val_check_interval", str(steps), "--trainer.limit_val_batches", "0",
        "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(root),
        "--trainer.logger.init_args.save_dir", str(root), "--export_dir", str(root / "hf"),
    ]
    t0 = time.perf_counter()
    try:
        p = _subprocess(args, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"strategy": strategy, "devices": devices, "error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    found = sorted(root.rglob("metrics.csv"))
    if p.returncode != 0 or not found:
        return {"strategy": strategy, "devices": devices, "error": _error(p) if p.returncode else "no metrics.csv written"}
    step_s = _read_metric(found[-1], "perf/step_s", warmup)
    tok_s = _read_metric(found[-1], "perf/tokens_per_s", warmup)
    mfu = _read_metric(found[-1], "perf/mfu", warmup) if "perf/mfu" in found[-1].read_text().splitlines()[0] else []
    if not step_s:
        return {"strategy": strategy, "devices": devices, "error": "no perf/step_s in metrics.csv"}
    return {"strategy": strategy, "devices": devices, "size": size, "steps_timed": len(step_s),
            "step_ms": 1e3 * statistics.median(step_s), "tokens_per_s": statistics.median(tok_s) if tok_s else None,
            "mfu": statistics.median(mfu) if mfu else None, "wall_s": wall}


def strategy_table(rows: list[dict]) -> str:
    ddp = next((r for r in rows if r["strategy"] == "ddp" and "error" not in r), None)
    lines = ["| strategy | devices | step ms | vs DDP | tokens/s (all ranks) | MFU |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['strategy']} | {r['devices']} | failed: {r['error']} | | | |")
            continue
        rel = f"{r['step_ms'] / ddp['step_ms']:.2f}x" if ddp else "n/a"
        mfu = "n/a" if r.get("mfu") is None else f"{100 * r['mfu']:.1f} %"
        lines.append(f"| {r['strategy']} | {r['devices']} | {r['step_ms']:.1f} | {rel} | {_fmt(r.get('tokens_per_s'), ',.0f')} | {mfu} |")
    return "\n".join(lines)


def compare_strategies(a: argparse.Namespace, shape: dict, devices: int, work: Path) -> dict:
    corpus = a.corpus
    if corpus is None:
        t0 = time.perf_counter()
        res = _child_mode("corpus", {"out": str(work / "synthetic")})
        if "error" in res:
            return {"error": f"could not build the synthetic corpus: {res['error']}"}
        corpus = res["corpus"]
        print(f"[bench_train] synthetic corpus built in {time.perf_counter() - t0:.0f} s: {corpus}", flush=True)
    size = a.strategy_size or a.sizes[-1]
    rows = []
    for strat in STRATEGIES:
        r = strategy_run(size, strat, devices, corpus, shape, a.strategy_steps, a.warmup, work / f"strategy-{strat}")
        rows.append(r)
        msg = r["error"] if "error" in r else f"{r['step_ms']:.1f} ms/step"
        print(f"[bench_train] pretrain {size} {strat:<18} devices={devices}: {msg}", flush=True)
    return {"size": size, "devices": devices, "corpus": corpus, "steps": a.strategy_steps, "rows": rows}


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench_train.py",
        description="Training throughput (tokens/s) and peak memory of MAX-FM vs transformers' PatchTSTForPrediction "
                    "at equal parameter count, context, batch, optimizer and threads; each run in a fresh process.",
    )
    p.add_argument("--sizes", nargs="+", choices=SIZES, default=["tiny", "small"], help="MAX-FM sizes (configs/model/)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per run (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--repeat", type=int, default=1, help="runs per (model, size), each a fresh process, interleaved; "
                   "the fastest run's median is reported (memory: the largest of the runs)")
    p.add_argument("--batch", type=int, default=32, help="windows per batch (B)")
    p.add_argument("--channels", type=int, default=4, help="channels per window (C)")
    p.add_argument("--context-patches", type=int, default=32, help="context patches (x patch_len 16 = 512 steps)")
    p.add_argument("--horizon-patches", type=int, default=4, help="forecast patches (x 16 = 64 steps)")
    p.add_argument("--threads", type=int, default=None, help="torch threads in every run (default: all cores available)")
    p.add_argument("--patchtst-head", choices=["mean", "flatten"], default="mean",
                   help="PatchTST prediction head: 'mean' = transformers' default (pooling_type='mean'), "
                        "'flatten' = the PatchTST paper's flatten head (pooling_type=None)")
    p.add_argument("--json", default=None, metavar="PATH", help="write the results as JSON")
    p.add_argument("--quick", action="store_true", help="smoke test: tiny only, 3 timed steps after 1 warmup step")
    p.add_argument("--gpu", action="store_true", help="on CUDA: bf16 autocast, CUDA peak memory, MFU, then DDP vs ZeRO-2/3 vs FSDP2")
    p.add_argument("--gpus", type=int, default=None, help="--gpu: devices for the strategy comparison (default: all visible)")
    p.add_argument("--peak-tflops", type=float, default=None, help="--gpu: peak TFLOP/s of one device (default: detected)")
    p.add_argument("--corpus", default=None, help="--gpu: corpus for the strategy runs (default: a synthetic one, built here)")
    p.add_argument("--strategy-size", choices=SIZES, default=None, help="--gpu: size for the strategy runs (default: the last of --sizes)")
    p.add_argument("--strategy-steps", type=int, default=30, help="--gpu: steps per strategy run (--warmup of them untimed)")
    p.add_argument("--no-strategies", action="store_true", help="--gpu: skip the DDP vs ZeRO-2/3 vs FSDP2 comparison")
    p.add_argument("--child", choices=[*MODELS, "plan", "corpus", "cuda"], help=argparse.SUPPRESS)
    p.add_argument("--payload", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.quick:
        a.sizes, a.steps, a.warmup = ["tiny"], 3, 1
    if min(a.steps, a.repeat, a.batch, a.channels, a.context_patches, a.horizon_patches) < 1 or a.warmup < 0:
        p.error("--steps, --repeat, --batch, --channels, --context-patches, --horizon-patches must be >= 1, --warmup >= 0")
    if a.threads is not None and a.threads < 1:
        p.error("--threads must be >= 1")
    a.sizes = list(dict.fromkeys(a.sizes))
    return a


def run_child_mode(a: argparse.Namespace) -> int:
    os.environ.setdefault("TQDM_DISABLE", "1")
    pl = json.loads(a.payload or "{}")
    if a.child == "plan":
        res = {s: match_patchtst(s, pl["shape"], pl["head"]) for s in pl["sizes"]}
    elif a.child == "corpus":
        res = make_corpus(pl["out"])
    elif a.child == "cuda":
        res = cuda_devices()
    else:
        res = child(a.child, pl["size"], pl["shape"], pl["plan"], pl["threads"], pl["steps"], pl["warmup"], pl["gpu"],
                    pl.get("peak_tflops"))
    print(json.dumps(res))
    return 0


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.child:
        return run_child_mode(a)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    cuda = None
    if a.gpu:
        cuda = _child_mode("cuda", {})
        if "error" in cuda or not cuda["count"]:
            print("no CUDA device: --gpu needs a CUDA GPU (torch.cuda.is_available() is False here)", file=sys.stderr)
            return 2
    threads = a.threads or default_threads()
    shape = {"batch": a.batch, "channels": a.channels, "context_patches": a.context_patches,
             "horizon_patches": a.horizon_patches, "patch_len": 16}
    t0 = time.perf_counter()
    plan = _child_mode("plan", {"sizes": a.sizes, "shape": shape, "head": a.patchtst_head})
    if "error" in plan:
        print(f"[bench_train] could not size the models: {plan['error']}", file=sys.stderr)
        return 1
    for s in a.sizes:
        m, pt = plan[s], plan[s]["patchtst"]
        print(f"[bench_train] {s}: MAX-FM {m['maxfm_params']:,} params (d_model={m['arch']['d_model']}, "
              f"layers={m['arch']['n_layers']}, heads={m['arch']['n_heads']}); PatchTST {pt['params']:,} params "
              f"(d_model={pt['d_model']}, ffn_dim={pt['ffn_dim']}, layers={pt['n_layers']}, heads={pt['n_heads']}, "
              f"head={pt['head']}; {m['grid_points']} grid points) = {m['param_ratio']:.3f}x"
              + ("" if m["within_tolerance"] else f"  (NOT within ±{PARAM_TOL:.0%})"), flush=True)
    print(f"[bench_train] sized in {time.perf_counter() - t0:.1f} s; {threads} torch threads, "
          f"{'GPU ' + cuda['name'] + ', bf16 autocast' if a.gpu else 'CPU, fp32'}; B={a.batch} C={a.channels} "
          f"context={a.context_patches}x16 horizon={a.horizon_patches}x16; {a.warmup} warmup + {a.steps} timed steps",
          flush=True)
    runs: dict[tuple[str, str], list[dict]] = {}
    failed: list[str] = []
    for rep in range(a.repeat):  # interleaved (and alternating order), so a busy spell of the machine hits both
        for s in a.sizes:
            for model in (MODELS if rep % 2 == 0 else MODELS[::-1]):
                load = _loadavg()
                res = _child_mode(model, {"size": s, "shape": shape, "plan": plan[s], "threads": threads,
                                          "steps": a.steps, "warmup": a.warmup, "gpu": a.gpu, "peak_tflops": a.peak_tflops})
                runs.setdefault((model, s), []).append(res)
                tag = f"[bench_train] run {rep + 1}/{a.repeat} {LABELS[model]:<23} {s:<6}"
                if "error" in res:
                    print(f"{tag} FAILED: {res['error']}", flush=True)
                    continue
                res["loadavg_1min"] = [load, _loadavg()]
                mem = f"CUDA peak {res['cuda_peak_mb']:,.0f} MB" if a.gpu else f"peak RSS {res['peak_rss_mb']:.0f} MB"
                print(f"{tag} {res['step_ms']:8.1f} ms/step, {res['tokens_per_s']:>9,.0f} tokens/s, {mem}, "
                      f"1-min load {_fmt(load, '.1f')}  ({res['desc']})", flush=True)
    rows = []
    for s in a.sizes:
        for model in MODELS:
            ok = [r for r in runs.get((model, s), []) if "error" not in r]
            errs = [r["error"] for r in runs.get((model, s), []) if "error" in r]
            if errs:
                failed.append(f"{model} {s}: {errs[0]}")
            if ok:  # the fastest run's timings; memory: the largest of the runs
                best = dict(min(ok, key=lambda r: r["step_ms"]))
                best["runs_step_ms"] = [r["step_ms"] for r in ok]
                for k in ("peak_rss_mb", "rss_growth_mb", "vm_hwm_mb", "cuda_peak_mb"):
                    vals = [r[k] for r in ok if r.get(k) is not None]
                    best[k] = max(vals) if vals else best.get(k)
                rows.append(best)
    rat = ratios(rows, a.sizes)
    print()
    print(table(rows, a.gpu))
    print()
    print(token_note(shape))
    print(f"same for both: B, C, context, horizon, synthetic values, AdamW{OPTIM}, "
          f"{'bf16 autocast' if a.gpu else 'fp32'}, {threads} torch threads; median of {a.steps} steps after {a.warmup}"
          + (f", fastest of {a.repeat} runs." if a.repeat > 1 else "."))
    loads = [v for r in rows for v in r.get("loadavg_1min", []) if v is not None]
    if loads and not a.gpu:
        busy = max(loads) > (os.cpu_count() or 1) + 0.5  # our own run accounts for `threads` of it
        print(f"machine load (1-min average around the runs): {min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} cores"
              + ("; other processes were competing for the cores, so timings are noisy (use --repeat)" if busy else ""))
    print(ratio_lines(rat))
    strategies = None
    if a.gpu and not a.no_strategies:
        devices = a.gpus or cuda["count"]
        print()
        if devices < 2:
            print("[bench_train] one GPU: DDP / ZeRO-2 / ZeRO-3 run with devices=1, so no gradient or parameter traffic "
                  "is measured, only each strategy's single-device overhead; rerun on >= 2 GPUs for the real comparison.")
        work = Path(tempfile.mkdtemp(prefix="bench_train_"))
        try:
            strategies = compare_strategies(a, shape, devices, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if "error" in strategies:
            failed.append(strategies["error"])
            print(f"[bench_train] {strategies['error']}")
        else:
            print(f"\nDDP vs DeepSpeed ZeRO-2/3 vs FSDP2: fm pretrain, size {strategies['size']}, devices={devices}, "
                  f"bf16-mixed, per-device batch {a.batch}, median perf/step_s of {a.strategy_steps - a.warmup} steps:")
            print(strategy_table(strategies["rows"]))
    if a.json:
        out = {"started": started, "settings": {**shape, "sizes": a.sizes, "steps": a.steps, "warmup": a.warmup, "repeat": a.repeat,
               "threads": threads, "gpu": a.gpu, "patchtst_head": a.patchtst_head, "optimizer": OPTIM,
               "mask_ratio": MASK_RATIO, "target_ratio": TARGET_RATIO, "param_tolerance": PARAM_TOL},
               "env": {**_versions(), "cuda": cuda}, "match": plan, "rows": rows, "ratios": rat,
               "token_counting": token_note(shape), "strategies": strategies, "failed": failed}
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=2))
    if failed:
        print("[bench_train] failed: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
