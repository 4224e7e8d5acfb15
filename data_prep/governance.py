"""Governance: which data may enter a corpus, and under which names.

* **Sharing levels** are ordered ``private < consortium < public``. A corpus is built for an *audience*
  (``--sharing``): it holds a plant, and a tag of that plant, only when their level is at least as open
  as the audience (a ``consortium`` corpus takes consortium and public data; a ``public`` corpus only
  public data; a ``private`` corpus is a plant's own and takes everything it is given).
* **Pseudonyms.** In a shared corpus (audience consortium or public) plant, asset, tag and file names are
  replaced by keyed pseudonyms: HMAC-SHA256(key, kind + ":" + name), first 12 hex digits. The key comes
  from ``MAXFM_PSEUDONYM_KEY`` or a key file; it is never written to the corpus or to logs, and the same
  key gives the same pseudonyms in every build (so a consortium can join corpora built at different
  sites), while without it names cannot be recovered by guessing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from data_prep.manifest import SHARING_LEVELS

KEY_ENV = "MAXFM_PSEUDONYM_KEY"


class GovernanceError(ValueError):
    """A governance rule cannot be met (e.g. a shared corpus without a pseudonym key)."""


def allowed(level: str, audience: str) -> bool:
    """May data at sharing ``level`` enter a corpus built for ``audience``?"""
    return SHARING_LEVELS.index(level) >= SHARING_LEVELS.index(audience)


def load_key(key_file: str | Path | None = None) -> bytes | None:
    if key_file is not None:
        path = Path(key_file)
        if not path.is_file():
            raise GovernanceError(f"pseudonym key file {path} not found")
        key = path.read_bytes().strip()
        if len(key) < 16:
            raise GovernanceError(f"pseudonym key file {path}: key must be at least 16 bytes")
        return key
    env = os.environ.get(KEY_ENV)
    if env:
        if len(env) < 16:
            raise GovernanceError(f"{KEY_ENV} must be at least 16 characters")
        return env.encode()
    return None


class Names:
    """Maps real names to the names written into a corpus: identity for a private corpus, keyed
    pseudonyms for a shared one."""

    def __init__(self, audience: str, key: bytes | None):
        if audience not in SHARING_LEVELS:
            raise GovernanceError(f"sharing audience must be one of {SHARING_LEVELS}, got {audience!r}")
        self.audience = audience
        self.pseudonymize = audience != "private"
        if self.pseudonymize and not key:
            raise GovernanceError(
                f"a {audience} corpus replaces names with keyed pseudonyms: set {KEY_ENV} or pass --key-file"
            )
        self._key = key

    def __call__(self, kind: str, name: str) -> str:
        if not self.pseudonymize:
            return name
        digest = hmac.new(self._key, f"{kind}:{name}".encode(), hashlib.sha256).hexdigest()[:12]
        return f"{kind[0]}_{digest}"

    def __repr__(self) -> str:  # never show the key
        return f"Names(audience={self.audience!r}, pseudonymize={self.pseudonymize})"
