"""Corpus writer: plant manifests + raw files -> Hugging Face ``datasets`` Arrow shards + ``manifest.json``.

Layout of a corpus folder::

    manifest.json          tokenizer spec, counts per plant and split, inputs with hashes, build command
    data/                  DatasetDict.save_to_disk: train/ validation/ test/ Arrow shards
    reports/<plant>.json   ingest report (rows kept / repaired / quarantined per file, with reasons)
    reports/<plant>.txt    the same for humans
    quarantine/<plant>.csv every quarantined input row: file, row (0-based data row), reason
    labels/<plant>/...     task label files, copied as given

One row of the dataset is one asset's aligned channels over one split (time range). Splits are by time
within each asset: the first ``1 - val - test`` of the history is train, then validation, then test.
Validation/test rows start ``context_prefix`` steps early so forecasts can be made from their first step;
those ``prefix_len`` steps are context only and are never a training or evaluation target.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pandas as pd

from data_prep.align import align_asset
from data_prep.manifest import SENSOR_KINDS, PlantManifest, load_manifest
from data_prep.readers import read_file
from data_prep.tokenizer import TokenizerSpec
from data_prep.validate import FileReport, validate

CORPUS_FORMAT_VERSION = 1
SPLITS = ("train", "validation", "test")

FEATURES = datasets.Features(
    {
        "series_id": datasets.Value("string"),
        "plant_id": datasets.Value("string"),
        "asset_id": datasets.Value("string"),
        "stage": datasets.Value("string"),
        "sharing": datasets.Value("string"),
        "start": datasets.Value("string"),
        "interval_s": datasets.Value("float64"),
        "prefix_len": datasets.Value("int32"),
        "channels": datasets.Sequence(datasets.Value("string")),
        "kinds": datasets.Sequence(datasets.Value("int32")),
        "units": datasets.Sequence(datasets.Value("string")),
        "loc": datasets.Sequence(datasets.Value("float64")),
        "scale": datasets.Sequence(datasets.Value("float64")),
        "values": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
        "observed": datasets.Sequence(datasets.Sequence(datasets.Value("bool"))),
    }
)


@dataclass
class PrepConfig:
    """Corpus recipe (``configs/data/*.yaml``)."""

    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    val_fraction: float = 0.15
    """Share of each asset's history (by time) for validation."""
    test_fraction: float = 0.15
    """Share of each asset's history (by time, the most recent) for test."""
    context_prefix: int = 512
    """Steps of preceding history carried (as context only) at the start of validation/test rows."""
    max_shard_size: str = "64MB"
    """Bound on the size of one Arrow shard."""

    def __post_init__(self) -> None:
        if isinstance(self.tokenizer, dict):
            self.tokenizer = TokenizerSpec(**self.tokenizer)
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1):
            raise ValueError("val_fraction and test_fraction must be in [0, 1) and sum to < 1")
        if self.context_prefix < 0:
            raise ValueError("context_prefix must be >= 0")

    @classmethod
    def from_yaml(cls, path: str | Path) -> PrepConfig:
        import yaml

        raw = yaml.safe_load(Path(path).read_text()) or {}
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; expected some of {sorted(known)}")
        tok = raw.pop("tokenizer", {}) or {}
        tok_known = set(TokenizerSpec.__dataclass_fields__)
        if set(tok) - tok_known:
            raise ValueError(f"{path}: unknown key(s) {sorted(set(tok) - tok_known)} in 'tokenizer'")
        return cls(tokenizer=TokenizerSpec(**tok), **raw)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _split_bounds(length: int, cfg: PrepConfig) -> dict[str, tuple[int, int]]:
    n_test = int(round(length * cfg.test_fraction))
    n_val = int(round(length * cfg.val_fraction))
    a = length - n_val - n_test
    b = length - n_test
    return {"train": (0, a), "validation": (a, b), "test": (b, length)}


def prep_plant(m: PlantManifest, cfg: PrepConfig) -> tuple[dict[str, list[dict]], dict, pd.DataFrame]:
    """Read, validate, align and tokenize one plant. Returns (rows per split, report, quarantine)."""
    valid, reports, quarantine = [], [], []
    inputs = []
    for spec in m.files:
        for rec in read_file(m, spec):
            v = validate(rec, m, wide=spec.format == "wide_csv")
            valid.append(v.records)
            reports.append(v.report)
            quarantine.append(v.quarantine)
            inputs.append({"file": rec.file, "sha256": sha256_file(rec.file), "rows": rec.n_rows})
    records = pd.concat(valid, ignore_index=True)
    rows: dict[str, list[dict]] = {s: [] for s in SPLITS}
    kinds = {t.name: SENSOR_KINDS.index(t.kind) for t in m.tags}
    units = {t.name: t.unit for t in m.tags}
    spec_tok = cfg.tokenizer
    for asset in m.assets:
        for al in align_asset(records, m, asset):
            bounds = _split_bounds(al.values.shape[1], cfg)
            a, b = bounds["train"]
            loc, scale = spec_tok.scale_stats(al.values[:, a:b], al.observed[:, a:b])
            z = spec_tok.encode(np.nan_to_num(al.values), al.observed, loc, scale)
            for split, (s, e) in bounds.items():
                if e <= s:
                    continue
                p = 0 if split == "train" else min(cfg.context_prefix, s)
                start = al.start + pd.Timedelta(seconds=al.interval_s * (s - p))
                rows[split].append(
                    {
                        "series_id": f"{m.plant_id}/{asset}" + (f"/{al.series}" if al.series else ""),
                        "plant_id": m.plant_id,
                        "asset_id": asset,
                        "stage": m.stage,
                        "sharing": m.sharing,
                        "start": start.isoformat(),
                        "interval_s": al.interval_s,
                        "prefix_len": p,
                        "channels": al.tags,
                        "kinds": [kinds[t] for t in al.tags],
                        "units": [units[t] for t in al.tags],
                        "loc": loc.tolist(),
                        "scale": scale.tolist(),
                        "values": z[:, s - p : e],
                        "observed": al.observed[:, s - p : e],
                    }
                )
    report = {
        "plant_id": m.plant_id,
        "manifest": str(m.source),
        "inputs": inputs,
        "files": [asdict(r) for r in reports],
        "rows": sum(r.rows for r in reports),
        "kept": sum(r.kept for r in reports),
        "repaired": sum(r.repaired for r in reports),
        "quarantined": sum(r.quarantined for r in reports),
    }
    assert report["kept"] + report["repaired"] + report["quarantined"] == report["rows"]
    return rows, report, pd.concat(quarantine, ignore_index=True)


def _human_report(rep: dict) -> str:
    lines = [f"Ingest report for plant {rep['plant_id']} ({rep['manifest']})"]
    lines.append(f"  rows {rep['rows']}: kept {rep['kept']}, repaired {rep['repaired']}, quarantined {rep['quarantined']}")
    for f in rep["files"]:
        fr = FileReport(**f)
        lines.append(f"  {fr.file}: rows {fr.rows} = kept {fr.kept} + repaired {fr.repaired} + quarantined {fr.quarantined}")
        if fr.quarantine_reasons:
            lines.append(f"    quarantined rows by reason: {fr.quarantine_reasons}")
        if fr.repaired_cells:
            lines.append(f"    masked cells by reason: {fr.repaired_cells}")
        if fr.missing_cells:
            lines.append(f"    empty cells (missing, masked): {fr.missing_cells}")
        if fr.unmapped_columns:
            lines.append(f"    columns not in the manifest (ignored): {fr.unmapped_columns}")
    return "\n".join(lines) + "\n"


def build_corpus(manifest_paths: list[str | Path], out: str | Path, cfg: PrepConfig, log=print) -> dict:
    """Build a corpus at ``out`` (replaced if present). Returns the manifest written to manifest.json."""
    out = Path(out)
    manifests = [load_manifest(p) for p in manifest_paths]  # validate all up front
    ids = [m.plant_id for m in manifests]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate plant ids among manifests: {ids}")
    if out.exists():
        shutil.rmtree(out)
    (out / "reports").mkdir(parents=True)
    (out / "quarantine").mkdir()
    all_rows: dict[str, list[dict]] = {s: [] for s in SPLITS}
    plants = {}
    for m in sorted(manifests, key=lambda m: m.plant_id):
        log(f"[prep] {m.plant_id}: reading {len(m.files)} file(s)")
        rows, rep, quarantine = prep_plant(m, cfg)
        (out / "reports" / f"{m.plant_id}.json").write_text(json.dumps(rep, indent=2))
        (out / "reports" / f"{m.plant_id}.txt").write_text(_human_report(rep))
        quarantine.to_csv(out / "quarantine" / f"{m.plant_id}.csv", index=False)
        labels = []
        for lab in m.labels:
            dst = out / "labels" / m.plant_id / Path(lab.path).name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(m.resolve(lab.path), dst)
            labels.append({"path": str(dst.relative_to(out)), "task": lab.task, "sha256": sha256_file(dst)})
        counts = {}
        for s in SPLITS:
            all_rows[s].extend(rows[s])
            steps = sum(len(r["values"][0]) - r["prefix_len"] for r in rows[s])
            obs = sum(int(np.asarray(r["observed"])[:, r["prefix_len"] :].sum()) for r in rows[s])
            cells = sum(len(r["channels"]) * (len(r["values"][0]) - r["prefix_len"]) for r in rows[s])
            counts[s] = {
                "series": len(rows[s]),
                "steps": int(steps),
                "tokens": int(sum(len(r["channels"]) * ((len(r["values"][0]) - r["prefix_len"]) // cfg.tokenizer.patch_len) for r in rows[s])),
                "missing_pct": round(100.0 * (1 - obs / cells), 3) if cells else 0.0,
            }
        plants[m.plant_id] = {
            "stage": m.stage,
            "sharing": m.sharing,
            "assets": sorted(m.assets),
            "rows_in": rep["rows"],
            "kept": rep["kept"],
            "repaired": rep["repaired"],
            "quarantined": rep["quarantined"],
            "splits": counts,
            "inputs": rep["inputs"],
            "labels": labels,
        }
        log(
            f"[prep] {m.plant_id}: {rep['rows']} rows -> kept {rep['kept']}, repaired {rep['repaired']}, "
            f"quarantined {rep['quarantined']}"
        )
    dd = datasets.DatasetDict(
        {s: datasets.Dataset.from_list(all_rows[s], features=FEATURES) for s in SPLITS}
    )
    dd.save_to_disk(str(out / "data"), max_shard_size=cfg.max_shard_size)
    shards = {
        str(p.relative_to(out)): sha256_file(p) for p in sorted((out / "data").rglob("*.arrow"))
    }
    manifest = {
        "format_version": CORPUS_FORMAT_VERSION,
        "tokenizer": cfg.tokenizer.to_dict(),
        "tokenizer_hash": cfg.tokenizer.hash,
        "recipe": {k: v for k, v in asdict(cfg).items() if k != "tokenizer"},
        "splits": {
            s: {
                "series": len(all_rows[s]),
                "tokens": sum(p["splits"][s]["tokens"] for p in plants.values()),
            }
            for s in SPLITS
        },
        "plants": plants,
        "shards": shards,
        "provenance": {"tool": "max-fm fm prep", "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def load_corpus_manifest(corpus: str | Path) -> dict:
    path = Path(corpus) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{corpus}: not a corpus (no manifest.json); build one with `fm prep build`")
    return json.loads(path.read_text())
