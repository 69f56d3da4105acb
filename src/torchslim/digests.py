"""Digests: the one validator of ``sha256:<hex>``, and streams that check one as they are read.

A digest from a manifest, an index, a lock or a cache entry becomes a file name
(``blobs/sha256/<hex>``), so it is validated before any path is made of it: a
known algorithm and exactly its number of lowercase hex digits, nothing else.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from typing import BinaryIO

from torchslim.errors import IntegrityError

CHUNK = 1 << 20

# algorithm → hex digits; only sha256 is hashed and stored.
ALGORITHMS = {"sha256": 64}
_DIGEST = re.compile(r"^(sha256):([0-9a-f]{64})$")


def split_digest(digest: str, what: str = "") -> tuple[str, str]:
    """``sha256:<64 lowercase hex>`` → (``sha256``, hex); IntegrityError for anything else."""
    m = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if m is None:
        shown = repr(digest)[:90]
        where = f"{what}: " if what else ""
        raise IntegrityError(
            f"{where}invalid digest {shown}: only sha256:<64 lowercase hex> is accepted; "
            "the metadata that names it is corrupt or hostile"
        )
    return m.group(1), m.group(2)


def is_digest(digest: object) -> bool:
    return isinstance(digest, str) and _DIGEST.fullmatch(digest) is not None


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_bytes(data: bytes, digest: str, what: str) -> bytes:
    """Return ``data`` if it hashes to ``digest``, else raise IntegrityError naming ``what``."""
    split_digest(digest, what)
    got = sha256_bytes(data)
    if got != digest:
        raise IntegrityError(
            f"{what}: content is {got}, expected {digest}; the blob is corrupt, "
            "re-create or re-download the image"
        )
    return data


class ChunkReader(io.RawIOBase):
    """A raw stream whose subclasses say what one read yields (``chunk``); the one adapter
    from "give me up to n bytes" to what ``io.BufferedReader`` and ``tarfile`` expect."""

    def readable(self) -> bool:
        return True

    def chunk(self, n: int) -> bytes:
        raise NotImplementedError

    def readinto(self, buf: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.chunk(len(buf))
        n = len(data)
        buf[:n] = data
        return n


class VerifyingRaw(ChunkReader):
    """Hash bytes as they pass; fail on wrong digest, short or long content.

    ``on_mismatch`` runs before the error is raised (the cache evicts the blob there).
    """

    def __init__(
        self,
        inner: BinaryIO,
        digest: str,
        size: int | None,
        what: str,
        on_mismatch: Callable[[], None] | None = None,
    ) -> None:
        split_digest(digest, what)
        self._inner = inner
        self._digest = digest
        self._size = size
        self._what = what
        self._on_mismatch = on_mismatch
        self._h = hashlib.sha256()
        self._seen = 0
        self._checked = False

    def chunk(self, n: int) -> bytes:
        data = self._inner.read(n)
        n = len(data)
        if n == 0:
            self._check(eof=True)
            return b""
        self._h.update(data)
        self._seen += n
        if self._size is not None and self._seen > self._size:
            self._fail(
                f"{self._what}: blob is longer than the {self._size} bytes its descriptor "
                "says; the image is corrupt"
            )
        if self._size is not None and self._seen == self._size:
            self._check(eof=False)
        return data

    def _fail(self, message: str) -> None:
        if self._on_mismatch is not None:
            self._on_mismatch()
        raise IntegrityError(message)

    def _check(self, *, eof: bool) -> None:
        if self._checked:
            return
        if self._size is not None and self._seen != self._size:
            self._fail(
                f"{self._what}: blob ends after {self._seen} of {self._size} bytes; "
                "the image is truncated, re-create or re-download it"
            )
        got = "sha256:" + self._h.hexdigest()
        if got != self._digest:
            self._fail(
                f"{self._what}: content is {got}, expected {self._digest}; the blob is "
                "corrupt, re-create or re-download the image"
            )
        self._checked = True

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


def verified(
    inner: BinaryIO,
    digest: str,
    size: int | None,
    what: str,
    on_mismatch: Callable[[], None] | None = None,
) -> BinaryIO:
    """Wrap ``inner`` so reading it to the end proves it matches ``digest`` (and ``size``)."""
    raw = VerifyingRaw(inner, digest, size, what, on_mismatch)
    return io.BufferedReader(raw, buffer_size=CHUNK)


def sha256_stream(f: BinaryIO) -> str:
    h = hashlib.sha256()
    while chunk := f.read(CHUNK):
        h.update(chunk)
    return "sha256:" + h.hexdigest()


__all__ = [
    "ALGORITHMS",
    "CHUNK",
    "ChunkReader",
    "VerifyingRaw",
    "check_bytes",
    "is_digest",
    "sha256_bytes",
    "sha256_stream",
    "split_digest",
    "verified",
]
