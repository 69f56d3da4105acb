"""eStargz layers, read back as a lazy-pulling runtime and as a plain gzip reader do.

The independent readers here: ``gzip -dc`` (a chain of members is one gzip stream) and
Python's ``tarfile``; the e2e test adds ctr-remote's own TOC parser
(``tests/e2e/test_estargz.py``). The checks follow containerd/stargz-snapshotter's
``docs/estargz.md``: a member starts at every file's contents and at the TOC, the footer
names the TOC, every chunk's digest matches, the landmark separates what to prefetch.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from support.images import make_tree

from torchslim.cache import BlobStore
from torchslim.oci import estargz
from torchslim.oci.estargz import (
    CHUNK,
    FOOTER_SIZE,
    NO_PREFETCH_LANDMARK,
    PREFETCH_LANDMARK,
    TOC_DIGEST,
    TOC_NAME,
    UNCOMPRESSED_SIZE,
    toc_offset_of,
)
from torchslim.oci.layer import Layer, write_layer_from_dir
from torchslim.oci.media import OCI_LAYER_GZIP


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = make_tree(tmp_path / "tree")
    (root / "big.bin").write_bytes(os.urandom(2 * CHUNK + 12345))  # three chunks
    (root / "exact.bin").write_bytes(os.urandom(CHUNK))  # one full chunk
    (root / "app").mkdir()
    (root / "app" / "main.py").write_text("print('hi')\n")
    (root / "app" / "other.py").write_text("x = 1\n" * 1000)
    (root / "empty").write_bytes(b"")
    return root


def _write(tree: Path, store: BlobStore, prefetch: tuple[str, ...] = ()) -> tuple[Layer, bytes]:
    lay = write_layer_from_dir(
        tree, store, compression="estargz", mtime=1_700_000_000, prefix="/opt/x",
        prefetch=prefetch,
    )  # fmt: skip
    return lay, store.read_bytes(lay.digest)


def _member(blob: bytes, offset: int) -> bytes:
    """The uncompressed bytes of the one gzip member that starts at ``offset``."""
    assert blob[offset : offset + 2] == b"\x1f\x8b", f"no gzip member at {offset}"
    z = zlib.decompressobj(31)
    data = z.decompress(blob[offset:])
    assert z.eof
    return data


def _toc(blob: bytes, lay: Layer) -> dict[str, Any]:
    offset = toc_offset_of(blob[-FOOTER_SIZE:])
    with tarfile.open(fileobj=io.BytesIO(_member(blob, offset))) as tf:
        member = tf.next()
        assert member is not None and member.name == TOC_NAME
        f = tf.extractfile(member)
        assert f is not None
        data = f.read()
    annotations = lay.descriptor.annotations or {}
    assert _sha(data) == annotations[TOC_DIGEST]
    toc: dict[str, Any] = json.loads(data)
    return toc


def test_the_blob_is_a_plain_gzip_tar_whose_last_member_is_the_toc(
    tree: Path, tmp_path: Path
) -> None:
    lay, blob = _write(tree, BlobStore(tmp_path / "cache"))
    assert lay.descriptor.media_type == OCI_LAYER_GZIP
    data = gzip.decompress(blob)
    assert _sha(data) == lay.diff_id and len(data) == lay.uncompressed_size
    assert (lay.descriptor.annotations or {})[UNCOMPRESSED_SIZE] == str(len(data))
    if shutil.which("gzip"):
        out = subprocess.run(["gzip", "-dc"], input=blob, capture_output=True, check=True)
        assert _sha(out.stdout) == lay.diff_id
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        names = tf.getnames()
        assert names[0] == NO_PREFETCH_LANDMARK  # nothing to prefetch: said first
        assert names[-1] == TOC_NAME
        big = tf.extractfile("opt/x/big.bin")
        assert big is not None and big.read() == (tree / "big.bin").read_bytes()


def test_every_file_and_chunk_is_its_own_member_with_its_digest(tree: Path, tmp_path: Path) -> None:
    lay, blob = _write(tree, BlobStore(tmp_path / "cache"))
    toc = _toc(blob, lay)
    assert toc["version"] == 1
    entries = toc["entries"]
    assert TOC_NAME not in {e["name"] for e in entries}
    by_name: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_name.setdefault(e["name"], []).append(e)
    for name, parts in by_name.items():
        head = parts[0]
        if head["type"] != "reg" or not head.get("size"):
            assert "offset" not in head
            continue
        assert [p["type"] for p in parts] == ["reg"] + ["chunk"] * (len(parts) - 1)
        contents = b""
        for p in parts:
            assert p.get("chunkOffset", 0) == len(contents)
            want = p.get("chunkSize") or head["size"] - len(contents)
            piece = _member(blob, p["offset"])[:want]
            assert len(piece) == want and _sha(piece) == p["chunkDigest"]
            contents += piece
        assert _sha(contents) == head["digest"]
        on_disk = tree / name.removeprefix("opt/x/") if name.startswith("opt/x/") else None
        if on_disk is not None and on_disk.is_file():
            assert contents == on_disk.read_bytes()
    big = by_name["opt/x/big.bin"]
    assert len(big) == 3 and [p.get("chunkSize") for p in big] == [CHUNK, CHUNK, None]
    assert by_name["opt/x/exact.bin"][0]["chunkSize"] == CHUNK  # as Go's writer says it
    assert by_name["opt/x/etc/passwd.hard"][0]["type"] == "hardlink"
    assert by_name["opt/x/etc/link"][0]["linkName"] == "passwd"


def test_prefetched_files_come_first_then_the_landmark(tree: Path, tmp_path: Path) -> None:
    wanted = ("/opt/x/app/main.py", "/opt/x/big.bin", "/somewhere/else.py")
    lay, blob = _write(tree, BlobStore(tmp_path / "cache"), prefetch=wanted)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tf:
        names = tf.getnames()
    landmark = names.index(PREFETCH_LANDMARK)
    # The root (a partial pull sets "/"'s mode only from it), the prefix folders, then
    # the files asked for with the folders above them (path order), then the landmark,
    # then the rest.
    assert names[:landmark] == [
        ".", "opt", "opt/x", "opt/x/app", "opt/x/app/main.py", "opt/x/big.bin"
    ]  # fmt: skip
    assert "opt/x/app/other.py" in names[landmark:]
    assert NO_PREFETCH_LANDMARK not in names
    toc = _toc(blob, lay)
    mark = next(e for e in toc["entries"] if e["name"] == PREFETCH_LANDMARK)
    assert _member(blob, mark["offset"])[:1] == estargz.LANDMARK_CONTENTS
    # What a runtime prefetches (the blob before the landmark) holds both files.
    for e in toc["entries"]:
        if e["name"] in ("opt/x/app/main.py", "opt/x/big.bin") and "offset" in e:
            assert e["offset"] < mark["offset"]
        if e["name"] == "opt/x/app/other.py":
            assert e["offset"] > mark["offset"]


def test_the_blob_depends_only_on_the_input(tree: Path, tmp_path: Path) -> None:
    one, _ = _write(tree, BlobStore(tmp_path / "a"), prefetch=("/opt/x/app/main.py",))
    two, _ = _write(tree, BlobStore(tmp_path / "b"), prefetch=("/opt/x/app/main.py",))
    assert one.digest == two.digest and one.diff_id == two.diff_id


def test_footer_round_trips_and_refuses_what_is_not_one() -> None:
    tail = estargz.footer(123456789)
    assert len(tail) == FOOTER_SIZE and toc_offset_of(tail) == 123456789
    assert gzip.decompress(tail) == b""  # an empty member any gzip reader passes over
    with pytest.raises(ValueError):
        toc_offset_of(b"\0" * FOOTER_SIZE)
