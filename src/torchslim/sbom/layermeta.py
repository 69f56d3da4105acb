"""Each layer's SBOM metadata kept on disk by layer digest, so an SBOM reads no layer twice.

A layer's digest names its bytes, so an entry never goes stale. Entries are JSON (file
contents base64) compressed with zstd; one that cannot be read is read from the layer again.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import zstandard

from torchslim.atomic import write_atomic
from torchslim.cache import cache_root, split_digest
from torchslim.sbom.tree import LayerMeta

FORMAT = 1  # bump when what LayerMeta holds changes


def meta_to_bytes(meta: LayerMeta) -> bytes:
    data = {
        "format": FORMAT,
        "files": {p: base64.b64encode(b).decode() for p, b in sorted(meta.files.items())},
        "links": meta.links,
        "hardlinks": meta.hardlinks,
        "whiteouts": meta.whiteouts,
        "opaque": meta.opaque,
        "others": meta.others,
    }
    return zstandard.ZstdCompressor(level=6).compress(json.dumps(data).encode())


def meta_from_bytes(blob: bytes) -> LayerMeta | None:
    """The entry, or None when it is not one this version wrote."""
    try:
        data = json.loads(zstandard.ZstdDecompressor().decompress(blob))
        if data.get("format") != FORMAT:
            return None
        return LayerMeta(
            files={str(p): base64.b64decode(b) for p, b in data["files"].items()},
            links={str(k): str(v) for k, v in data["links"].items()},
            hardlinks={str(k): str(v) for k, v in data["hardlinks"].items()},
            whiteouts=[str(p) for p in data["whiteouts"]],
            opaque=[str(p) for p in data["opaque"]],
            others=[str(p) for p in data["others"]],
        )
    except (zstandard.ZstdError, ValueError, KeyError, TypeError, AttributeError):
        return None


def layer_meta_store() -> DirectoryMetaStore:
    """The store a build keeps its layers' metadata in (under the torchslim cache)."""
    return DirectoryMetaStore(cache_root() / "sbom-layers")


class DirectoryMetaStore:
    """``LayerMeta`` per layer digest under ``root`` (``<hex>.json.zst``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: str) -> Path:
        algo, hexpart = split_digest(digest)
        return self.root / f"{algo}-{hexpart}.json.zst"

    def get(self, digest: str) -> LayerMeta | None:
        try:
            return meta_from_bytes(self._path(digest).read_bytes())
        except OSError:
            return None

    def put(self, digest: str, meta: LayerMeta) -> None:
        write_atomic(self._path(digest), meta_to_bytes(meta))
