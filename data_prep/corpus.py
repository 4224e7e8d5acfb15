"""Corpus writer: plant manifests + raw files -> Hugging Face ``datasets`` Arrow shards + ``manifest.json``.

Layout of a corpus folder::

    manifest.json            tokenizer spec, recipe, counts per plant and split, shard hashes, content hash
    data/                    a DatasetDict on disk (load_from_disk): train/ validation/ test/ heldout/ Arrow shards
    parts/<plant>/           one finished plant: rows.arrow (its rows, split by split, Arrow IPC), part.json (fingerprint, counts,
                             lineage), report.json / report.txt (ingest report), quarantine.csv
    labels/<plant>/...       task label files, copied as given (only for plants the audience may see)

Build = one *part* per plant (parallel with ``num_proc``, or spread over SLURM array tasks with
``shard_index/num_shards``), then a *merge* of all parts in plant order into ``data/`` + ``manifest.json``.
A part is written to a temporary folder (``parts/.tmp/<plant>/``) and renamed when complete, so a killed
job leaves either a finished part or none; a rerun skips finished parts whose fingerprint (manifest, recipe, key) matches.
Same inputs + recipe + key -> byte-identical shards and the same ``content_hash``.

One row of the dataset is one series of an asset (all its aligned channels) over one split. Splits are by
time within each asset (train, then validation, then the most recent test); plants named in
``held_out_plants`` go whole into ``heldout``. Validation/test rows start ``context_prefix`` steps early so
forecasts can be made from their first step; those ``prefix_len`` steps are context only.
"""

from __future__ import annotations

import csv
import ctypes
import ctypes.util
import hashlib
import hmac
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures import wait as futures_wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa

from data_prep.align import align_asset
from data_prep.governance import Names, allowed, load_key
from data_prep.manifest import SENSOR_KINDS, SHARING_LEVELS, ManifestError, PlantManifest, load_manifest
from data_prep.readers import raw_paths, read_file
from data_prep.tokenizer import TokenizerSpec
from data_prep.validate import Block, FileReport, validate

CORPUS_FORMAT_VERSION = 4
"""4: a part holds one Arrow IPC file with every split's rows in SPLITS order (3: one file per split; 2: a
datasets folder per split)."""
SPLITS = ("train", "validation", "test", "heldout")

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
        "lineage": [
            {
                "file": datasets.Value("string"),
                "sha256": datasets.Value("string"),
                "first_row": datasets.Value("int64"),
                "last_row": datasets.Value("int64"),
            }
        ],
    }
)


def _nested(arrays: list[np.ndarray], value_type: pa.DataType) -> pa.Array:
    """list<list<value>> from per-row 2-D (channels, time) arrays, built from flat buffers (no Python loops
    over values)."""
    inner_lengths = np.concatenate([np.full(a.shape[0], a.shape[1], dtype=np.int64) for a in arrays])
    inner_offsets = np.concatenate([[0], np.cumsum(inner_lengths)]).astype(np.int32)
    flat = np.concatenate([a.reshape(-1) for a in arrays])
    inner = pa.ListArray.from_arrays(pa.array(inner_offsets), pa.array(flat, type=value_type))
    outer_offsets = np.concatenate([[0], np.cumsum([a.shape[0] for a in arrays])]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(outer_offsets), inner)


SCHEMA = FEATURES.arrow_schema


def rows_to_batch(rows: list[dict]) -> pa.RecordBatch:
    """Corpus rows as one Arrow record batch with the FEATURES schema. The big 2-D columns go in as flat
    buffers."""
    columns = []
    for name in FEATURES:
        if name in ("values", "observed"):
            columns.append(_nested([np.asarray(r[name]) for r in rows], SCHEMA.field(name).type.value_type.value_type))
        else:
            columns.append(pa.array([r[name] for r in rows], type=SCHEMA.field(name).type))
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


def rows_to_table(rows: list[dict]) -> pa.Table:
    """Corpus rows as an Arrow table (one record batch) with the FEATURES schema."""
    return pa.Table.from_batches([rows_to_batch(rows)])


PART_ROWS = "rows.arrow"


def write_part_rows(rows: dict[str, list[dict]], path: Path) -> None:
    """A part's rows: one Arrow IPC file (internal to the build; merge turns parts into the corpus) holding
    one record batch per non-empty split, in SPLITS order. One file, not one per split: creating a file
    costs ~0.6 ms on a network or overlay file system."""
    present = [s for s in SPLITS if rows[s]]
    # one conversion of all rows (each column one call, not one per split), then a zero-copy slice per split
    batch = rows_to_batch([r for s in present for r in rows[s]]) if present else None
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as w:
        start = 0
        for s in present:
            w.write_batch(batch.slice(start, len(rows[s])))
            start += len(rows[s])


