"""Content-addressed cache shared by every building block.

Blobs live at ``<root>/blobs/sha256/<hex>``. A blob is written to a temporary
file in the same directory, hashed while it streams, and renamed into place
only when its digest is the expected one. The cache is not trusted by file name
when it is read either: ``verify`` hashes a blob before a caller relies on it,
and ``open``/``read_bytes`` check the digest as the bytes pass. A blob that does
not match is evicted with a warning, so the caller fetches or rebuilds it and
the next build after a corrupted cache succeeds by itself.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from torchslim.digests import CHUNK, sha256_stream, split_digest, verified
from torchslim.errors import IntegrityError

log = logging.getLogger(__name__)

__all__ = ["CHUNK", "BlobStore", "BlobWriter", "cache_root", "sha256_file", "split_digest"]

Warn = Callable[[str], None]


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
    with path.open("rb") as f:
        return sha256_stream(f)


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
    """Blobs by digest under one directory; every read is checked against the digest.

    ``warn`` receives one line when a corrupt blob is evicted (a build passes its
    ``steps.warn``); by default it goes to the ``torchslim.cache`` logger.
    """

    def __init__(self, root: Path | None = None, *, warn: Warn | None = None) -> None:
        self.root = (root or cache_root()) / "blobs" / "sha256"
        self.warn: Warn = warn or log.warning
        # digest → (inode, size, mtime) when this process last hashed it: not hashed twice.
        self._verified: dict[str, tuple[int, int, int]] = {}

    def path(self, digest: str) -> Path:
        _, hexpart = split_digest(digest)
        return self.root / hexpart

    def has(self, digest: str) -> bool:
        """Whether a blob of that name is present (not whether its bytes are right: ``verify``)."""
        return self.path(digest).is_file()

    def verify(self, digest: str) -> bool:
        """True when the blob is present and hashes to ``digest``.

        A blob whose bytes do not match (corrupted, or replaced by another file) is
        evicted with a warning and False is returned: the caller fetches or rebuilds it.
        """
        path = self.path(digest)
        try:
            st = path.stat()
        except OSError:
            return False
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._verified.get(digest) == stamp:
            return True
        try:
            got = sha256_file(path)
        except OSError:
            got = "unreadable"
        if got == digest:
            self._verified[digest] = stamp
            return True
        self.evict(digest, f"its content is {got}")
        return False

    def evict(self, digest: str, why: str) -> None:
        """Remove a blob that is not what its name says, and say so."""
        self.path(digest).unlink(missing_ok=True)
        self._verified.pop(digest, None)
        self.warn(
            f"cached blob {digest} was corrupt ({why}); it was removed from the cache "
            "and is fetched or rebuilt again"
        )

    @contextmanager
    def writer(self, expected: str | None = None) -> Iterator[BlobWriter]:
        """Stream bytes in; on success the blob is stored under its digest.

        The digest is available as ``writer.digest`` after the block. With
        ``expected`` set, a mismatch raises IntegrityError and keeps nothing.
        """
        if expected is not None:
            split_digest(expected)
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
            st = self.path(w.digest).stat()
            self._verified[w.digest] = (st.st_ino, st.st_size, st.st_mtime_ns)
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

        if expected is not None and self.verify(expected):
            return expected
        return self.put_stream(chunks(), expected)

    def put_bytes(self, data: bytes) -> str:
        return self.put_stream([data])

    def _corrupt(self, digest: str) -> IntegrityError:
        return IntegrityError(
            f"cached blob {digest} was corrupt and has been removed from the cache "
            f"({self.root}); run the command again to fetch or rebuild it"
        )

    def read_bytes(self, digest: str) -> bytes:
        """The blob's bytes, checked; a corrupt blob is evicted and IntegrityError raised."""
        data = self.path(digest).read_bytes()
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            self.evict(digest, "its content does not match its name")
            raise self._corrupt(digest)
        return data

    def open(self, digest: str) -> BinaryIO:
        """A stream of the blob that checks its digest when read to the end; on a
        mismatch the blob is evicted and IntegrityError raised."""
        path = self.path(digest)

        def evict() -> None:
            self.evict(digest, "its content does not match its name")
            raise self._corrupt(digest)

        return verified(path.open("rb"), digest, None, f"cached blob {digest}", evict)
