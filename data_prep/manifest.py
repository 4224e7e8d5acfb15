"""Plant manifest: the YAML that describes one site, validated once, up front.

A manifest names the plant, its value-chain stage and sharing level, the raw files and how to read them,
and per tag: unit, sensor kind, physical limits, sampling interval and the asset the tag belongs to.
Every error names the manifest file, the key, and what was expected; unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SHARING_LEVELS = ("private", "consortium", "public")
FILE_FORMATS = ("wide_csv", "long_parquet", "long_csv")
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
    """One raw file of a plant and how to read it."""

    path: str
    """Path of the raw file, relative to the manifest's folder (or absolute)."""
    format: str
    """One of FILE_FORMATS."""
    timestamp_column: str = "timestamp"
    """Column holding the timestamp."""
    timestamp_format: str | None = None
    """strftime format of the timestamp; None = ISO 8601 / let pandas infer."""
    delimiter: str = ","
    """Field separator of CSV files."""
    decimal: str = "."
    """Decimal mark of CSV files ("," for many European historian exports)."""
    encoding: str = "utf-8"
    """Text encoding of CSV files."""
    tag_column: str = "tag"
    """Long formats: column holding the tag name."""
    value_column: str = "value"
    """Long formats: column holding the value."""


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

    def tags_of(self, asset: str) -> list[TagSpec]:
        return [t for t in self.tags if t.asset == asset]

    def tag_sharing(self, tag: TagSpec) -> str:
        """Effective sharing level of a tag: its own when set (never more open than the plant's)."""
        return tag.sharing or self.sharing


def _build(cls: type, raw: Any, where: str, key: str) -> Any:
    """Build a frozen dataclass from a mapping; unknown or missing keys are errors that name the key."""
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: key '{key}' must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
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


def load_manifest(path: str | Path) -> PlantManifest:
    """Read and validate one plant manifest YAML."""
    path = Path(path)
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{where}: manifest file not found") from None
    except yaml.YAMLError as e:
        raise ManifestError(f"{where}: not valid YAML: {e}") from None
    _build(PlantManifest, raw, where, "<root>")
    files = []
    for i, f in enumerate(raw["files"] or []):
        files.append(FileSpec(**_build(FileSpec, f, where, f"files[{i}]")))
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
