"""Streams that check a blob's digest as it is read, and byte ranges of a tar file.

Sources hand these out from ``open_layer`` so a corrupted blob fails with
IntegrityError at the moment its last byte is read, before a sink renames
its output into place.
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import BinaryIO

from torchslim.cache import CHUNK, split_digest
from torchslim.errors import IntegrityError


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_bytes(data: bytes, digest: str, what: str) -> bytes:
    """Return ``data`` if it hashes to ``digest``, else raise IntegrityError naming ``what``."""
    split_digest(digest)
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


class _VerifyingRaw(ChunkReader):
    """Hash bytes as they pass; fail on wrong digest, short or long content."""

    def __init__(self, inner: BinaryIO, digest: str, size: int | None, what: str) -> None:
        split_digest(digest)
        self._inner = inner
        self._digest = digest
        self._size = size
        self._what = what
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
            raise IntegrityError(
                f"{self._what}: blob is longer than the {self._size} bytes its descriptor "
                "says; the image is corrupt"
            )
        if self._size is not None and self._seen == self._size:
            self._check(eof=False)
        return data

    def _check(self, *, eof: bool) -> None:
        if self._checked:
            return
        if self._size is not None and self._seen != self._size:
            raise IntegrityError(
                f"{self._what}: blob ends after {self._seen} of {self._size} bytes; "
                "the image is truncated, re-create or re-download it"
            )
        got = "sha256:" + self._h.hexdigest()
        if got != self._digest:
            raise IntegrityError(
                f"{self._what}: content is {got}, expected {self._digest}; the blob is "
                "corrupt, re-create or re-download the image"
            )
        self._checked = True

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


def verified(inner: BinaryIO, digest: str, size: int | None, what: str) -> BinaryIO:
    """Wrap ``inner`` so reading it to the end proves it matches ``digest`` (and ``size``)."""
    return io.BufferedReader(_VerifyingRaw(inner, digest, size, what), buffer_size=CHUNK)


class _SliceRaw(ChunkReader):
    """``size`` bytes of a file from ``offset``: one member of an uncompressed tar."""

    def __init__(self, path: os.PathLike[str] | str, offset: int, size: int) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._f.seek(offset)
        self._left = size

    def chunk(self, n: int) -> bytes:
        if self._left <= 0:
            return b""
        data = self._f.read(min(n, self._left))
        self._left -= len(data)
        return data

    def close(self) -> None:
        try:
            self._f.close()
        finally:
            super().close()


def open_slice(path: os.PathLike[str] | str, offset: int, size: int) -> BinaryIO:
    return io.BufferedReader(_SliceRaw(path, offset, size), buffer_size=CHUNK)


def copy_stream(src: BinaryIO, dst: BinaryIO) -> int:
    """Copy to EOF in big chunks; return the byte count."""
    total = 0
    while chunk := src.read(CHUNK):
        dst.write(chunk)
        total += len(chunk)
    return total
