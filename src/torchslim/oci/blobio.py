"""Streams that check a blob's digest as it is read, and byte ranges of a tar file.

Sources hand these out from ``open_layer`` so a corrupted blob fails with
IntegrityError at the moment its last byte is read, before a sink renames
its output into place.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

from torchslim.digests import (
    CHUNK,
    ChunkReader,
    check_bytes,
    sha256_bytes,
    verified,
)
from torchslim.errors import IntegrityError


def read_capped(f: BinaryIO, cap: int, what: str) -> bytes:
    """All of ``f`` when it holds at most ``cap`` bytes (at most ``cap + 1`` are read)."""
    data = f.read(cap + 1)
    if len(data) > cap:
        raise IntegrityError(
            f"{what} is larger than {cap >> 20} MiB; no real manifest or config is that "
            "big, the image is corrupt or hostile"
        )
    return data


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


__all__ = [
    "ChunkReader",
    "check_bytes",
    "copy_stream",
    "open_slice",
    "read_capped",
    "sha256_bytes",
    "verified",
]


def copy_stream(src: BinaryIO, dst: BinaryIO) -> int:
    """Copy to EOF in big chunks; return the byte count."""
    total = 0
    while chunk := src.read(CHUNK):
        dst.write(chunk)
        total += len(chunk)
    return total
