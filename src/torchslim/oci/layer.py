"""Layers: descriptors, and a deterministic tar writer that streams a directory into a blob.

The same tree always gives the same bytes: entries in bytewise path order,
parents first, one fixed mtime, numeric owners chosen by the caller, empty
user/group names, and a compressor whose output depends only on its input.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import posixpath
import stat
import struct
import tarfile
import zlib
from collections import deque
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import zstandard

from torchslim.cache import CHUNK, BlobStore
from torchslim.config import Compression
from torchslim.digests import split_digest
from torchslim.errors import BuildError, ConfigError, IntegrityError
from torchslim.oci.chunked import ChunkedSink
from torchslim.oci.estargz import (
    LANDMARK_CONTENTS,
    NO_PREFETCH_LANDMARK,
    PREFETCH_LANDMARK,
    EStargzSink,
)
from torchslim.oci.media import COMPRESSION_MEDIA_TYPE

log = logging.getLogger(__name__)

OwnerFn = Callable[[str], tuple[int, int]]

GZIP_LEVEL = 6
ZSTD_LEVEL = 3
# Per format: (lowest, highest, default) level. zstd stops at 19: levels 20-22 ("ultra")
# need windows of up to 128 MiB, more than some runtimes' decoders accept by default.
LEVELS: dict[Compression, tuple[int, int, int]] = {
    "gzip": (1, 9, GZIP_LEVEL),
    "estargz": (1, 9, GZIP_LEVEL),
    "zstd": (1, 19, ZSTD_LEVEL),
    "zstd:chunked": (1, 19, ZSTD_LEVEL),
}


def compression_level(compression: Compression, level: int | None) -> int:
    """``level`` checked for ``compression``, or the format's default when None."""
    bounds = LEVELS.get(compression)
    if bounds is None:
        if level is None:
            return 0
        raise ConfigError(f"{compression} has no compression level; leave the level out")
    low, high, default = bounds
    if level is None:
        return default
    if not low <= level <= high:
        raise ConfigError(
            f"level {level} is out of range for {compression}; use {low} to {high} "
            f"(default {default})"
        )
    return level


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest says about one blob."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = field(default=None, hash=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "descriptor") -> Descriptor:
        """A descriptor from JSON, every field checked: the digest becomes a file name."""

        def bad(why: str) -> IntegrityError:
            return IntegrityError(
                f"{where}: malformed descriptor ({why}); the image metadata is corrupt "
                "or hostile, re-create it"
            )

        if not isinstance(data, Mapping):
            raise bad(f"a {type(data).__name__}, not an object")
        media_type, digest, size = data.get("mediaType"), data.get("digest"), data.get("size")
        ann = data.get("annotations")
        if not isinstance(media_type, str):
            raise bad("mediaType is missing or not a string")
        if not isinstance(digest, str):
            raise bad("digest is missing or not a string")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise bad("size is missing or not a non-negative integer")
        if ann is not None and not (
            isinstance(ann, Mapping) and all(isinstance(v, str) for v in ann.values())
        ):
            raise bad("annotations is not an object of strings")
        split_digest(digest, where)
        return cls(media_type, digest, size, dict(ann) if ann else None)


