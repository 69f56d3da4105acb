"""Content-addressed cache shared by every building block.

Blobs live at ``<root>/blobs/sha256/<hex>``. A blob is written to a temporary
file in the same directory, hashed while it streams, and renamed into place
only when its digest is the expected one, so the cache never holds bad bytes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from torchslim.errors import IntegrityError

CHUNK = 1 << 20


def cache_root() -> Path:
    """``$TORCHSLIM_CACHE``, else ``$XDG_CACHE_HOME/torchslim``, else ``~/.cache/torchslim``."""
    explicit = os.environ.get("TORCHSLIM_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "torchslim"


def sha256_file(path: Path) -> str:
    """Return ``sha256:<hex>`` of a file."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def split_digest(digest: str) -> tuple[str, str]:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64:
        raise IntegrityError(f"unsupported digest {digest!r}: only sha256:<64 hex> is accepted")
    return algo, hexpart


class BlobWriter:
    """A file being written into the store; hashed as bytes arrive."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self._f = fileobj
        self._h = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._f.write(data)
        self._h.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self._f.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self._h.hexdigest()


class BlobStore:
    """Blobs by digest under one directory."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or cache_root()) / "blobs" / "sha256"

    def path(self, digest: str) -> Path:
        _, hexpart = split_digest(digest)
        return self.root / hexpart

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    @contextmanager
    def writer(self, expected: str | None = None) -> Iterator[BlobWriter]:
        """Stream bytes in; on success the blob is stored under its digest.

        The digest is available as ``writer.digest`` after the block. With
        ``expected`` set, a mismatch raises IntegrityError and keeps nothing.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                w = BlobWriter(f)
                yield w
            if expected is not None and w.digest != expected:
                raise IntegrityError(
                    f"digest mismatch: expected {expected}, got {w.digest}; the download was "
                    "discarded, check the source or the hash you pinned"
                )
            os.replace(tmp, self.path(w.digest))
        finally:
            tmp.unlink(missing_ok=True)

    def put_stream(self, chunks: Iterable[bytes], expected: str | None = None) -> str:
        with self.writer(expected) as w:
            for chunk in chunks:
                w.write(chunk)
        return w.digest

    def put_file(self, src: Path, expected: str | None = None) -> str:
        """Copy a local file in (verifying ``expected`` if given)."""

        def chunks() -> Iterator[bytes]:
            with src.open("rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk

        if expected is not None and self.has(expected):
            return expected
        return self.put_stream(chunks(), expected)

    def put_bytes(self, data: bytes) -> str:
        return self.put_stream([data])

    def read_bytes(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def open(self, digest: str) -> BinaryIO:
        return self.path(digest).open("rb")
