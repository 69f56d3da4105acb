"""eStargz layers: a gzip tar whose files a lazy-pulling runtime fetches, checks and
prefetches one by one (containerd/stargz-snapshotter's ``docs/estargz.md``).

Any gzip reader sees a plain gzip tar: the blob is a chain of gzip members, and a chain of
members is one valid gzip stream. What lazy pulling needs:

- every regular file's contents start a gzip member of their own (a file of more than
  ``CHUNK`` bytes is cut into members of ``CHUNK``, ``chunk`` entries in the TOC), so a
  reader can fetch and inflate one file with a range request;
- the last tar member is ``stargz.index.json``, the table of contents (TOC): one entry per
  tar member with its metadata, the offset of its member, the sha256 of the file and of
  each chunk; it starts a member, and the tar's end blocks follow it in that member;
- a 51-byte footer, an empty gzip member whose Extra field holds the TOC's offset;
- the layer descriptor's ``containerd.io/snapshot/stargz/toc.digest``: the sha256 of the
  TOC JSON, by which a runtime trusts the TOC (and, through it, every chunk);
- a landmark file, ``.prefetch.landmark`` after the files to prefetch (the runtime fetches
  everything before it in one range request before the container starts), or
  ``.no.prefetch.landmark`` first when there are none. ``oci.layer`` orders the members.

Members are compressed on threads (each is independent); the bytes depend only on the
input, as for the other compressions.
"""

from __future__ import annotations

import hashlib
import json
import struct
import tarfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from torchslim.oci.chunked import toc_entry
from torchslim.oci.ordered import OrderedBlocks, Placed

FORMAT = 1  # what torchslim's eStargz writer emits: bump when its bytes change
TOC_NAME = "stargz.index.json"
TOC_DIGEST = "containerd.io/snapshot/stargz/toc.digest"
UNCOMPRESSED_SIZE = "io.containers.estargz.uncompressed-size"
PREFETCH_LANDMARK = ".prefetch.landmark"
NO_PREFETCH_LANDMARK = ".no.prefetch.landmark"
LANDMARK_CONTENTS = b"\x0f"
CHUNK = 4 << 20  # ctr-remote's default chunk size
FOOTER_SIZE = 51
BATCH = 1 << 20  # members are compressed in jobs of about this many bytes


def footer(toc_offset: int) -> bytes:
    """The 51-byte footer: an empty gzip member whose Extra field ("SG") says
    ``%016xSTARGZ`` of the TOC member's offset."""
    field = b"%016xSTARGZ" % toc_offset
    extra = b"SG" + struct.pack("<H", len(field)) + field
    header = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff" + struct.pack("<H", len(extra)) + extra
    empty_stored_block = b"\x01\x00\x00\xff\xff"  # BFINAL, BTYPE=00, LEN=0, NLEN=0xffff
    return header + empty_stored_block + struct.pack("<II", 0, 0)  # CRC-32 and size of ""


def toc_offset_of(tail: bytes) -> int:
    """The TOC offset a blob's last ``FOOTER_SIZE`` bytes name; ValueError if not a footer."""
    if len(tail) != FOOTER_SIZE or tail[:4] != b"\x1f\x8b\x08\x04" or tail[12:14] != b"SG":
        raise ValueError("not an eStargz footer")
    field = tail[16:38]
    if not field.endswith(b"STARGZ"):
        raise ValueError("not an eStargz footer")
    return int(field[:16], 16)


def _gzip_members(level: int, blocks: list[bytes]) -> list[bytes]:
    out = []
    for block in blocks:
        z = zlib.compressobj(level, zlib.DEFLATED, 31)  # gzip: mtime 0, no name
        out.append(z.compress(block) + z.flush())
    return out