@dataclass(frozen=True)
class Layer:
    """One filesystem layer: its stored (maybe compressed) blob and its uncompressed identity."""

    descriptor: Descriptor
    diff_id: str
    # -1: unknown (a base layer read from a registry or layout); not part of identity.
    uncompressed_size: int = field(default=-1, compare=False)

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    def to_dict(self) -> dict[str, Any]:
        return {
            "descriptor": self.descriptor.to_json(),
            "diffID": self.diff_id,
            "uncompressedSize": self.uncompressed_size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Layer:
        """A layer as ``to_dict`` wrote it; IntegrityError for anything else."""
        if not isinstance(data, Mapping):
            raise IntegrityError("cached layer: not an object; the layer cache entry is corrupt")
        diff_id, size, desc = (
            data.get("diffID"),
            data.get("uncompressedSize", -1),
            data.get("descriptor"),
        )
        if not isinstance(diff_id, str) or not isinstance(desc, Mapping):
            raise IntegrityError("cached layer: diffID or descriptor missing; the entry is corrupt")
        split_digest(diff_id, "cached layer diffID")
        if not isinstance(size, int) or isinstance(size, bool):
            raise IntegrityError("cached layer: uncompressedSize is not an integer")
        return cls(Descriptor.from_json(desc, "cached layer"), diff_id, size)


@dataclass(frozen=True)
class Ownership:
    """Owner for layer entries: ``uid:gid`` by default, overridden per path subtree.

    ``overrides`` maps an archive path (no leading or trailing "/") to an owner
    for that path and everything under it; the longest matching path wins.
    An instance is a valid ``owner`` callable for :func:`write_layer_from_dir`.
    """

    uid: int = 0
    gid: int = 0
    overrides: Mapping[str, tuple[int, int]] = field(default_factory=dict, hash=False)

    def __call__(self, path: str) -> tuple[int, int]:
        best: tuple[int, int] | None = None
        best_len = -1
        for key, owner in self.overrides.items():
            k = key.strip("/")
            if (path == k or path.startswith(k + "/") or k == "") and len(k) > best_len:
                best, best_len = owner, len(k)
        return best if best is not None else (self.uid, self.gid)


class _Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class _Gzip:
    """gzip with a fixed header (mtime 0, no name, OS 255) so output depends on input only.

    Compressed in 1 MiB blocks on threads, as pigz does: each block is primed with the
    32 KiB before it and ends with a sync flush, so the blocks join into one deflate stream
    and the bytes do not depend on the number of threads (zlib lets go of the GIL while it
    compresses). Input of one block or less comes out as a single plain deflate stream.
    """

    BLOCK = 1 << 20
    WINDOW = 1 << 15

    def __init__(self, level: int = GZIP_LEVEL) -> None:
        self._level = level
        self._crc = 0
        self._size = 0
        self._buf = bytearray()
        self._prime = b""
        self._pending: deque[Future[bytes]] = deque()
        self._header: bytes | None = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

    def compress(self, data: bytes) -> bytes:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._buf += data
        while len(self._buf) > self.BLOCK:  # the last block is kept for flush()'s Z_FINISH
            block = bytes(self._buf[: self.BLOCK])
            del self._buf[: self.BLOCK]
            self._submit(block, finish=False)
        return self._take(wait=len(self._pending) > 2 * _THREADS)

    def flush(self) -> bytes:
        self._submit(bytes(self._buf), finish=True)
        self._buf = bytearray()
        out = self._take(wait=True, every=True)
        return out + struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF)

    def _submit(self, block: bytes, *, finish: bool) -> None:
        self._pending.append(_pool().submit(_deflate, block, self._prime, self._level, finish))
        self._prime = (self._prime + block)[-self.WINDOW :]

    def _take(self, *, wait: bool, every: bool = False) -> bytes:
        """The finished blocks at the head, in order (at least one when ``wait``)."""
        parts = [self._header or b""]
        self._header = None
        while self._pending and (self._pending[0].done() or wait):
            parts.append(self._pending.popleft().result())
            wait = every
        return b"".join(parts)


_THREADS = max(1, min(8, os.cpu_count() or 1))
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="gzip")
    return _POOL


def _deflate(block: bytes, prime: bytes, level: int, finish: bool) -> bytes:
    """One block as raw deflate, its back-references reaching into ``prime``."""
    if prime:
        z = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, zdict=prime)
    else:
        z = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return z.compress(block) + z.flush(zlib.Z_FINISH if finish else zlib.Z_SYNC_FLUSH)


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def _compressor(compression: Compression, level: int) -> _Compressor:
    if compression == "gzip":
        return _Gzip(level)
    if compression == "zstd":
        # No content size in the frame header; zstd's multi-threaded mode gives the same
        # bytes for any number of worker threads (>= 1): a pure function of the input.
        cctx = zstandard.ZstdCompressor(
            level=level, write_content_size=False, write_checksum=True, threads=_THREADS
        )
        return cctx.compressobj()
    if compression == "none":
        return _Identity()
    raise BuildError(
        f"unknown layer compression {compression!r}; use gzip, zstd, zstd:chunked, estargz or none"
    )


class _PlainSink:
    """Every tar byte through one compressor (gzip, zstd or none)."""

    def __init__(self, out: Callable[[bytes], object], compressor: _Compressor) -> None:
        self._out = out
        self._c = compressor

    def _write(self, data: bytes) -> None:
        if out := self._c.compress(data):
            self._out(out)

    def header(self, ti: tarfile.TarInfo, raw: bytes) -> None:
        self._write(raw)

    def begin_contents(self) -> None:
        pass

    def contents(self, data: bytes) -> None:
        self._write(data)

    def end_contents(self) -> None:
        pass

    def meta(self, raw: bytes) -> None:
        self._write(raw)

    def last_members(self) -> list[tuple[tarfile.TarInfo, bytes]]:
        return []

    def finish(self) -> dict[str, str]:
        if out := self._c.flush():
            self._out(out)
        return {}


class _Sink(Protocol):
    def header(self, ti: tarfile.TarInfo, raw: bytes) -> None: ...
    def begin_contents(self) -> None: ...
    def contents(self, data: bytes) -> None: ...
    def end_contents(self) -> None: ...
    def meta(self, raw: bytes) -> None: ...
    def last_members(self) -> list[tuple[tarfile.TarInfo, bytes]]: ...
    def finish(self) -> dict[str, str]: ...


