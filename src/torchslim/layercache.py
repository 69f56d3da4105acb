"""Layer cache: a finished layer's metadata, found by the digest of its inputs.

The layer bytes live in the BlobStore; this cache maps an input key to the
layer's descriptor plus whatever the build wants to report about it, so a
warm build skips staging, slimming and compressing entirely.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from torchslim.cache import BlobStore, cache_root


def input_key(*parts: Any) -> str:
    """A stable digest of JSON-serialisable inputs."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class LayerCache:
    def __init__(self, store: BlobStore, root: Path | None = None) -> None:
        self.store = store
        self.root = (root or cache_root()) / "layers"

    def _path(self, key: str) -> Path:
        return self.root / (key.removeprefix("sha256:") + ".json")

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry for ``key`` if its blob is still in the store."""
        path = self._path(key)
        try:
            entry: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        digest = entry.get("layer", {}).get("descriptor", {}).get("digest")
        if not isinstance(digest, str) or not self.store.has(digest):
            return None
        return entry

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(key)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(entry, sort_keys=True))
        os.replace(tmp, path)
