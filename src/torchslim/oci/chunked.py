"""zstd:chunked layers: a zstd tar whose file contents can be fetched one by one.

The format is containers/storage's (``pkg/chunked``); podman and CRI-O with partial pulls
on fetch only the files their store lacks, with HTTP range requests. Any other zstd
reader (containerd >= 1.6, Docker >= 23, ``zstd -d``) sees a plain zstd tar: the extra
data sits in zstd *skippable* frames, which decoders pass over. The blob is:

- the tar, cut into zstd frames so that every regular file's contents is one frame of
  its own (tar headers and padding go in the frames between);
- a skippable frame with the table of contents (TOC): JSON, zstd-compressed, one entry
  per tar member with its metadata, the sha256 of its contents and the offsets of its
  frame;
- a skippable frame with the tar-split data (JSON lines, zstd-compressed), from which a
  reader rebuilds the exact tar, and so the layer's diff id, from the files alone;
- a skippable frame with the 64-byte footer: both positions and a magic number.

The layer descriptor carries the positions and the TOC's digest as annotations: readers
trust the TOC only through that digest. Both key families are written: containers/storage
up to 1.44 (Debian 12's podman 4.3) reads ``io.containers.*``, later ones
``io.github.containers.*`` and the tar-split position.

Frames are compressed on threads (each is independent), big files with zstd's own
workers; the bytes depend only on the input, as for the other compressions. Unlike
containers/storage we do not cut big files further into rolling-checksum chunks: a
file is fetched whole or not at all (its digest is what a store matches).
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import fastcrc
import zstandard

from torchslim.oci.ordered import OrderedBlocks

TOC_CHECKSUM = "io.github.containers.zstd-chunked.manifest-checksum"
TOC_POSITION = "io.github.containers.zstd-chunked.manifest-position"
TARSPLIT_POSITION = "io.github.containers.zstd-chunked.tarsplit-position"
LEGACY_TOC_CHECKSUM = "io.containers.zstd-chunked.manifest-checksum"
LEGACY_TOC_POSITION = "io.containers.zstd-chunked.manifest-position"

SKIPPABLE_MAGIC = b"\x50\x2a\x4d\x18"
FOOTER_MAGIC = b"GNUlInUx"
FOOTER_SIZE = 64
TOC_TYPE_CRFS = 1

# Contents at least this big are compressed as one stream with zstd's workers (one frame
# still); smaller ones are batched into jobs of about BATCH bytes on the thread pool.
BIG = 8 << 20
BATCH = 1 << 20

_TYPES = {
    tarfile.REGTYPE: "reg",
    tarfile.AREGTYPE: "reg",
    tarfile.LNKTYPE: "hardlink",
    tarfile.SYMTYPE: "symlink",
    tarfile.DIRTYPE: "dir",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}
# tar-split's entry types (github.com/vbatts/tar-split/tar/storage).
_TS_FILE, _TS_SEGMENT = 1, 2


def skippable_frame(data: bytes) -> bytes:
    """``data`` in a zstd skippable frame: every zstd decoder passes over it."""
    return SKIPPABLE_MAGIC + struct.pack("<I", len(data)) + data


def go_time(epoch: int) -> str:
    """A Unix time as Go's encoding/json writes a UTC ``time.Time``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def toc_entry(ti: tarfile.TarInfo) -> dict[str, Any]:
    """The TOC entry of one tar member; empty fields left out as Go's ``omitempty`` does."""
    entry: dict[str, Any] = {"type": _TYPES.get(ti.type, "reg"), "name": ti.name}
    if ti.type == tarfile.DIRTYPE and not ti.name.endswith("/"):
        entry["name"] = ti.name + "/"  # what tarfile writes for a directory
    fields = {
        "linkName": ti.linkname,
        "mode": ti.mode & 0o7777,
        "size": ti.size if ti.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0,
        "uid": ti.uid,
        "gid": ti.gid,
        "devMajor": ti.devmajor,
        "devMinor": ti.devminor,
    }
    entry.update({k: v for k, v in fields.items() if v})
    entry["modtime"] = go_time(int(ti.mtime))
    return entry


def _compress_frames(level: int, blocks: list[bytes]) -> list[bytes]:
    cctx = zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)
    return [cctx.compress(b) for b in blocks]