class _TarWriter:
    """Writes a PAX tar byte for byte as ``tarfile`` would, telling the sink which bytes
    are a member's header, its contents and padding (zstd:chunked frames each file's
    contents on its own); hashes the tar for the diff id."""

    def __init__(self, sink: _Sink) -> None:
        self._sink = sink
        self._h = hashlib.sha256()
        self.size = 0

    def _count(self, data: bytes) -> None:
        self._h.update(data)
        self.size += len(data)

    def add(self, ti: tarfile.TarInfo, f: _ProgressReader | None = None) -> None:
        raw = ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        self._count(raw)
        self._sink.header(ti, raw)
        if not ti.isreg() or ti.size == 0:
            return
        if f is None:
            raise OSError(f"no contents for {ti.name}")
        self._sink.begin_contents()
        left = ti.size
        while left:
            data = f.read(min(CHUNK, left))
            if not data:
                raise OSError(f"unexpected end of data in {ti.name}: the file shrank")
            left -= len(data)
            self._count(data)
            self._sink.contents(data)
        self._sink.end_contents()
        if pad := -ti.size % tarfile.BLOCKSIZE:
            self._meta(tarfile.NUL * pad)

    def _meta(self, raw: bytes) -> None:
        self._count(raw)
        self._sink.meta(raw)

    def close(self) -> dict[str, str]:
        """The end-of-archive blocks and record padding, as tarfile writes them; the
        sink's annotations."""
        for ti, data in self._sink.last_members():  # eStargz's TOC is the last member
            self.add(ti, _ProgressReader(io.BytesIO(data), None))
        self._meta(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
        if rest := self.size % tarfile.RECORDSIZE:
            self._meta(tarfile.NUL * (tarfile.RECORDSIZE - rest))
        return self._sink.finish()

    @property
    def diff_id(self) -> str:
        return "sha256:" + self._h.hexdigest()


class _ProgressReader:
    def __init__(self, f: BinaryIO, progress: Callable[[int], None] | None) -> None:
        self._f = f
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        if data and self._progress is not None:
            self._progress(len(data))
        return data


def scan_tree(root: Path) -> list[tuple[str, os.stat_result]]:
    """Every path under ``root`` (relative, "/"-separated) with its lstat; links not followed."""
    found: list[tuple[str, os.stat_result]] = []

    def walk(dirpath: str, rel: str) -> None:
        with os.scandir(dirpath) as it:
            entries = list(it)
        for entry in entries:
            r = f"{rel}{entry.name}"
            st = entry.stat(follow_symlinks=False)
            found.append((r, st))
            if stat.S_ISDIR(st.st_mode):
                walk(entry.path, r + "/")

    walk(str(root), "")
    found.sort(key=lambda item: os.fsencode(item[0]))
    return found


def prefetch_first(
    entries: list[tuple[str, os.stat_result]], prefix: str, prefetch: Collection[str]
) -> tuple[list[tuple[str, os.stat_result]], int]:
    """``entries`` (path order) with those ``prefetch`` names (image paths) and the folders
    above them first, each part still in path order; how many come first. The order within
    the prefetched part does not change what a runtime fetches (all of it, in one range
    request), and path order keeps the layer a function of the set."""
    wanted: set[str] = set()
    for path in prefetch:
        name = path.lstrip("/")
        if not name.startswith(prefix) or name == prefix:
            continue
        rel = name[len(prefix) :]
        while rel and rel not in wanted:
            wanted.add(rel)
            rel = posixpath.dirname(rel)
    first = [e for e in entries if e[0] in wanted]
    if not first or not any(stat.S_ISREG(st.st_mode) for _, st in first):
        return entries, 0
    return first + [e for e in entries if e[0] not in wanted], len(first)


def _normalize_prefix(prefix: str) -> str:
    p = prefix.strip("/")
    return p + "/" if p else ""


def write_layer_from_dir(
    root: Path,
    store: BlobStore,
    *,
    compression: Compression = "gzip",
    level: int | None = None,
    mtime: int = 0,
    owner: OwnerFn | None = None,
    prefix: str = "",
    progress: Callable[[int], None] | None = None,
    on_skip: Callable[[str, str], None] | None = None,
    prefetch: Collection[str] = (),
) -> Layer:
    """Stream ``root`` as a deterministic PAX tar through a compressor into ``store``.

    Entry paths are ``prefix + relpath``; when ``prefix`` is set its directories
    are emitted too (``root`` itself becomes the last of them, keeping its mode).
    ``owner(path)`` gets the archive path without a trailing "/" and returns
    ``(uid, gid)``; default 0:0. ``progress(n)`` is called with the number of
    file-content bytes just read. Devices, sockets and FIFOs are skipped
    (``on_skip(path, reason)`` and a log warning say so). ``prefetch`` (eStargz only):
    image paths a runtime should fetch before the container starts; those in this layer
    (and the folders above them) come first, then ``.prefetch.landmark``. ``level``: the
    compressor's level (:data:`LEVELS`), the format's default when None.
    """
    root = Path(root)
    if not root.is_dir():
        raise BuildError(f"layer source {root} is not a directory; check the build tree")
    own: OwnerFn = owner or (lambda _p: (0, 0))
    pre = _normalize_prefix(prefix)
    try:
        entries = scan_tree(root)
    except OSError as exc:
        raise BuildError(f"could not read the layer tree {root}: {exc}") from exc
    media_type = COMPRESSION_MEDIA_TYPE.get(compression)
    if media_type is None:
        raise BuildError(
            f"unknown layer compression {compression!r}; use gzip, zstd, zstd:chunked, "
            "estargz or none"
        )
    level = compression_level(compression, level)

    def info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = mode
        ti.mtime = mtime
        ti.uid, ti.gid = own(name.rstrip("/"))
        ti.uname = ti.gname = ""
        ti.size = 0
        return ti

    with store.writer() as blob:
        sink: _Sink
        if compression == "zstd:chunked":
            sink = ChunkedSink(blob.write, _pool, level=level, threads=_THREADS)
        elif compression == "estargz":
            sink = EStargzSink(blob.write, _pool, level=level, threads=_THREADS)
        else:
            sink = _PlainSink(blob.write, _compressor(compression, level))
        tar = _TarWriter(sink)
        landmark: tuple[str, int] | None = None  # eStargz: its name, and where it goes
        if compression == "estargz":
            entries, first = prefetch_first(entries, pre, prefetch)
            landmark = (PREFETCH_LANDMARK, first) if first else (NO_PREFETCH_LANDMARK, -1)

        def add_landmark(name: str) -> None:
            ti = info(name, tarfile.REGTYPE, 0o644)
            ti.uid = ti.gid = 0
            ti.size = len(LANDMARK_CONTENTS)
            tar.add(ti, _ProgressReader(io.BytesIO(LANDMARK_CONTENTS), None))

        try:
            if landmark is not None and landmark[1] < 0:  # nothing to prefetch: said first
                add_landmark(landmark[0])
            if compression in ("zstd:chunked", "estargz"):
                # A partial pull (of either format) lays each layer out in a fresh 0700
                # directory and sets the root's mode only from an entry for it: without one
                # a non-root user cannot enter "/" (containers/storage 1.43, podman 4.3).
                root_entry = info(".", tarfile.DIRTYPE, 0o755)
                root_entry.uid = root_entry.gid = 0
                tar.add(root_entry)
            if pre:
                parts = pre.rstrip("/").split("/")
                for i in range(1, len(parts)):
                    tar.add(info("/".join(parts[:i]), tarfile.DIRTYPE, 0o755))
                root_mode = stat.S_IMODE(root.stat().st_mode)
                tar.add(info(pre.rstrip("/"), tarfile.DIRTYPE, root_mode))
            seen_inodes: dict[tuple[int, int], str] = {}
            for index, (rel, st) in enumerate(entries):
                if landmark is not None and index == landmark[1]:
                    add_landmark(landmark[0])
                name = pre + rel
                full = root / rel
                mode = stat.S_IMODE(st.st_mode)
                if stat.S_ISDIR(st.st_mode):
                    tar.add(info(name, tarfile.DIRTYPE, mode))
                elif stat.S_ISLNK(st.st_mode):
                    ti = info(name, tarfile.SYMTYPE, mode)
                    ti.linkname = os.readlink(full)
                    tar.add(ti)
                elif stat.S_ISREG(st.st_mode):
                    key = (st.st_dev, st.st_ino)
                    if st.st_nlink > 1 and key in seen_inodes:
                        ti = info(name, tarfile.LNKTYPE, mode)
                        ti.linkname = seen_inodes[key]
                        tar.add(ti)
                        continue
                    if st.st_nlink > 1:
                        seen_inodes[key] = name
                    ti = info(name, tarfile.REGTYPE, mode)
                    ti.size = st.st_size
                    with full.open("rb") as f:
                        tar.add(ti, _ProgressReader(f, progress))
                else:
                    reason = "device, socket or FIFO: not allowed in an image layer"
                    log.warning("skipping %s: %s", full, reason)
                    if on_skip is not None:
                        on_skip(name, reason)
            if landmark is not None and landmark[1] == len(entries):
                add_landmark(landmark[0])
            annotations = tar.close()
        except OSError as exc:
            raise BuildError(
                f"could not pack {root} into a layer: {exc}; was the tree changed during the build?"
            ) from exc
    descriptor = Descriptor(media_type, blob.digest, blob.size, annotations or None)
    return Layer(descriptor=descriptor, diff_id=tar.diff_id, uncompressed_size=tar.size)
