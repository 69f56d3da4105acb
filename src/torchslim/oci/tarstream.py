"""Read one layer blob once: decompress by its first bytes, walk its tar members in order.

Nothing is written to disk. Decompressed bytes are counted against
:class:`Limits` as they are produced, so a bomb stops early with one clear error.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import zstandard

from torchslim.cache import CHUNK
from torchslim.errors import IntegrityError, TorchslimError
from torchslim.oci.blobio import ChunkReader
from torchslim.oci.limits import Budget, LimitExceeded

_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"


class _Counting(ChunkReader):
    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.count = 0

    def chunk(self, n: int) -> bytes:
        data = self.inner.read(n)
        self.count += len(data)
        return data


class _Gunzip(ChunkReader):
    """Multi-member gzip with bounded output per call (``max_length``), so a bomb cannot
    allocate more than one buffer before the budget sees it."""

    def __init__(self, raw: _Counting, what: str) -> None:
        self._raw = raw
        self._what = what
        self._d = zlib.decompressobj(31)
        self._fed = False
        self._pending = b""
        self._done = False

    def chunk(self, want: int) -> bytes:
        while not self._done:
            if self._d.unconsumed_tail:
                data = self._d.unconsumed_tail
            elif self._pending:
                data, self._pending = self._pending, b""
            else:
                data = self._raw.read(CHUNK)
                if not data:
                    if self._fed and not self._d.eof:
                        raise IntegrityError(
                            f"{self._what}: gzip stream ends early; the layer is truncated, "
                            "re-create or re-download the image"
                        )
                    self._done = True
                    break
            self._fed = True
            try:
                out = self._d.decompress(data, want)
            except zlib.error as exc:
                raise IntegrityError(
                    f"{self._what}: gzip data is corrupt ({exc}); "
                    "re-create or re-download the image"
                ) from exc
            if self._d.eof:
                rest = self._d.unused_data
                self._d = zlib.decompressobj(31)
                self._fed = False
                if rest.startswith(_GZIP):
                    self._pending = rest
                elif rest or not self._next_member():
                    self._done = True  # trailing padding after the last member
            if out:
                return out
        return b""

    def _next_member(self) -> bool:
        head = self._raw.read(2)
        if head == _GZIP:
            self._pending = head
            return True
        return False


class _Budgeted(ChunkReader):
    """Charges every decompressed byte to the budget and checks the layer's ratio."""

    def __init__(
        self,
        inner: BinaryIO,
        raw: _Counting,
        budget: Budget,
        what: str,
        digest: hashlib._Hash | None = None,
    ) -> None:
        self._inner = inner
        self._raw = raw
        self._budget = budget
        self._what = what
        self._digest = digest
        self.count = 0

    def chunk(self, want: int) -> bytes:
        data = self._inner.read(want)
        n = len(data)
        if n:
            self.count += n
            if self._digest is not None:
                self._digest.update(data)
            self._budget.add_bytes(n, self._what)
            lim = self._budget.limits
            if self.count > lim.ratio_floor and self.count > lim.max_ratio * max(
                self._raw.count, 1
            ):
                raise LimitExceeded(
                    f"{self._what}: decompresses more than {lim.max_ratio:.0f}:1 "
                    f"({self.count} bytes from {self._raw.count}); refusing a likely "
                    "decompression bomb"
                )
        return data


@dataclass(frozen=True)
class Member:
    """One tar entry as the analysis needs it (name as stored, not yet normalized)."""

    name: str
    kind: str  # file | dir | symlink | hardlink | other
    size: int
    mode: int
    uid: int
    linkname: str
    device: str = ""  # "char" or "block" for a device node (kind "other")


_KINDS: dict[bytes, str] = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
}

# Reads up to N bytes of the current member's content; empty when not a regular file.
Peek = Callable[[int], bytes]


class MemberContent:
    """The bytes of the member being visited, read once: called as a Peek (the first n
    bytes), or streamed whole to a file with ``copy_to`` (never held in memory)."""

    def __init__(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self._tar = tar
        self._member = member

    def __call__(self, n: int) -> bytes:
        if not self._member.isreg():
            return b""
        f = self._tar.extractfile(self._member)
        return f.read(n) if f is not None else b""

    def copy_to(self, out: BinaryIO) -> int:
        if not self._member.isreg():
            return 0
        f = self._tar.extractfile(self._member)
        total = 0
        while f is not None and (chunk := f.read(CHUNK)):
            out.write(chunk)
            total += len(chunk)
        return total


@dataclass
class LayerStats:
    compressed: int = 0
    uncompressed: int = 0
    entries: int = 0
    # Set ``hash_uncompressed`` to get ``diff_id``: the digest of the tar as decompressed.
    hash_uncompressed: bool = False
    diff_id: str = ""


def _decompressor(raw: _Counting, what: str) -> BinaryIO:
    buffered = io.BufferedReader(raw, buffer_size=CHUNK)
    head = buffered.peek(4)[:4]
    if head.startswith(_GZIP):
        return io.BufferedReader(_Gunzip(_Counting(buffered), what), buffer_size=CHUNK)
    if head.startswith(_ZSTD):
        reader = zstandard.ZstdDecompressor().stream_reader(
            buffered, read_size=CHUNK, read_across_frames=True, closefd=False
        )
        return reader
    return buffered


def walk_layer(
    blob: BinaryIO,
    budget: Budget,
    what: str,
    visit: Callable[[Member, Peek], None],
    stats: LayerStats,
) -> None:
    """Call ``visit`` for each tar member of the compressed ``blob``, then drain it.

    Every failure (corrupt compression, a truncated or malformed tar, a limit)
    becomes a TorchslimError naming the layer.
    """
    raw = _Counting(blob)
    try:
        plain = _decompressor(raw, what)
        digest = hashlib.sha256() if stats.hash_uncompressed else None
        counted = _Budgeted(plain, raw, budget, what, digest)
        stream = io.BufferedReader(counted, buffer_size=CHUNK)
        tar = tarfile.open(  # noqa: SIM115 - a stream, closed with its source
            fileobj=stream, mode="r|", bufsize=CHUNK, errors="surrogateescape"
        )
        end = 0
        while True:
            m = tar.next()
            if m is None:
                break
            tar.members.clear()  # type: ignore[attr-defined]  # stream mode keeps every TarInfo
            budget.add_entry(what)
            stats.entries += 1
            kind = _KINDS.get(m.type, "other")
            size = m.size if kind == "file" else 0
            budget.check_claim(size, f"{what}: member {m.name!r}")
            end = m.offset_data + ((size + 511) // 512) * 512
            device = "char" if m.ischr() else "block" if m.isblk() else ""
            member = Member(m.name, kind, size, m.mode, m.uid, m.linkname, device)
            visit(member, MemberContent(tar, m))
        while stream.read(CHUNK):
            pass  # the rest (end-of-archive padding): counts, and lets the digest check finish
        stats.compressed = raw.count
        stats.uncompressed = counted.count
        if digest is not None:
            stats.diff_id = "sha256:" + digest.hexdigest()
        if counted.count < end:
            raise IntegrityError(
                f"{what}: tar ends after {counted.count} bytes inside a member that needs "
                f"{end}; the layer is truncated, re-create or re-download the image"
            )
    except TorchslimError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, zstandard.ZstdError) as exc:
        raise IntegrityError(
            f"{what}: not a readable layer tar ({exc}); the image is corrupt or truncated"
        ) from exc
    except (OSError, ValueError, OverflowError, UnicodeError) as exc:
        raise IntegrityError(
            f"{what}: could not read the layer ({exc}); the image is corrupt"
        ) from exc