class EStargzSink:
    """Receives a tar as headers, contents and padding (``oci.layer``'s tar writer says
    which is which) and writes the eStargz blob to ``out``."""

    def __init__(
        self,
        out: Callable[[bytes], object],
        pool: Callable[[], ThreadPoolExecutor],
        *,
        level: int,
        threads: int,
    ) -> None:
        self._blocks = OrderedBlocks(
            out, pool, partial(_gzip_members, level), threads=threads, batch=BATCH
        )
        self._tar_size = 0  # uncompressed bytes in
        self._member = bytearray()  # the member being gathered
        self._member_placed: list[Placed] = []  # told where it lands
        self._toc: list[dict[str, Any]] = []
        self._chunk: dict[str, Any] | None = None  # the TOC entry of the chunk being written
        self._chunk_left = self._chunk_len = 0
        self._file_hash: Any = None
        self._chunk_hash: Any = None
        self._offset_in_file = 0
        self._size = 0
        self._toc_json: bytes | None = None  # set once the TOC member has begun
        self._toc_offset = 0

    # -- what the tar writer calls -----------------------------------------------------

    def header(self, ti: tarfile.TarInfo, raw: bytes) -> None:
        """A member's header blocks (PAX records included)."""
        self._tar_size += len(raw)
        if self._toc_json is not None:  # the TOC's own header starts the TOC member
            self._close_member()
            self._blocks.flush()
            self._toc_offset = self.written
            self._member += raw
            return
        self._member += raw
        entry = toc_entry(ti)
        self._toc.append(entry)
        self._size = ti.size if ti.isreg() else 0
        if self._size:
            self._chunk = entry

    def begin_contents(self) -> None:
        if self._toc_json is not None:
            return  # the TOC's contents stay in its member
        self._file_hash = hashlib.sha256()
        self._offset_in_file = 0
        self._start_chunk()

    def contents(self, data: bytes) -> None:
        self._tar_size += len(data)
        if self._toc_json is not None:
            self._member += data
            return
        self._file_hash.update(data)
        view = memoryview(data)
        while view:
            if self._chunk_left == 0:
                self._end_chunk()
                self._start_chunk()
            part = view[: self._chunk_left]
            self._member += part
            self._chunk_hash.update(part)
            self._chunk_left -= len(part)
            self._offset_in_file += len(part)
            view = view[len(part) :]

    def end_contents(self) -> None:
        if self._toc_json is not None:
            return
        self._end_chunk()
        self._toc_entry_of_file()["digest"] = "sha256:" + self._file_hash.hexdigest()

    def meta(self, raw: bytes) -> None:
        """Tar bytes that are neither header nor contents: padding and the end blocks."""
        self._tar_size += len(raw)
        self._member += raw

    def last_members(self) -> list[tuple[tarfile.TarInfo, bytes]]:
        """The TOC, as the tar's last member (the tar writer adds it before the end
        blocks). Every other member is placed by then, so every offset is known."""
        self._close_member()
        self._blocks.flush()
        toc = {"version": 1, "entries": self._toc}
        self._toc_json = json.dumps(toc, separators=(",", ":")).encode()
        ti = tarfile.TarInfo(TOC_NAME)
        ti.size = len(self._toc_json)
        ti.mode = 0o444
        ti.uname = ti.gname = ""
        return [(ti, self._toc_json)]

    def finish(self) -> dict[str, str]:
        """Write the TOC member and the footer; return the layer's annotations."""
        if self._toc_json is None:
            raise RuntimeError("eStargz: the tar writer did not add the TOC")
        self._close_member()
        self._blocks.flush()
        self._emit(footer(self._toc_offset))
        return {
            TOC_DIGEST: "sha256:" + hashlib.sha256(self._toc_json).hexdigest(),
            UNCOMPRESSED_SIZE: str(self._tar_size),
        }

    # -- inside ------------------------------------------------------------------------

    def _toc_entry_of_file(self) -> dict[str, Any]:
        return next(e for e in reversed(self._toc) if e["type"] == "reg")

    def _start_chunk(self) -> None:
        """A new member for the next ``CHUNK`` bytes of the file (its first: the ``reg``
        entry itself; later ones: ``chunk`` entries)."""
        self._close_member()
        if self._offset_in_file:
            file_entry = self._toc_entry_of_file()
            self._chunk = {"name": file_entry["name"], "type": "chunk"}
            self._chunk["chunkOffset"] = self._offset_in_file
            self._toc.append(self._chunk)
        chunk = self._chunk
        assert chunk is not None

        def placed(start: int, _end: int, chunk: dict[str, Any] = chunk) -> None:
            chunk["offset"] = start

        self._member_placed.append(placed)
        self._chunk_hash = hashlib.sha256()
        self._chunk_left = self._chunk_len = min(CHUNK, self._size - self._offset_in_file)

    def _end_chunk(self) -> None:
        chunk = self._chunk
        assert chunk is not None
        if self._chunk_len == CHUNK:  # as Go's writer: a short last chunk says 0 (omitted)
            chunk["chunkSize"] = CHUNK
        chunk["chunkDigest"] = "sha256:" + self._chunk_hash.hexdigest()

    def _close_member(self) -> None:
        if self._member or self._member_placed:
            self._blocks.add(bytes(self._member), self._member_placed)
            self._member, self._member_placed = bytearray(), []

    @property
    def written(self) -> int:
        """Compressed bytes out so far."""
        return self._blocks.written

    def _emit(self, data: bytes) -> None:
        self._blocks.write(data)
