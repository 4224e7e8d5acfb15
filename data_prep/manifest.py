"""Plant manifest: the YAML that describes one site, validated once, up front.

A manifest names the plant, its value-chain stage and sharing level, the raw files and how to read them,
and per tag: unit, sensor kind, physical limits, sampling interval and the asset the tag belongs to.
Every error names the manifest file, the key, and what was expected; unknown keys are errors.
"""

from __future__ import annotations

import codecs
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

SHARING_LEVELS = ("private", "consortium", "public")
FILE_FORMATS = ("wide_csv", "long_parquet", "long_csv")
TIMESTAMP_UNITS = ("s", "ms", "us", "ns", "index")
SERIES_FROM = ("file",)
# Sensor kinds known to the model (index = kind id used by the kind embedding; 0 = unknown/other).
SENSOR_KINDS = (
    "other",
    "temperature",
    "vibration",
    "current",
    "voltage",
    "pressure",
    "flow",
    "power",
    "energy",
    "speed",
    "position",
    "acceleration",
    "humidity",
    "level",
    "torque",
    "load",
)


class ManifestError(ValueError):
    """A plant manifest is malformed; the message names the file, the key and what was expected."""


@dataclass(frozen=True)
class FileSpec:
    """One raw file of a plant (or a glob of per-run files) and how to read it."""

    path: str
    """Path of the raw file, relative to the manifest's folder (or to the data root the manifest is loaded
    with, see ``load_manifest(..., data_root=)``), or absolute. May be a glob (``valve1/*.csv``): every
    matching file, in sorted order, is read as a file of its own."""
    format: str
    """One of FILE_FORMATS."""
    timestamp_column: str | None = "timestamp"
    """Column holding the timestamp; None = the file has no time column and row ``i`` is at
    ``origin + i * row_interval_s`` (wide files only)."""
    timestamp_format: str | None = None
    """strftime format of the timestamp; None = ISO 8601 / let pandas infer."""
    delimiter: str = ","
    """Field separator of CSV files; ``whitespace`` = any run of spaces/tabs (e.g. C-MAPSS)."""
    decimal: str = "."
    """Decimal mark of CSV files ("," for many European historian exports)."""
    encoding: str = "auto"
    """Text encoding of CSV files; ``auto`` = UTF-8 (a byte-order mark is dropped), else Latin-1."""
    tag_column: str = "tag"
    """Long formats: column holding the tag name."""
    value_column: str = "value"
    """Long formats: column holding the value."""
    timestamp_unit: str | None = None
    """How a numeric timestamp column counts: s / ms / us / ns since the Unix epoch, or ``index`` = an
    integer step count (e.g. a C-MAPSS cycle) at ``origin + value * row_interval_s``. None = dates as text
    (numeric columns of Parquet files: epoch seconds)."""
    row_interval_s: float | None = None
    """Seconds per row (``timestamp_column: null``) or per step (``timestamp_unit: index``)."""
    origin: str = "2000-01-01T00:00:00Z"
    """Time of row / step 0 for synthetic timestamps (a naive origin is in the plant's time zone)."""
    header: bool = True
    """CSV files: whether the first line names the columns; when False, ``columns`` names them."""
    columns: tuple[str, ...] | None = None
    """CSV files without a header: the column names, one per field."""
    quality_column: str | None = None
    """Long formats: column holding the historian's quality flag of each record."""
    bad_quality: tuple[str, ...] = ("bad",)
    """Quality values that mark a record bad (compared as text, case-insensitive; 0 and 0.0 are equal):
    its value is masked and flagged ``bad_quality``."""
    series_from: str | None = None
    """``file`` = each matched file is a series of its own, named by the file's stem (runs, experiments)."""
    series_column: str | None = None
    """Column whose value splits the file into series (e.g. the C-MAPSS engine unit)."""
    series_prefix: str = ""
    """Text put before series names taken from the file stem or series_column (keeps runs of different
    folders apart, e.g. ``valve1/``)."""
    root: str | None = None
    """Folder that a relative ``path`` resolves against (set by the loader from ``data_root``; not a
    manifest key). None = the manifest's folder."""

    def check(self, where: str, key: str) -> None:
        """Raise ManifestError for inconsistent keys; ``key`` names this entry (e.g. ``files[0]``)."""

        def bad(k: str, msg: str) -> ManifestError:
            return ManifestError(f"{where}: key '{key}.{k}' {msg}")

        long = self.format in ("long_csv", "long_parquet")
        if self.timestamp_unit is not None and self.timestamp_unit not in TIMESTAMP_UNITS:
            raise bad("timestamp_unit", f"is {self.timestamp_unit!r}; expected one of {TIMESTAMP_UNITS} or null")
        if self.row_interval_s is not None and not self.row_interval_s > 0:
            raise bad("row_interval_s", f"must be a number of seconds > 0, got {self.row_interval_s!r}")
        if self.timestamp_column is None:
            if long:
                raise bad("timestamp_column", "is null; long formats need a timestamp column (one record per row)")
            if self.row_interval_s is None:
                raise bad("row_interval_s", "is missing; 'timestamp_column: null' needs the seconds per row")
        if self.timestamp_unit == "index" and self.row_interval_s is None:
            raise bad("row_interval_s", "is missing; 'timestamp_unit: index' needs the seconds per step")
        try:
            pd.Timestamp(self.origin)
        except (ValueError, TypeError):
            raise bad("origin", f"is {self.origin!r}; expected an ISO 8601 time such as 2000-01-01T00:00:00Z") from None
        if not self.delimiter:
            raise bad("delimiter", "is empty; expected a separator such as ',' ';' '\\t' or 'whitespace'")
        if self.encoding != "auto":
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise bad("encoding", f"is {self.encoding!r}; expected 'auto' or a Python codec name") from None
        if self.header and self.columns is not None:
            raise bad("columns", "is set but the file has a header; use it only with 'header: false'")
        if not self.header:
            if self.format == "long_parquet":
                raise bad("header", "is false; Parquet files always name their columns")
            if not self.columns:
                raise bad("columns", "is missing; 'header: false' needs the column names, one per field")
            if len(set(self.columns)) != len(self.columns):
                raise bad("columns", f"has duplicate names {sorted({c for c in self.columns if self.columns.count(c) > 1})}")
        if self.quality_column is not None and not long:
            raise bad("quality_column", "is set; quality flags are read from long formats only")
        if self.series_from is not None and self.series_from not in SERIES_FROM:
            raise bad("series_from", f"is {self.series_from!r}; expected one of {SERIES_FROM} or null")
        if self.series_from is not None and self.series_column is not None:
            raise bad("series_column", "is set together with 'series_from'; choose one way to name series")


