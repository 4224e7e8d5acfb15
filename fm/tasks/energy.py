"""Energy task: probabilistic load / consumption forecasting, scored against seasonal naive.

Rolling-origin evaluation over one split of the corpus: forecast origins step by ``horizon`` through the
split (never inside the context-only prefix); metrics are computed in the plant's original units
(the corpus scaling is undone with each series' stored loc/scale).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from data_prep.manifest import SENSOR_KINDS
from fm.data.windows import check_spec, open_split
from fm.eval.baselines import seasonal_naive
from fm.eval.metrics import mase, seasonal_error, wql
from fm.release.export import load_model


def evaluate_forecast(
    model_dir: str | Path,
    corpus: str | Path,
    plants: list[str] | None = None,
    split: str = "test",
    context_steps: int = 512,
    horizon_steps: int = 64,
    target_kind: str = "power",
    season_s: float = 86400.0,
    batch_size: int = 64,
) -> dict:
    model = load_model(model_dir).eval()
    check_spec(corpus, model.config.tokenizer_spec)
    kind_id = SENSOR_KINDS.index(target_kind)
    levels = np.asarray(model.config.quantiles)
    med = int(np.argmin(np.abs(levels - 0.5)))
    windows = []  # (context values, context observed, kinds, target rows, loc, scale, season)
    for r in open_split(corpus, split).with_format("numpy"):
        if plants and r["plant_id"] not in plants:
            continue
        kinds = np.asarray(r["kinds"], dtype=np.int64)
        targets = np.flatnonzero(kinds == kind_id)
        if targets.size == 0:
            continue
        values = np.stack(r["values"]).astype(np.float32)
        observed = np.stack(r["observed"]).astype(bool)
        loc, scale = np.asarray(r["loc"]), np.asarray(r["scale"])
        season = max(1, int(round(season_s / float(r["interval_s"]))))
        T, p = values.shape[1], int(r["prefix_len"])
        for t in range(max(p, 1), T - horizon_steps + 1, horizon_steps):
            s = max(0, t - context_steps)
            windows.append((values[:, s:t], observed[:, s:t], kinds, targets, values[:, t : t + horizon_steps],
                            observed[:, t : t + horizon_steps], loc, scale, season))
    if not windows:
        raise ValueError(f"{corpus}: no {split} window with a {target_kind!r} channel for plants {plants}")
    ys, q_model, q_naive, mase_model, mase_naive = [], [], [], [], []
    for i in range(0, len(windows), batch_size):
        chunk = windows[i : i + batch_size]
        width = max(w[0].shape[1] for w in chunk)
        ctx = np.zeros((len(chunk), chunk[0][0].shape[0], width), np.float32)
        obs = np.zeros(ctx.shape, bool)
        for j, w in enumerate(chunk):  # left-pad shorter contexts as unobserved
            ctx[j, :, width - w[0].shape[1] :] = w[0]
            obs[j, :, width - w[0].shape[1] :] = w[1]
        kinds = torch.from_numpy(np.stack([w[2] for w in chunk]))
        q = model.forecast(torch.from_numpy(ctx), horizon_steps, torch.from_numpy(obs), kinds).numpy()
        for j, (c_vals, c_obs, _, targets, f_vals, f_obs, loc, scale, season) in enumerate(chunk):
            for ch in targets:
                y = np.where(f_obs[ch], f_vals[ch] * scale[ch] + loc[ch], np.nan)
                hist = np.where(c_obs[ch], c_vals[ch] * scale[ch] + loc[ch], np.nan)
                qm = q[j, ch] * scale[ch] + loc[ch]  # (horizon, Q)
                naive = seasonal_naive(hist, horizon_steps, season)
                d = seasonal_error(hist, season)
                ys.append(y)
                q_model.append(qm)
                q_naive.append(np.repeat(naive[:, None], len(levels), axis=1))
                mase_model.append(mase(y, qm[:, med], d))
                mase_naive.append(mase(y, naive, d))
    res = {
        "windows": len(ys),
        "context_steps": context_steps,
        "horizon_steps": horizon_steps,
        "model": {"MASE": float(np.nanmean(mase_model)), "WQL": wql(ys, q_model, levels)},
        "seasonal_naive": {"MASE": float(np.nanmean(mase_naive)), "WQL": wql(ys, q_naive, levels)},
    }
    res["relative"] = {k: res["model"][k] / res["seasonal_naive"][k] for k in ("MASE", "WQL")}
    return res


def format_table(res: dict, title: str = "") -> str:
    lines = [title] if title else []
    lines.append(f"{'model':<16}{'MASE':>10}{'WQL':>10}")
    for name in ("model", "seasonal_naive"):
        lines.append(f"{name:<16}{res[name]['MASE']:>10.4f}{res[name]['WQL']:>10.4f}")
    lines.append(f"{'relative':<16}{res['relative']['MASE']:>10.3f}{res['relative']['WQL']:>10.3f}")
    lines.append(f"({res['windows']} windows, context {res['context_steps']}, horizon {res['horizon_steps']} steps)")
    return "\n".join(lines)