class ChunkedSink:
    """Receives a tar as headers, contents and padding (``oci.layer``'s tar writer says
    which is which) and writes the zstd:chunked blob to ``out``."""

    def __init__(
        self,
        out: Callable[[bytes], object],
        pool: Callable[[], ThreadPoolExecutor],
        *,
        level: int,
        threads: int,
    ) -> None:
        self._level = level
        self._threads = threads
        self._blocks = OrderedBlocks(
            out, pool, partial(_compress_frames, level), threads=threads, batch=BATCH
        )
        self._meta = bytearray()  # tar bytes of the frame being gathered (headers, padding)
        self._toc: list[dict[str, Any]] = []
        self._split: list[bytes] = []  # tar-split JSON lines
        self._raw = bytearray()  # tar bytes since the last file entry (a tar-split segment)
        self._entry: dict[str, Any] | None = None  # the member being written
        self._ti: tarfile.TarInfo | None = None
        self._hash: Any = None
        self._crc: int | None = None
        self._body = bytearray()
        self._stream: Any = None  # a big file's compressor, writing straight out
        self._stream_start = 0

    # -- what the tar writer calls -----------------------------------------------------

    def header(self, ti: tarfile.TarInfo, raw: bytes) -> None:
        """A member's header blocks (PAX records included)."""
        self._finish_entry()
        self._meta += raw
        self._raw += raw
        self._segment()
        self._entry = toc_entry(ti)
        self._ti = ti
        self._toc.append(self._entry)

    def begin_contents(self) -> None:
        self._close_meta()
        self._hash = hashlib.sha256()
        self._crc = None
        assert self._ti is not None
        if self._ti.size >= BIG:
            self._blocks.flush()
            cctx = zstandard.ZstdCompressor(
                level=self._level,
                write_checksum=True,
                write_content_size=False,
                threads=self._threads,
            )
            self._stream = cctx.compressobj()
            self._stream_start = self.written

    def contents(self, data: bytes) -> None:
        self._hash.update(data)
        self._crc = fastcrc.crc64.go_iso(data, initial=self._crc)
        if self._stream is not None:
            self._emit(self._stream.compress(data))
        else:
            self._body += data

    def end_contents(self) -> None:
        entry = self._entry
        assert entry is not None
        entry["digest"] = "sha256:" + self._hash.hexdigest()
        if self._stream is not None:
            self._emit(self._stream.flush())
            self._stream = None
            entry["offset"], entry["endOffset"] = self._stream_start, self.written
        else:
            body, self._body = bytes(self._body), bytearray()

            def placed(start: int, end: int, entry: dict[str, Any] = entry) -> None:
                entry["offset"], entry["endOffset"] = start, end

            self._blocks.add(body, [placed])
        assert self._crc is not None
        self._file_entry(self._crc.to_bytes(8, "big"))

    def meta(self, raw: bytes) -> None:
        """Tar bytes that are neither header nor contents: padding and the end blocks."""
        self._meta += raw
        self._raw += raw

    def last_members(self) -> list[tuple[tarfile.TarInfo, bytes]]:
        return []  # the TOC sits in skippable frames, outside the tar

    def finish(self) -> dict[str, str]:
        """Write the rest, the TOC, tar-split and footer; return the layer's annotations."""
        self._finish_entry()
        self._close_meta()
        if self._raw:
            self._segment()
        self._blocks.flush()
        cctx = zstandard.ZstdCompressor(level=self._level, write_checksum=True)
        tar_split = b"".join(self._split)
        split_z = cctx.compress(tar_split)
        toc = {
            "version": 1,
            "entries": self._toc,
            "tarSplitDigest": "sha256:" + hashlib.sha256(split_z).hexdigest(),
        }
        toc_json = json.dumps(toc, separators=(",", ":")).encode()
        toc_z = cctx.compress(toc_json)
        toc_offset = self.written + 8
        self._emit(skippable_frame(toc_z))
        split_offset = self.written + 8
        self._emit(skippable_frame(split_z))
        footer = struct.pack(
            "<7Q",
            toc_offset,
            len(toc_z),
            len(toc_json),
            TOC_TYPE_CRFS,
            split_offset,
            len(split_z),
            len(tar_split),
        )
        self._emit(skippable_frame(footer + FOOTER_MAGIC))
        checksum = "sha256:" + hashlib.sha256(toc_z).hexdigest()
        position = f"{toc_offset}:{len(toc_z)}:{len(toc_json)}:{TOC_TYPE_CRFS}"
        return {
            TOC_CHECKSUM: checksum,
            TOC_POSITION: position,
            TARSPLIT_POSITION: f"{split_offset}:{len(split_z)}:{len(tar_split)}",
            LEGACY_TOC_CHECKSUM: checksum,
            LEGACY_TOC_POSITION: position,
        }

    # -- inside ------------------------------------------------------------------------

    def _finish_entry(self) -> None:
        """A member without contents gets its tar-split file entry when the next begins."""
        if self._ti is not None:
            self._file_entry(None)

    def _file_entry(self, crc: bytes | None) -> None:
        """tar-split's entry for the member: name, size and the CRC-64 of its contents."""
        ti, entry = self._ti, self._entry
        assert ti is not None and entry is not None
        name = str(entry["name"])
        line: dict[str, Any] = {"type": _TS_FILE}
        try:
            name.encode("utf-8")
            line["name"] = name
        except UnicodeEncodeError:  # an undecodable file name, kept as its bytes
            line["name_raw"] = base64.b64encode(name.encode("utf-8", "surrogateescape")).decode()
        if entry.get("size"):
            line["size"] = entry["size"]
        line["payload"] = base64.b64encode(crc).decode() if crc is not None else None
        self._ts_line(line)
        self._entry, self._ti = None, None

    def _segment(self) -> None:
        self._ts_line({"type": _TS_SEGMENT, "payload": base64.b64encode(self._raw).decode()})
        self._raw = bytearray()

    def _ts_line(self, line: dict[str, Any]) -> None:
        line["position"] = len(self._split)
        self._split.append(json.dumps(line, separators=(",", ":")).encode() + b"\n")

    def _close_meta(self) -> None:
        if self._meta:
            self._blocks.add(bytes(self._meta))
            self._meta = bytearray()

    @property
    def written(self) -> int:
        """Compressed bytes out so far."""
        return self._blocks.written

    def _emit(self, data: bytes) -> None:
        self._blocks.write(data)