@dataclass(frozen=True)
class TagSpec:
    """One sensor tag."""

    name: str
    """Tag name as it appears in the raw file (column name for wide, tag value for long files)."""
    asset: str
    """Asset the tag belongs to; an asset's tags are aligned and tokenized together."""
    kind: str
    """Sensor kind, one of SENSOR_KINDS."""
    unit: str
    """Physical unit as written by the plant (e.g. degC, mm/s, kW)."""
    interval_s: float
    """Nominal sampling interval in seconds."""
    limits: tuple[float, float] | None = None
    """Physical limits [low, high]; values outside are masked as invalid (repaired)."""
    stuck_after_s: float | None = 7200.0
    """A run of identical values lasting this long is a stuck sensor and is masked; None disables the rule
    (for tags that are legitimately constant, e.g. a production counter on a Sunday)."""
    sharing: str | None = None
    """Sharing level of this tag when stricter than the plant's (e.g. a recipe setpoint kept private);
    None = the plant's level. A tag cannot be more open than its plant."""


@dataclass(frozen=True)
class LabelSpec:
    """A file of task labels (quality outcomes, RUL, fault classes...) kept beside the sensor data."""

    path: str
    """Path of the label CSV, relative to the manifest's folder."""
    task: str
    """Task family: inspection, maintenance or energy."""
    description: str = ""
    """Free text: what the columns mean."""


