"""The real, public data sets of ``../shared/data`` as plant manifests (``configs/data/real/*.yaml``).

The manifests hold paths relative to a data root, never absolute paths, and the data is never copied
into the repository: pass the root with ``fm prep build --data-root ../shared/data`` (or
``load_manifest(path, data_root=...)``).
"""

from __future__ import annotations

from pathlib import Path

REAL_MANIFESTS = Path(__file__).resolve().parents[1] / "configs" / "data" / "real"


def real_manifest_paths() -> list[Path]:
    return sorted(REAL_MANIFESTS.glob("*.yaml"))