def read_part_splits(path: Path, counts: dict[str, dict]) -> dict[str, pa.RecordBatch]:
    """A part's rows per non-empty split (one record batch each, in SPLITS order; part.json's per-split
    series counts say which splits are there), memory-mapped once: the merge reads parts without copying
    them into RAM."""
    reader = pa.ipc.open_file(pa.memory_map(str(path), "r"))
    present = [s for s in SPLITS if counts[s]["series"]]
    if reader.num_record_batches != len(present):
        raise ValueError(f"{path}: {reader.num_record_batches} record batches for {len(present)} non-empty splits; "
                         "the part is damaged, rebuild it (fm prep build --force)")
    return {s: reader.get_batch(i) for i, s in enumerate(present)}


_HF_INFO = datasets.utils.py_utils.asdict(datasets.DatasetInfo(features=FEATURES))  # datasets' own asdict (drops unset keys)
# dataset_info.json as save_to_disk writes it (first-level keys sorted, nested order kept); the same for every split
_HF_INFO_JSON = json.dumps({k: _HF_INFO[k] for k in sorted(_HF_INFO)}, indent=2)
_HF_SCHEMA = SCHEMA.with_metadata(datasets.arrow_writer.ArrowWriter._build_metadata(datasets.DatasetInfo(features=FEATURES)))


def write_datasets_split(table: pa.Table, folder: Path, fingerprint: str, max_shard_size: str | int) -> list[Path]:
    """One split in the on-disk layout of ``datasets.Dataset.save_to_disk`` (``data-XXXXX-of-YYYYY.arrow``
    IPC streams with the features in the schema metadata, ``state.json``, ``dataset_info.json``), written
    straight from the Arrow table: the same files ``save_to_disk`` writes (same shard count and
    boundaries, same record batches; a test compares the bytes), without building a ``Dataset`` per split,
    which cost ~40 ms of Python per build (features deep-copied and fingerprinted per shard)."""
    from datasets.arrow_writer import get_writer_batch_size_from_data_size
    from datasets.utils.py_utils import convert_file_size_to_int

    n, nbytes = table.num_rows, table.nbytes
    num_shards = max(1, min(n, int(nbytes / convert_file_size_to_int(max_shard_size)) + 1))
    batch = datasets.config.DEFAULT_MAX_BATCH_SIZE
    if nbytes > 0:
        batch = min(batch, get_writer_batch_size_from_data_size(n, nbytes))
    folder.mkdir(parents=True, exist_ok=True)
    table = table.replace_schema_metadata(_HF_SCHEMA.metadata)
    paths = []
    div, mod = divmod(n, num_shards)
    for i in range(num_shards):
        start = div * i + min(i, mod)
        end = start + div + (1 if i < mod else 0)
        path = folder / f"data-{i:05d}-of-{num_shards:05d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, _HF_SCHEMA) as w:
            for a in range(start, end, batch):
                w.write_table(table.slice(a, min(batch, end - a)).combine_chunks(), batch)
        paths.append(path)
    state = {"_data_files": [{"filename": p.name} for p in paths], "_fingerprint": fingerprint, "_format_columns": None,
             "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False, "_split": None}
    (folder / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
    (folder / "dataset_info.json").write_text(_HF_INFO_JSON, encoding="utf-8")
    return paths


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
    sharing: str = "private"
    """Audience of the corpus: private (your own data, real names), consortium or public (only data whose
    owners allow that audience, names replaced by keyed pseudonyms)."""
    held_out_plants: list[str] = field(default_factory=list)
    """Plants that go whole into the ``heldout`` split (never trained on: transfer evaluation)."""

    def __post_init__(self) -> None:
        if isinstance(self.tokenizer, dict):
            self.tokenizer = TokenizerSpec(**self.tokenizer)
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1):
            raise ValueError("val_fraction and test_fraction must be in [0, 1) and sum to < 1")
        if self.context_prefix < 0:
            raise ValueError("context_prefix must be >= 0")
        if self.sharing not in SHARING_LEVELS:
            raise ValueError(f"sharing must be one of {SHARING_LEVELS}, got {self.sharing!r}")
        self.held_out_plants = sorted(self.held_out_plants)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> PrepConfig:
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
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(tokenizer=TokenizerSpec(**tok), **raw)

    def to_dict(self) -> dict:
        return asdict(self)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_HASHER: list = [None, None]
"""(pid, executor): one hashing thread per process (a forked worker makes its own)."""


def _hash_in_background(paths: list[Path]) -> dict[str, Future]:
    """Start hashing raw files in a background thread of this process, while they are parsed: hashlib
    releases the GIL, so the content hashes of lineage cost no time on the parsing thread (a second read
    of a file just read comes from the page cache). Returns {str(path): future of its sha256}."""
    if _HASHER[0] != os.getpid():
        _HASHER[:] = [os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="maxfm-sha256")]
    return {str(p): _HASHER[1].submit(sha256_file, p) for p in paths}


def _canonical_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _split_bounds(length: int, cfg: PrepConfig) -> dict[str, tuple[int, int]]:
    n_test = int(round(length * cfg.test_fraction))
    n_val = int(round(length * cfg.val_fraction))
    a = length - n_val - n_test
    b = length - n_test
    return {"train": (0, a), "validation": (a, b), "test": (b, length)}