@dataclass(frozen=True)
class PlantManifest:
    """One plant (site)."""

    plant_id: str
    """Stable identifier of the plant."""
    stage: str
    """Value-chain stage (raw_material, firing, machining, assembly, utilities, ...)."""
    sharing: str
    """Sharing level of the plant's data: private, consortium or public."""
    files: tuple[FileSpec, ...]
    tags: tuple[TagSpec, ...]
    assets: dict[str, float]
    """Asset id -> target interval in seconds onto which its tags are aligned."""
    labels: tuple[LabelSpec, ...] = ()
    timezone: str = "UTC"
    """Time zone of naive timestamps in the raw files."""
    description: str = ""
    source: Path = field(default=Path("."), compare=False)
    """The manifest file itself (set by the loader)."""

    def __post_init__(self) -> None:
        where = str(self.source)
        if self.sharing not in SHARING_LEVELS:
            raise ManifestError(f"{where}: key 'sharing' is {self.sharing!r}; expected one of {SHARING_LEVELS}")
        if not self.files:
            raise ManifestError(f"{where}: key 'files' is empty; expected at least one raw file")
        for i, f in enumerate(self.files):
            if f.format not in FILE_FORMATS:
                raise ManifestError(f"{where}: key 'files[{i}].format' is {f.format!r}; expected one of {FILE_FORMATS}")
        names = [t.name for t in self.tags]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ManifestError(f"{where}: key 'tags' has duplicate names {sorted(dup)}")
        for t in self.tags:
            if t.kind not in SENSOR_KINDS:
                raise ManifestError(f"{where}: key 'tags[{t.name}].kind' is {t.kind!r}; expected one of {SENSOR_KINDS}")
            if t.asset not in self.assets:
                raise ManifestError(
                    f"{where}: key 'tags[{t.name}].asset' is {t.asset!r}; expected one of the assets {sorted(self.assets)}"
                )
            if t.interval_s <= 0:
                raise ManifestError(f"{where}: key 'tags[{t.name}].interval_s' must be > 0, got {t.interval_s}")
            if t.sharing is not None and t.sharing not in SHARING_LEVELS:
                raise ManifestError(f"{where}: key 'tags[{t.name}].sharing' is {t.sharing!r}; expected one of {SHARING_LEVELS}")
            if t.sharing is not None and SHARING_LEVELS.index(t.sharing) > SHARING_LEVELS.index(self.sharing):
                raise ManifestError(
                    f"{where}: key 'tags[{t.name}].sharing' is {t.sharing!r}, more open than the plant's {self.sharing!r}"
                )
            if t.limits is not None and not (t.limits[0] < t.limits[1]):
                raise ManifestError(f"{where}: key 'tags[{t.name}].limits' must be [low, high] with low < high")
        for a, iv in self.assets.items():
            if iv <= 0:
                raise ManifestError(f"{where}: key 'assets.{a}' must be an interval in seconds > 0, got {iv}")
            if not any(t.asset == a for t in self.tags):
                raise ManifestError(f"{where}: asset {a!r} has no tags")

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else (self.source.parent / p)

    def resolve_file(self, spec: FileSpec) -> Path:
        """Path (or glob pattern) of a raw file entry: against its data root when the loader set one."""
        p = Path(spec.path)
        if p.is_absolute() or spec.root is None:
            return self.resolve(spec.path)
        return Path(spec.root) / p

    def tags_of(self, asset: str) -> list[TagSpec]:
        return [t for t in self.tags if t.asset == asset]

    def tag_sharing(self, tag: TagSpec) -> str:
        """Effective sharing level of a tag: its own when set (never more open than the plant's)."""
        return tag.sharing or self.sharing


def _build(cls: type, raw: Any, where: str, key: str) -> Any:
    """Build a frozen dataclass from a mapping; unknown or missing keys are errors that name the key."""
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: key '{key}' must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in ("source", "root")}  # set by the loader
    unknown = set(raw) - set(fields)
    if unknown:
        raise ManifestError(f"{where}: unknown key(s) {sorted(unknown)} in '{key}'; expected some of {sorted(fields)}")
    missing = [
        n
        for n, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and n not in raw
    ]
    if missing:
        raise ManifestError(f"{where}: missing key(s) {missing} in '{key}'")
    return raw


