"""The real, public data sets of ``../shared/data`` as plant manifests (``configs/data/real/*.yaml``).

The manifests hold paths relative to a data root, never absolute paths, and the data is never copied
into the repository. The root is, in order: the ``data_root`` argument, the ``MAXFM_DATA`` environment
variable, or ``../shared/data`` beside the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

from data_prep.manifest import PlantManifest, load_manifest

REPO = Path(__file__).resolve().parents[1]
REAL_MANIFESTS = REPO / "configs" / "data" / "real"


def default_data_root() -> Path:
    env = os.environ.get("MAXFM_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def real_manifest_paths() -> list[Path]:
    return sorted(REAL_MANIFESTS.glob("*.yaml"))


def load_real_manifests(data_root: str | Path | None = None) -> list[PlantManifest]:
    """Every manifest in ``configs/data/real``, with raw-file and label paths under the data root."""
    root = Path(data_root) if data_root is not None else default_data_root()
    return [load_manifest(p, data_root=root) for p in real_manifest_paths()]
