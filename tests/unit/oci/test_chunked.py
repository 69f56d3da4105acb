"""zstd:chunked layers, read back the way containers/storage and plain zstd readers do.

The independent readers here: the ``zstd`` command for the plain view, and Debian's
``tar-split`` (vbatts/tar-split, the library containers/storage rebuilds tars with) for
the tar-split data: its ``asm`` must give back the exact tar from the files alone.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard
from support.images import make_tree

from torchslim.cache import BlobStore
from torchslim.oci import chunked
from torchslim.oci import layer as layer_mod
from torchslim.oci.chunked import (
    FOOTER_MAGIC,
    LEGACY_TOC_CHECKSUM,
    LEGACY_TOC_POSITION,
    SKIPPABLE_MAGIC,
    TARSPLIT_POSITION,
    TOC_CHECKSUM,
    TOC_POSITION,
)
from torchslim.oci.layer import Layer, write_layer_from_dir
from torchslim.oci.media import OCI_LAYER_ZSTD


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = make_tree(tmp_path / "tree")
    # One file big enough for the streamed path, many small ones for the batched path,
    # an empty file and one with a hole of zeros.
    (root / "big.bin").write_bytes(os.urandom(chunked.BIG + 12345))
    (root / "many").mkdir()
    for i in range(300):
        (root / "many" / f"m{i:03}.py").write_text(f"x = {i}\n" * (i * 20))
    (root / "empty").write_bytes(b"")
    (root / "zeros").write_bytes(b"\0" * 70000)
    return root


def _write(tree: Path, store: BlobStore) -> tuple[Layer, bytes]:
    lay = write_layer_from_dir(tree, store, compression="zstd:chunked", mtime=1_700_000_000)
    return lay, store.read_bytes(lay.digest)


def _position(ann: dict[str, str], key: str) -> tuple[int, ...]:
    return tuple(int(p) for p in ann[key].split(":"))


def _toc(blob: bytes, ann: dict[str, str]) -> dict[str, Any]:
    offset, length, ulen, kind = _position(ann, TOC_POSITION)
    assert kind == 1
    frame = blob[offset : offset + length]
    assert _sha(frame) == ann[TOC_CHECKSUM] == ann[LEGACY_TOC_CHECKSUM]
    assert blob[offset - 8 : offset - 4] == SKIPPABLE_MAGIC
    data = zstandard.ZstdDecompressor().decompress(frame, max_output_size=ulen)
    assert len(data) == ulen
    toc: dict[str, Any] = json.loads(data)
    return toc


def _tar_split(blob: bytes, ann: dict[str, str]) -> tuple[bytes, bytes]:
    offset, length, ulen = _position(ann, TARSPLIT_POSITION)
    frame = blob[offset : offset + length]
    data = zstandard.ZstdDecompressor().decompress(frame, max_output_size=ulen)
    assert len(data) == ulen
    return frame, data


def test_the_blob_is_a_plain_zstd_tar_to_any_reader(tree: Path, tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "cache")
    lay, blob = _write(tree, store)
    assert lay.descriptor.media_type == OCI_LAYER_ZSTD
    tar = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob), read_across_frames=True)
    data = tar.read()
    assert _sha(data) == lay.diff_id and len(data) == lay.uncompressed_size
    if shutil.which("zstd"):
        out = subprocess.run(["zstd", "-dc"], input=blob, capture_output=True, check=True)
        assert _sha(out.stdout) == lay.diff_id
    with tarfile.open(fileobj=io.BytesIO(data)) as members:
        names = members.getnames()
    assert "big.bin" in names and "many/m299.py" in names


def test_each_file_is_its_own_frame_named_by_the_toc(tree: Path, tmp_path: Path) -> None:
    lay, blob = _write(tree, BlobStore(tmp_path / "cache"))
    ann = lay.descriptor.annotations or {}
    assert ann[LEGACY_TOC_POSITION] == ann[TOC_POSITION]
    toc = _toc(blob, ann)
    assert toc["version"] == 1
    entries = {e["name"]: e for e in toc["entries"]}
    checked = 0
    for rel in ["big.bin", "zeros", "bin/tool", "many/m150.py", "données.txt"]:
        want = (tree / rel).read_bytes()
        e = entries[rel]
        assert e["type"] == "reg" and e["size"] == len(want) and e["digest"] == _sha(want)
        frame = blob[e["offset"] : e["endOffset"]]
        # One frame, its contents alone: what a partial pull fetches with one range request.
        got = zstandard.ZstdDecompressor().decompressobj().decompress(frame)
        assert got == want
        checked += 1
    assert checked == 5
    assert entries["empty"]["type"] == "reg" and "offset" not in entries["empty"]
    assert entries["etc/"]["type"] == "dir" and entries["etc/"]["mode"] == 0o755
    assert entries["etc/link"] == {**entries["etc/link"], "type": "symlink", "linkName": "passwd"}
    hard = [e for e in toc["entries"] if e["type"] == "hardlink"]
    assert [h["linkName"] for h in hard] == ["etc/passwd"]
    assert entries["bin/suid"]["mode"] == 0o4755
    assert {e["modtime"] for e in toc["entries"]} == {"2023-11-14T22:13:20Z"}


def test_the_footer_and_tar_split_agree_with_the_annotations(tree: Path, tmp_path: Path) -> None:
    lay, blob = _write(tree, BlobStore(tmp_path / "cache"))
    ann = lay.descriptor.annotations or {}
    footer = blob[-72:]
    assert footer[:4] == SKIPPABLE_MAGIC and struct.unpack("<I", footer[4:8]) == (64,)
    fields = struct.unpack("<7Q", footer[8:64])
    assert footer[64:] == FOOTER_MAGIC
    assert fields[:4] == _position(ann, TOC_POSITION)
    assert fields[4:] == _position(ann, TARSPLIT_POSITION)
    frame, _ = _tar_split(blob, ann)
    assert _toc(blob, ann)["tarSplitDigest"] == _sha(frame)


@pytest.mark.skipif(shutil.which("tar-split") is None, reason="Debian's tar-split is not installed")
def test_tar_split_rebuilds_the_exact_tar_from_the_files(tree: Path, tmp_path: Path) -> None:
    """What containers/storage does to check a partially pulled layer's diff id."""
    lay, blob = _write(tree, BlobStore(tmp_path / "cache"))
    _, data = _tar_split(blob, lay.descriptor.annotations or {})
    split = tmp_path / "ours.json.gz"
    split.write_bytes(gzip.compress(data))
    out = tmp_path / "rebuilt.tar"
    subprocess.run(
        ["tar-split", "asm", "--input", str(split), "--path", str(tree), "--output", str(out)],
        check=True,
        capture_output=True,
    )
    assert _sha(out.read_bytes()) == lay.diff_id
    # And tar-split's own reading of our tar names the same files, sizes and CRC-64s.
    tar = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob), read_across_frames=True)
    theirs = tmp_path / "theirs.json.gz"
    subprocess.run(
        ["tar-split", "disasm", "--no-stdout", "--output", str(theirs), "-"],
        input=tar.read(),
        check=True,
        capture_output=True,
    )

    def files(lines: bytes) -> list[tuple[str, int, str | None]]:
        out = []
        for line in lines.splitlines():
            e = json.loads(line)
            if e["type"] == 1:
                name = e.get("name") or base64.b64decode(e["name_raw"]).decode()
                out.append((name, e.get("size", 0), e["payload"]))
        return out

    ours_files = files(data)
    assert ours_files == files(gzip.decompress(theirs.read_bytes()))
    assert len(ours_files) > 300


def test_same_bytes_for_any_number_of_threads(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digests = set()
    for threads in (1, 3):
        monkeypatch.setattr(layer_mod, "_THREADS", threads)
        lay, _ = _write(tree, BlobStore(tmp_path / f"cache{threads}"))
        digests.add((lay.digest, json.dumps(lay.descriptor.annotations, sort_keys=True)))
    assert len(digests) == 1


def test_one_changed_file_changes_only_its_own_frame(tree: Path, tmp_path: Path) -> None:
    """Why a store that holds the last release fetches only what changed."""
    lay1, blob1 = _write(tree, BlobStore(tmp_path / "c1"))
    (tree / "many" / "m100.py").write_text("changed = True\n")
    lay2, blob2 = _write(tree, BlobStore(tmp_path / "c2"))
    toc1 = {e["name"]: e for e in _toc(blob1, lay1.descriptor.annotations or {})["entries"]}
    toc2 = {e["name"]: e for e in _toc(blob2, lay2.descriptor.annotations or {})["entries"]}
    differ = sorted(n for n in toc2 if toc2[n].get("digest") != toc1[n].get("digest"))
    assert differ == ["many/m100.py"]