def _file_spec(raw: Any, where: str, key: str, root: str | None) -> FileSpec:
    """One ``files`` entry: keys checked, YAML lists made tuples, numbers made floats, combinations checked."""
    f = dict(_build(FileSpec, raw, where, key))
    for k in ("path", "format"):
        if not isinstance(f[k], str) or not f[k]:
            raise ManifestError(f"{where}: key '{key}.{k}' must be a non-empty string, got {f[k]!r}")
    if "row_interval_s" in f and f["row_interval_s"] is not None:
        try:
            f["row_interval_s"] = float(f["row_interval_s"])
        except (TypeError, ValueError):
            raise ManifestError(f"{where}: key '{key}.row_interval_s' must be a number of seconds, got {f['row_interval_s']!r}") from None
    if "header" in f and not isinstance(f["header"], bool):
        raise ManifestError(f"{where}: key '{key}.header' must be true or false, got {f['header']!r}")
    for k in ("columns", "bad_quality"):
        if k in f and f[k] is not None:
            if not isinstance(f[k], list | tuple):
                raise ManifestError(f"{where}: key '{key}.{k}' must be a list, got {f[k]!r}")
            f[k] = tuple(str(c) for c in f[k])
    for k in ("origin", "series_prefix"):
        if k in f and f[k] is not None:
            f[k] = str(f[k])
    spec = FileSpec(**f, root=root)
    spec.check(where, key)
    return spec


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML has it (the same safe constructors, ~10x faster than the Python one)."""


def load_manifest(path: str | Path, data_root: str | Path | None = None) -> PlantManifest:
    """Read and validate one plant manifest YAML.

    ``data_root``: folder that relative raw-file and label paths resolve against (e.g. the shared data
    folder for the manifests in ``configs/data/real``); default: the manifest's own folder.
    """
    path = Path(path)
    where = str(path)
    root = str(Path(data_root).expanduser().resolve()) if data_root is not None else None
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except FileNotFoundError:
        raise ManifestError(f"{where}: manifest file not found") from None
    except yaml.YAMLError as e:
        raise ManifestError(f"{where}: not valid YAML: {e}") from None
    _build(PlantManifest, raw, where, "<root>")
    files = []
    for i, f in enumerate(raw["files"] or []):
        files.append(_file_spec(f, where, f"files[{i}]", root))
    tags = []
    for i, t in enumerate(raw["tags"] or []):
        t = dict(_build(TagSpec, t, where, f"tags[{i}]"))
        if t.get("limits") is not None:
            lim = t["limits"]
            if not (isinstance(lim, list | tuple) and len(lim) == 2):
                raise ManifestError(f"{where}: key 'tags[{i}].limits' must be a list [low, high], got {lim!r}")
            t["limits"] = (float(lim[0]), float(lim[1]))
        try:
            t["interval_s"] = float(t["interval_s"])
        except (TypeError, ValueError):
            raise ManifestError(f"{where}: key 'tags[{i}].interval_s' must be a number of seconds") from None
        tags.append(TagSpec(**t))
    labels = [LabelSpec(**_build(LabelSpec, lab, where, f"labels[{i}]")) for i, lab in enumerate(raw.get("labels") or [])]
    if root is not None:  # label paths are relative to the data root too (kept absolute: m.resolve works unchanged)
        labels = [dataclasses.replace(lab, path=str(Path(root) / lab.path)) for lab in labels]
    assets = raw["assets"]
    if not isinstance(assets, dict):
        raise ManifestError(f"{where}: key 'assets' must map asset id -> interval in seconds")
    rest = {k: v for k, v in raw.items() if k not in ("files", "tags", "labels", "assets")}
    return PlantManifest(
        files=tuple(files),
        tags=tuple(tags),
        labels=tuple(labels),
        assets={str(k): float(v) for k, v in assets.items()},
        source=path,
        **rest,
    )