def _runs(flags: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-D bool array."""
    d = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return (np.flatnonzero(d == -1) - np.flatnonzero(d == 1)).tolist()


def _step_ns(al, step: int) -> int:
    """The time of grid step ``step`` of an aligned series, int64 ns (UTC)."""
    return (al.start + pd.Timedelta(seconds=al.interval_s * step)).value


def _lineages(blocks: list[Block], tag_names: set[str], series: str, spans: list[tuple[int, int]],
              inputs: list[dict]) -> list[list[dict]]:
    """Per time span [t0, t1) (int64 ns): the input files and row ranges behind the values of one series
    of the given tags (the rows that hold a valid value of any of them). Masks over each block, no copies
    of its rows (a plant's blocks can hold millions)."""
    ranges: list[dict[int, tuple[int, int]]] = [{} for _ in spans]
    for blk in blocks:
        js = [j for j, name in enumerate(blk.tags) if name in tag_names]
        if not js or series not in blk.series_names:
            continue
        ok = np.isfinite(blk.values[js[0]])
        for j in js[1:]:  # row by row: no copy of the value matrix
            ok |= np.isfinite(blk.values[j])
        if len(blk.series_names) > 1:
            ok &= blk.series_codes == blk.series_names.index(series)
        if not ok.any():
            continue
        for got, (lo, hi) in zip(ranges, spans, strict=True):
            sel = ok & (blk.ts >= lo) & (blk.ts < hi)
            if not sel.any():
                continue
            if blk.rows is None:  # row i is input row i
                first, last = int(np.argmax(sel)), len(sel) - 1 - int(np.argmax(sel[::-1]))
            else:
                first = int(np.min(blk.rows, where=sel, initial=np.iinfo(blk.rows.dtype).max))
                last = int(np.max(blk.rows, where=sel, initial=-1))
            a, z = got.get(blk.file_idx, (first, last))
            got[blk.file_idx] = (min(a, first), max(z, last))
    return [
        [{"file": inputs[f]["file"], "sha256": inputs[f]["sha256"], "first_row": a, "last_row": z} for f, (a, z) in sorted(got.items())]
        for got in ranges
    ]


@dataclass
class PlantResult:
    plant_id: str
    """The plant's name as written in the corpus (a pseudonym in a shared corpus)."""
    rows: dict[str, list[dict]]
    report: dict
    quarantine: pd.DataFrame


def prep_plant(m: PlantManifest, cfg: PrepConfig, names: Names) -> PlantResult:
    """Read, validate, govern, align and tokenize one plant. A file that cannot be read is quarantined
    whole with its reason; the other files go on."""
    blocks, reports, quarantine, inputs, bad_files = [], [], [], [], []
    any_big = False
    for spec in m.files:
        hashes: dict[str, Future] = {}
        try:
            paths = raw_paths(m, spec)
            hashes = _hash_in_background(paths)
            size = sum(os.path.getsize(p) for p in paths)
            big = size >= _TRIM_AFTER_BYTES
            if big and _unreleased_input[0]:
                _release_unreleased()  # what earlier small plants left must not sit under this file's peak
            _unreleased_input[0] += size
            records = read_file(m, spec, paths)
            any_big |= big
            if big:
                _release_memory()  # the parser's buffers are gone: return them before validation allocates
        except Exception as e:  # a bad file never aborts the job: quarantine it with its reason
            bad_files.append({"file": names("file", spec.path), "reason": f"{type(e).__name__}: {str(e).splitlines()[0]}"})
            for f in hashes.values():  # no hashing left running once the plant is done (a worker pool may fork next)
                f.cancel()
            futures_wait(hashes.values())
            continue
        records.reverse()
        while records:  # each file's raw records are dropped as soon as it is validated
            rec = records.pop()
            fid = _file_id(m, spec, rec.file, names)
            v = validate(rec, m, consume=True)
            v.report.file = fid
            for b in v.blocks:
                b.file_idx = len(inputs)
            blocks.extend(v.blocks)
            reports.append(v.report)
            quarantine.append(v.quarantine.assign(file=fid))
            inputs.append({"file": fid, "sha256": hashes[rec.file].result(), "rows": rec.n_rows})
            del rec, v
        if big:
            _release_memory()  # the raw records are gone: hand their memory back before alignment
    kept_tags = [t for t in m.tags if allowed(m.tag_sharing(t), cfg.sharing)]
    withheld = [t.name for t in m.tags if t not in kept_tags]
    pid = names("plant", m.plant_id)
    rows: dict[str, list[dict]] = {s: [] for s in SPLITS}
    gaps = {"count": 0, "steps": 0, "longest_steps": 0}
    tok = cfg.tokenizer
    held_out = m.plant_id in cfg.held_out_plants
    assets = [a for a in m.assets if any(t.asset == a for t in kept_tags)]
    for i, asset in enumerate(assets):
        tags = [t for t in kept_tags if t.asset == asset]
        aligned = []
        for al in align_asset(blocks, m, asset, tags):
            length = al.values.shape[1]
            bounds = {"heldout": (0, length)} if held_out else _split_bounds(length, cfg)
            bounds = {k: v for k, v in bounds.items() if v[1] > v[0]}
            spans = [(_step_ns(al, s), _step_ns(al, e)) for s, e in bounds.values()]
            aligned.append((al, bounds, _lineages(blocks, {t.name for t in tags}, al.series, spans, inputs)))
        later = {t.name for t in kept_tags if t.asset in assets[i + 1 :]}
        blocks = [blk for blk in blocks if later.intersection(blk.tags)]  # the validated values no later asset needs go now
        if any_big and not blocks:
            _release_memory()  # before this asset's grids are scaled and encoded
        for al, bounds, lineages in aligned:
            runs = _runs(~al.observed.any(axis=0))
            gaps["count"] += len(runs)
            gaps["steps"] += int(sum(runs))
            gaps["longest_steps"] = max([gaps["longest_steps"], *runs])
            a, b = bounds["heldout" if held_out else "train"]
            loc, scale = tok.scale_stats(al.values[:, a:b], al.observed[:, a:b])
            z = tok.encode(al.values, al.observed, loc, scale)  # unobserved (NaN) positions become 0
            al.values = None  # the float64 grid is no longer needed; z and the mask are
            sid = f"{pid}/{names('asset', asset)}" + (f"/{names('series', al.series)}" if al.series else "")
            for (split, (s, e)), lineage in zip(bounds.items(), lineages, strict=True):
                p = min(cfg.context_prefix, s) if split in ("validation", "test") else 0
                start = al.start + pd.Timedelta(seconds=al.interval_s * (s - p))
                rows[split].append(
                    {
                        "series_id": sid,
                        "plant_id": pid,
                        "asset_id": names("asset", asset),
                        "stage": m.stage,
                        "sharing": m.sharing,
                        "start": start.isoformat(),
                        "interval_s": al.interval_s,
                        "prefix_len": p,
                        "channels": [names("tag", t.name) for t in tags],
                        "kinds": [SENSOR_KINDS.index(t.kind) for t in tags],
                        "units": [t.unit for t in tags],
                        "loc": loc.tolist(),
                        "scale": scale.tolist(),
                        "values": z[:, s - p : e],
                        "observed": al.observed[:, s - p : e],
                        "lineage": lineage,
                    }
                )
    report = {
        "plant_id": pid,
        "inputs": inputs,
        "files": [asdict(r) for r in reports],
        "files_quarantined": bad_files,
        "tags_withheld": len(withheld),
        "gaps": gaps,
        "rows": sum(r.rows for r in reports),
        "kept": sum(r.kept for r in reports),
        "repaired": sum(r.repaired for r in reports),
        "quarantined": sum(r.quarantined for r in reports),
    }
    if not names.pseudonymize:
        report["manifest"] = str(m.source)
        report["tags_withheld_names"] = withheld
    assert report["kept"] + report["repaired"] + report["quarantined"] == report["rows"]
    q = pd.concat(quarantine, ignore_index=True) if quarantine else pd.DataFrame(columns=["file", "row", "reason"])
    return PlantResult(pid, rows, report, q)


def write_quarantine(q: pd.DataFrame, path: Path) -> None:
    """``q.to_csv(path, index=False)``, byte for byte, by the standard library's writer (which pandas itself
    drives, with the same dialect): pandas' set-up costs ~1.8 ms a call, a tenth of a small plant's build,
    and most quarantine tables are empty or a few rows."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(q.columns)
        w.writerows(zip(*(q[c].tolist() for c in q.columns), strict=True))


def human_report(rep: dict) -> str:
    lines = [f"Ingest report for plant {rep['plant_id']}" + (f" ({rep['manifest']})" if "manifest" in rep else "")]
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
        if fr.reordered_rows:
            lines.append(f"    rows out of time order (placed by timestamp): {fr.reordered_rows}")
        if fr.unmapped_columns:
            lines.append(f"    columns not in the manifest (ignored): {fr.unmapped_columns}")
    for bad in rep["files_quarantined"]:
        lines.append(f"  {bad['file']}: FILE QUARANTINED: {bad['reason']}")
    g = rep["gaps"]
    if g["count"]:
        lines.append(f"  gaps (no channel observed): {g['count']}, {g['steps']} steps in all, longest {g['longest_steps']} steps")
    if rep["tags_withheld"]:
        lines.append(f"  tags withheld by their sharing level: {rep['tags_withheld']}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- parts
_TRIM_AFTER_BYTES = 4 << 20
"""Input files at least this big hand freed memory back right after reading and after validation; smaller
ones leave it to the end of a part, and only once the plants read since the last trim add up to this much
input. A trim takes ~0.7 ms, and the pages it hands back fault in again in the next plant: trimming after
every small plant cost ~3 ms a plant, 8-10 % of the 30-plant benchmark build."""

_unreleased_input = [0]
"""Input bytes read in this process since the last end-of-part trim."""


def _release_unreleased() -> None:
    """``_release_memory`` and a fresh count of the input read since."""
    _release_memory()
    _unreleased_input[0] = 0


def _release_memory() -> None:
    """Hand memory freed by finished work back to the OS before the next one starts: Arrow's pool and,
    on glibc, the C heap (freed numpy blocks otherwise stay in the process as fragmented free space and
    add up across plants). Best effort: a no-op where ``malloc_trim`` does not exist."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


class _arrow_prep_pool:
    """Arrow allocations of a part's build go to the C heap instead of Arrow's default pool (mimalloc).
    Measured on the benchmark inputs: peak RSS 20-35 MB lower at every size (mimalloc keeps per-thread
    arenas; jemalloc kept even more), for ~5 ms more per plant; and what a finished plant frees can be
    handed back with ``malloc_trim``. The previous default pool is restored when the outermost of nested
    (or concurrent, one per thread) uses ends."""

    _lock = threading.Lock()
    _depth = 0
    _previous = None

    def __enter__(self):
        with _arrow_prep_pool._lock:
            if _arrow_prep_pool._depth == 0:
                _arrow_prep_pool._previous = pa.default_memory_pool()
                pa.set_memory_pool(pa.system_memory_pool())
            _arrow_prep_pool._depth += 1

    def __exit__(self, *exc):
        with _arrow_prep_pool._lock:
            _arrow_prep_pool._depth -= 1
            if _arrow_prep_pool._depth == 0:
                pa.set_memory_pool(_arrow_prep_pool._previous)


def _load_libc():
    name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
    try:
        lib = ctypes.CDLL(name) if name else None
        return lib if lib is not None and hasattr(lib, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _load_libc()


_BY_FILE: dict[tuple, object] = {}


def _cached_by_file(what: str, path: str | Path, extra: str, build: Callable[[], object]):
    """``build()``, cached per process under (what, the file's identity (path, size, mtime), ``extra``): a
    build reads each manifest once, not once for selection, once per part and once for the merge. An
    edited file has a new mtime and is read again; a missing one is never cached (``build`` says why)."""
    p = Path(path).resolve()
    st = p.stat() if p.is_file() else None
    if st is None:
        return build()
    key = (what, str(path), str(p), st.st_size, st.st_mtime_ns, extra)
    value = _BY_FILE.get(key)
    if value is None:  # a plant thread may clear the cache meanwhile: the value is returned from here, not from it
        if len(_BY_FILE) > 8192:
            _BY_FILE.clear()
        value = _BY_FILE[key] = build()
    return value


def _manifest(path: str | Path, data_root: str | Path | None) -> PlantManifest:
    """``load_manifest``, cached by the file's identity and the data root (see ``_cached_by_file``)."""
    return _cached_by_file("manifest", path, str(data_root), lambda: load_manifest(path, data_root=data_root))


def _manifest_sha(path: str | Path) -> str:
    """sha256 of a manifest file's bytes, cached by the file's identity."""
    return _cached_by_file("sha256", path, "", lambda: hashlib.sha256(Path(path).read_bytes()).hexdigest())


def _fingerprint(m: PlantManifest, cfg: PrepConfig, key: bytes | None) -> str:
    key_check = hmac.new(key, b"max-fm key check", hashlib.sha256).hexdigest() if key else ""
    return _canonical_hash(
        {
            "manifest": _manifest_sha(m.source),
            "recipe": cfg.to_dict(),
            "key": key_check,
            "format": CORPUS_FORMAT_VERSION,
        }
    )


def _file_id(m: PlantManifest, spec, path: str | Path, names: Names) -> str:
    """A raw file's name in the corpus: its path relative to the file entry's root (default: the manifest's
    folder), pseudonymized in a shared corpus."""
    base = Path(spec.root) if spec.root else Path(m.source).parent
    return names("file", os.path.relpath(path, base))


def _label_name(path: str, names: Names) -> str:
    """A label file's name in the corpus' labels/ folder."""
    return names("file", path) + Path(path).suffix if names.pseudonymize else Path(path).name


def _input_identity(m: PlantManifest, names: Names) -> tuple[str, list[tuple[str, Path]]]:
    """The raw and label files a manifest names now: (a digest of their (file id, size, mtime),
    [(file id, path)], label files' ids prefixed "label:"). A finished part records the digest taken before
    it read its inputs; a later build or merge compares: an appended, edited, added or removed file makes
    the part stale. Only the digest is written (a file's modification time is not the corpus' business)."""
    entries, files = [], []

    def add(fid: str, path: Path) -> None:
        try:
            st = os.stat(path)
            entries.append([fid, st.st_size, st.st_mtime_ns])
        except OSError:
            entries.append([fid, None])
        files.append((fid, Path(path)))

    for spec in m.files:
        try:
            paths = raw_paths(m, spec)
        except ManifestError:
            entries.append([names("file", spec.path), None])  # missing: the part quarantines the entry
            continue
        for path in paths:
            add(_file_id(m, spec, path, names), path)
    for lab in m.labels:
        add("label:" + _label_name(lab.path, names), m.resolve(lab.path))
    return _canonical_hash(entries), files


def _current_part(info: dict, m: PlantManifest, names: Names, part_json: Path, record: bool = True) -> dict | None:
    """``info`` (a finished part's part.json) when the raw and label files behind it are still the ones it
    was built from, else None. Same sizes and modification times: unchanged. Otherwise the files' sha256
    decide (a copied or touched file has new times and the same bytes); when they match, the part takes
    the new digest (written to part.json unless not ``record``), so the next run needs no hashing."""
    digest, files = _input_identity(m, names)
    if info.get("inputs_stat") == digest:
        return info
    built = {i["file"]: i["sha256"] for i in info.get("inputs", [])}
    built.update({"label:" + lab["path"]: lab["sha256"] for lab in info.get("labels", [])})
    if len(files) != len(built) or {fid for fid, _ in files} != set(built):
        return None
    if any(sha256_file(path) != built[fid] for fid, path in files):
        return None
    info = {**info, "inputs_stat": digest}
    if record:
        tmp = part_json.with_name(part_json.name + ".tmp")
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True))
        os.replace(tmp, part_json)
    return info


def _reusable_part(m: PlantManifest, names: Names, done: Path, fingerprint: str, record: bool = True) -> tuple[dict | None, str]:
    """(part.json content, "") when the finished part whose part.json is ``done`` can be reused as it is,
    else (None, why it must be built)."""
    if not done.is_file():
        return None, "no finished part"
    info = json.loads(done.read_text())
    if info.get("fingerprint") != fingerprint:
        return None, "manifest, recipe or key changed"
    current = _current_part(info, m, names, done, record)
    return (current, "") if current is not None else (None, "raw or label files changed")


def part_plan(manifest_path: str | Path, out: str | Path, cfg: PrepConfig, key: bytes | None,
              data_root: str | Path | None = None) -> tuple[str, str]:
    """What ``fm prep build`` would do with a plant's part in ``out``, without writing anything: ("reuse",
    "") or ("build", why)."""
    m = _manifest(manifest_path, data_root)
    names = Names(cfg.sharing, key)
    done = Path(out) / "parts" / names("plant", m.plant_id) / "part.json"
    current, why = _reusable_part(m, names, done, _fingerprint(m, cfg, key), record=False)
    return ("reuse", "") if current is not None else ("build", why)


def _part_counts(res: PlantResult, cfg: PrepConfig) -> dict:
    counts = {}
    for s in SPLITS:
        rows = res.rows[s]
        steps = sum(len(r["values"][0]) - r["prefix_len"] for r in rows)
        cells = sum(len(r["channels"]) * (len(r["values"][0]) - r["prefix_len"]) for r in rows)
        obs = sum(int(np.asarray(r["observed"])[:, r["prefix_len"] :].sum()) for r in rows)
        counts[s] = {
            "series": len(rows),
            "steps": int(steps),
            "tokens": int(sum(len(r["channels"]) * ((len(r["values"][0]) - r["prefix_len"]) // cfg.tokenizer.patch_len) for r in rows)),
            "missing_pct": round(100.0 * (1 - obs / cells), 3) if cells else 0.0,
        }
    return counts


def build_part(manifest_path: str | Path, out: str | Path, cfg: PrepConfig, key: bytes | None, force: bool = False,
               data_root: str | Path | None = None) -> dict:
    """Write (or reuse) the part of one plant; returns its part.json content. Atomic: temp dir + rename."""
    m = _manifest(manifest_path, data_root)
    names = Names(cfg.sharing, key)
    pid = names("plant", m.plant_id)
    parts = Path(out) / "parts"
    final = parts / pid
    fp = _fingerprint(m, cfg, key)
    done = final / "part.json"
    if not force:
        current, _ = _reusable_part(m, names, done, fp)
        if current is not None:
            return {**current, "reused": True}
    inputs_stat, _ = _input_identity(m, names)  # before reading: a file changed during the build is seen next time
    # parts/.tmp/<plant>/<process>: what a killed run left of this plant is found without listing the parts
    # folder (thousands of plants in a SLURM array); a plant belongs to one shard only
    staging = parts / ".tmp" / pid
    shutil.rmtree(staging, ignore_errors=True)
    tmp = staging / str(os.getpid())
    tmp.mkdir(parents=True)
    with _arrow_prep_pool():
        res = prep_plant(m, cfg, names)
    write_part_rows(res.rows, tmp / PART_ROWS)  # an empty split has no rows there
    (tmp / "report.json").write_text(json.dumps(res.report, indent=2, sort_keys=True))
    (tmp / "report.txt").write_text(human_report(res.report))
    write_quarantine(res.quarantine, tmp / "quarantine.csv")
    labels = []
    for lab in m.labels:
        src = m.resolve(lab.path)
        dst = tmp / "labels" / _label_name(lab.path, names)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        labels.append({"path": dst.name, "task": lab.task, "sha256": sha256_file(dst)})
    info = {
        "plant_id": pid,
        "fingerprint": fp,
        "stage": m.stage,
        "sharing": m.sharing,
        "held_out": m.plant_id in cfg.held_out_plants,
        "assets": sorted(names("asset", a) for a in m.assets),
        "rows_in": res.report["rows"],
        "kept": res.report["kept"],
        "repaired": res.report["repaired"],
        "quarantined": res.report["quarantined"],
        "files_quarantined": len(res.report["files_quarantined"]),
        "tags_withheld": res.report["tags_withheld"],
        "gaps": res.report["gaps"],
        "splits": _part_counts(res, cfg),
        "inputs": res.report["inputs"],
        "inputs_stat": inputs_stat,
        "labels": labels,
    }
    (tmp / "part.json").write_text(json.dumps(info, indent=2, sort_keys=True))  # written last: the done marker
    del res
    if _unreleased_input[0] >= _TRIM_AFTER_BYTES:  # this plant, or those since the last end-of-part trim, read enough
        _release_unreleased()
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    staging.rmdir()
    return {**info, "reused": False}


def _build_part_job(args) -> dict:
    return build_part(*args)


# ------------------------------------------------------------------------------------------- build
@dataclass
class Selection:
    included: list[PlantManifest]
    excluded: int
    """Plants left out because their sharing level does not allow the corpus audience."""


def select_plants(manifest_paths: list[str | Path], cfg: PrepConfig, data_root: str | Path | None = None) -> Selection:
    manifests = [_manifest(p, data_root) for p in manifest_paths]  # all validated up front
    ids = [m.plant_id for m in manifests]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ManifestError(f"duplicate plant ids among manifests: {dup}; each plant_id must be unique")
    unknown = sorted(set(cfg.held_out_plants) - set(ids))
    if unknown:
        raise ManifestError(f"recipe key 'held_out_plants' names plants without a manifest: {unknown}")
    inc = sorted((m for m in manifests if allowed(m.sharing, cfg.sharing)), key=lambda m: m.plant_id)
    return Selection(inc, len(manifests) - len(inc))


PARTS_IN = "[prep] parts built in"
"""How ``build_parts`` says where the parts were built ("... 2 worker processes", "... 2 threads", "... this
process, one after the other")."""

_POOL_MIN_BYTES = 8 << 20
"""Below this much raw input, ``num_proc`` > 1 builds the parts in threads of this process instead of
worker processes: starting a worker pool (forked processes warming up) costs more than it saves on a few
MB (measured on the 2.2 MB benchmark input: 0.11 s in one process, 0.12 s with two), while threads start
at once and overlap where Arrow, numpy and file I/O release the GIL."""


def _raw_bytes(manifests: list[PlantManifest], enough: int | None = None) -> int:
    """Bytes of the raw files the manifests name (a missing file counts 0: its part quarantines it); the
    count stops once it reaches ``enough`` (thousands of plants need not all be listed to know)."""
    total = 0
    for m in manifests:
        if enough is not None and total >= enough:
            break
        for spec in m.files:
            try:
                total += sum(p.stat().st_size for p in raw_paths(m, spec))
            except (OSError, ManifestError):
                pass
    return total


def build_parts(
    manifest_paths: list[str | Path],
    out: str | Path,
    cfg: PrepConfig,
    key_file: str | Path | None = None,
    num_proc: int = 1,
    shard_index: int = 0,
    num_shards: int = 1,
    force: bool = False,
    log: Callable[[str], None] = print,
    data_root: str | Path | None = None,
) -> list[dict]:
    """Write the parts of this shard's plants (plants are dealt round-robin by plant id over shards)."""
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index must be in [0, {num_shards}), got {shard_index}")
    key = load_key(key_file)
    Names(cfg.sharing, key)  # fail fast: a shared corpus needs a key
    sel = select_plants(manifest_paths, cfg, data_root)
    mine = sel.included[shard_index::num_shards]
    jobs = [(m.source, out, cfg, key, force, data_root) for m in mine]
    Path(out, "parts").mkdir(parents=True, exist_ok=True)
    results = []
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc="prep plants", unit="plant", disable=None)
    workers = min(num_proc, len(jobs))
    if num_proc > 1 and len(jobs) > 1 and _raw_bytes(mine, enough=_POOL_MIN_BYTES) >= _POOL_MIN_BYTES:
        log(f"{PARTS_IN} {workers} worker processes")
        with ProcessPoolExecutor(max_workers=workers) as ex:
            for info in ex.map(_build_part_job, jobs):
                results.append(info)
                bar.update()
    elif num_proc > 1 and len(jobs) > 1:
        log(f"{PARTS_IN} {workers} threads")
        sizes = [_raw_bytes([m]) for m in mine]
        done: dict[int, dict] = {}
        with _arrow_prep_pool(), ThreadPoolExecutor(max_workers=workers) as ex:
            # the biggest plants first, so that no big one starts last; results in plant order all the same
            futures = {ex.submit(_build_part_job, jobs[i]): i for i in sorted(range(len(jobs)), key=lambda i: -sizes[i])}
            try:
                for fut in as_completed(futures):
                    done[futures[fut]] = fut.result()
                    bar.update()
            except BaseException:  # a failed plant (or Ctrl-C): the plants not started yet are not started
                ex.shutdown(wait=True, cancel_futures=True)
                raise
        results = [done[i] for i in range(len(jobs))]
    else:
        log(f"{PARTS_IN} this process, one after the other")
        for job in jobs:
            results.append(_build_part_job(job))
            bar.update()
    if _unreleased_input[0]:  # what the last small plants left in this process goes before the merge allocates
        _release_unreleased()
    bar.close()
    for info in results:
        verb = "reused" if info["reused"] else "built"
        log(
            f"[prep] {info['plant_id']}: {verb}; {info['rows_in']} rows -> kept {info['kept']}, repaired {info['repaired']}, "
            f"quarantined {info['quarantined']}" + (f"; {info['files_quarantined']} file(s) quarantined" if info["files_quarantined"] else "")
        )
    return results


def merge(manifest_paths: list[str | Path], out: str | Path, cfg: PrepConfig, key_file: str | Path | None = None,
          log: Callable[[str], None] = print, data_root: str | Path | None = None) -> dict:
    """Merge the parts of every selected plant into data/ + manifest.json. Refuses missing or stale parts."""
    out = Path(out)
    key = load_key(key_file)
    names = Names(cfg.sharing, key)
    sel = select_plants(manifest_paths, cfg, data_root)
    infos = []
    for m in sel.included:
        pid = names("plant", m.plant_id)
        part = out / "parts" / pid / "part.json"
        where = "plant " + (pid if names.pseudonymize else m.plant_id)
        if not part.is_file():
            raise FileNotFoundError(f"{out}: no finished part for {where}; run fm prep build for its shard")
        info = json.loads(part.read_text())
        if info["fingerprint"] != _fingerprint(m, cfg, key):
            raise ValueError(f"{out}: the part of {where} was built from another manifest, recipe or key; rebuild it")
        current = _current_part(info, m, names, part)
        if current is None:
            raise ValueError(f"{out}: the raw or label files of {where} changed (edited, appended, added or removed) since "
                             "its part was built; rebuild it with fm prep build")
        infos.append(current)
    splits = {}
    part_rows = [read_part_splits(out / "parts" / i["plant_id"] / PART_ROWS, i["splits"]) for i in infos]
    for s in SPLITS:  # a split no plant has is left out of data/ (its count in manifest.json is 0)
        pieces = [rows[s] for rows in part_rows if s in rows]
        if pieces:
            table = pa.Table.from_batches(pieces, schema=SCHEMA)
            splits[s] = (table, _canonical_hash([i["fingerprint"] for i in infos] + [s])[:16])
    tmp = out / ".tmp-data"
    shutil.rmtree(tmp, ignore_errors=True)
    for s, (table, fingerprint) in splits.items():
        write_datasets_split(table, tmp / s, fingerprint, cfg.max_shard_size)
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}), encoding="utf-8")
    if (out / "data").exists():
        shutil.rmtree(out / "data")
    os.replace(tmp, out / "data")
    labels_dir = out / "labels"
    shutil.rmtree(labels_dir, ignore_errors=True)
    for i in infos:
        src = out / "parts" / i["plant_id"] / "labels"
        if src.is_dir():
            shutil.copytree(src, labels_dir / i["plant_id"])
    # inputs_stat (a digest of the raw files' times) is the build's own bookkeeping, not the corpus'
    plants = {i["plant_id"]: {k: v for k, v in i.items() if k not in ("plant_id", "reused", "inputs_stat")} for i in infos}
    body = {
        "format_version": CORPUS_FORMAT_VERSION,
        "tokenizer": cfg.tokenizer.to_dict(),
        "tokenizer_hash": cfg.tokenizer.hash,
        "recipe": {k: v for k, v in cfg.to_dict().items() if k != "tokenizer"},
        "pseudonymized": names.pseudonymize,
        "plants_excluded_by_sharing": sel.excluded,
        "splits": {
            s: {k: sum(p["splits"][s][k] for p in plants.values()) for k in ("series", "steps", "tokens")} for s in SPLITS
        },
        "plants": plants,
        "shards": {str(p.relative_to(out)): sha256_file(p) for p in sorted((out / "data").rglob("*.arrow"))},
    }
    command = "fm prep" if names.pseudonymize else " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    manifest = {
        **body,
        "content_hash": _canonical_hash(body),
        "provenance": {"tool": "max-fm", "command": command},
    }
    tmp_m = out / ".manifest.json.tmp"
    tmp_m.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(tmp_m, out / "manifest.json")
    log(f"[prep] merged {len(infos)} plant(s) into {out / 'data'}; content hash {manifest['content_hash'][:16]}")
    return manifest


def build_corpus(
    manifest_paths: list[str | Path],
    out: str | Path,
    cfg: PrepConfig,
    key_file: str | Path | None = None,
    num_proc: int = 1,
    force: bool = False,
    log: Callable[[str], None] = print,
    data_root: str | Path | None = None,
) -> dict:
    """Build the parts of every plant (reusing finished ones) and merge them. Returns manifest.json.
    ``data_root``: where relative raw-file paths of the manifests point (default: each manifest's folder)."""
    build_parts(manifest_paths, out, cfg, key_file, num_proc=num_proc, force=force, log=log, data_root=data_root)
    return merge(manifest_paths, out, cfg, key_file, log=log, data_root=data_root)


def load_corpus_manifest(corpus: str | Path) -> dict:
    path = Path(corpus) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{corpus}: not a corpus (no manifest.json); build one with `fm prep build`")
    return json.loads(path.read_text())
