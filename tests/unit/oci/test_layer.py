"""The layer writer: deterministic bytes, faithful entries, working compressors."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import zlib
from pathlib import Path

import pytest
import zstandard
from support.images import LONG, make_tree

from torchslim.cache import BlobStore
from torchslim.errors import BuildError, ConfigError
from torchslim.oci.layer import (
    Descriptor,
    Layer,
    Ownership,
    compression_level,
    write_layer_from_dir,
)
from torchslim.oci.media import OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tar_of(store: BlobStore, layer: Layer) -> bytes:
    blob = store.read_bytes(layer.digest)
    mt = layer.descriptor.media_type
    if mt == OCI_LAYER_GZIP:
        return gzip.decompress(blob)
    if mt == OCI_LAYER_ZSTD:
        return zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    return blob


def _members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return tar.getmembers()


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_same_tree_gives_same_bytes_regardless_of_mtime_owner_and_location(
    tmp_path: Path, compression: str
) -> None:
    a = make_tree(tmp_path / "one", mtime=1_000_000, uid=0)
    b = make_tree(tmp_path / "elsewhere" / "two", mtime=1_900_000_000, uid=4242)
    la = write_layer_from_dir(a, BlobStore(tmp_path / "s1"), compression=compression)  # type: ignore[arg-type]
    lb = write_layer_from_dir(b, BlobStore(tmp_path / "s2"), compression=compression)  # type: ignore[arg-type]
    assert la == lb and la.uncompressed_size == lb.uncompressed_size
    assert la.diff_id != la.digest or compression == "none"


def test_different_content_gives_different_digest(tmp_path: Path, store: BlobStore) -> None:
    a = make_tree(tmp_path / "a")
    la = write_layer_from_dir(a, store)
    (a / "a" / "b").write_text("B")
    lb = write_layer_from_dir(a, store)
    assert la.diff_id != lb.diff_id and la.digest != lb.digest


def test_entries_order_modes_links_and_owners(tree: Path, store: BlobStore) -> None:
    layer = write_layer_from_dir(tree, store, mtime=1234, compression="none")
    assert layer.descriptor.media_type == OCI_LAYER_TAR
    data = store.read_bytes(layer.digest)
    assert _sha(data) == layer.diff_id == layer.digest
    assert layer.uncompressed_size == len(data) == layer.descriptor.size
    members = _members(data)
    names = [m.name for m in members]
    by = {m.name: m for m in members}
    # Bytewise order on the full path: "a" < "a-c" < "a/b" ('-' is 0x2d, '/' is 0x2f).
    assert names == sorted(names, key=lambda n: n.encode())
    assert names.index("a") < names.index("a-c") < names.index("a/b")
    for name in names:  # parents first
        parent = name.rsplit("/", 1)[0]
        if "/" in name:
            assert names.index(parent) < names.index(name)
    assert by["tmp"].isdir() and by["tmp"].mode == 0o1777
    assert by["bin/suid"].mode == 0o4755
    assert by["bin/tool"].mode == 0o755 and by["bin/tool"].size == 5013
    assert by["etc/link"].issym() and by["etc/link"].linkname == "passwd"
    assert by["etc/passwd"].isreg()
    assert by["etc/passwd.hard"].islnk() and by["etc/passwd.hard"].linkname == "etc/passwd"
    assert by[LONG].isreg() and by["données.txt"].isreg()
    for m in members:
        assert m.mtime == 1234
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
        assert not m.name.startswith("/")
    # tarfile strips the trailing "/"; check the raw header for directories.
    assert b"bin/\0" in data and b"tmp/\0" in data


def test_prefix_emits_parent_dirs_and_owner_override(tree: Path, store: BlobStore) -> None:
    owner = Ownership(0, 0, overrides={"opt/app/etc": (1000, 1001)})
    layer = write_layer_from_dir(tree, store, prefix="/opt/app", owner=owner, compression="zstd")
    members = _members(_tar_of(store, layer))
    names = [m.name for m in members]
    assert names[:2] == ["opt", "opt/app"]
    by = {m.name: m for m in members}
    assert all(n == "opt" or n.startswith("opt/app") for n in names)
    assert (by["opt/app/etc/passwd"].uid, by["opt/app/etc/passwd"].gid) == (1000, 1001)
    assert (by["opt/app/etc"].uid, by["opt/app/bin/tool"].uid) == (1000, 0)
    assert by["opt/app/etc/passwd.hard"].linkname == "opt/app/etc/passwd"


def test_ownership_longest_match_wins() -> None:
    own = Ownership(1, 2, overrides={"app": (10, 10), "app/data": (20, 20)})
    assert own("etc/x") == (1, 2)
    assert own("app") == (10, 10)
    assert own("app/main.py") == (10, 10)
    assert own("app/data/m.pt") == (20, 20)
    assert own("apple") == (1, 2)


def test_gzip_is_plain_deterministic_gzip(tree: Path, store: BlobStore) -> None:
    layer = write_layer_from_dir(tree, store, compression="gzip")
    blob = store.read_bytes(layer.digest)
    assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # mtime 0, no name
    assert _sha(blob) == layer.digest and len(blob) == layer.descriptor.size
    raw = gzip.decompress(blob)
    assert _sha(raw) == layer.diff_id and len(raw) == layer.uncompressed_size


def test_zstd_round_trip_without_content_size(tree: Path, store: BlobStore) -> None:
    layer = write_layer_from_dir(tree, store, compression="zstd")
    blob = store.read_bytes(layer.digest)
    params = zstandard.get_frame_parameters(blob)
    assert params.content_size == zstandard.CONTENTSIZE_UNKNOWN
    raw = _tar_of(store, layer)
    assert _sha(raw) == layer.diff_id and len(raw) == layer.uncompressed_size


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_a_big_layer_is_compressed_on_threads_to_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compression: str
) -> None:
    """Layers over 1 MiB are compressed on threads (gzip in primed, sync-flushed blocks as
    pigz does; zstd's own workers): one valid stream whose bytes do not depend on the
    number of threads, so a build is reproducible on any machine."""
    import torchslim.oci.layer as layer_mod

    tree = tmp_path / "big"
    tree.mkdir()
    chunk = os.urandom(4096)
    (tree / "weights.bin").write_bytes(b"".join(chunk[: 64 + i % 4000] * 3 for i in range(2500)))
    blobs = []
    for threads in (1, 2, 4):
        monkeypatch.setattr(layer_mod, "_THREADS", threads)
        monkeypatch.setattr(layer_mod, "_POOL", None)
        store = BlobStore(tmp_path / f"cache{threads}")
        layer = write_layer_from_dir(tree, store, compression=compression)  # type: ignore[arg-type]
        blobs.append(store.read_bytes(layer.digest))
        raw = _tar_of(store, layer)
        assert _sha(raw) == layer.diff_id and len(raw) == layer.uncompressed_size
    assert blobs[0] == blobs[1] == blobs[2]
    assert len(blobs[0]) < (tree / "weights.bin").stat().st_size / 2  # still compressed
    if compression == "gzip":  # one member: readers that stop after the first see it all
        d = zlib.decompressobj(31)
        assert len(d.decompress(blobs[0])) == layer.uncompressed_size and d.eof
        assert d.unused_data == b""


def test_progress_reports_file_bytes_and_fifo_is_skipped(tree: Path, store: BlobStore) -> None:
    os.mkfifo(tree / "pipe")
    seen: list[int] = []
    skipped: list[tuple[str, str]] = []
    layer = write_layer_from_dir(
        tree, store, progress=seen.append, on_skip=lambda p, r: skipped.append((p, r))
    )
    files = [p for p in tree.rglob("*") if p.is_file() and not p.is_symlink()]
    hard = tree / "etc" / "passwd.hard"
    assert sum(seen) == sum(p.stat().st_size for p in files if p != hard)
    assert [p for p, _ in skipped] == ["pipe"]
    assert "pipe" not in [m.name for m in _members(_tar_of(store, layer))]


def test_layer_metadata_round_trips_as_json(tree: Path, store: BlobStore) -> None:
    import json

    layer = write_layer_from_dir(tree, store)
    again = Layer.from_dict(json.loads(json.dumps(layer.to_dict())))
    assert again == layer
    d = Descriptor("m", "sha256:" + "0" * 64, 3, {"k": "v"})
    assert Descriptor.from_json(d.to_json()) == d
    assert hash(d) == hash(Descriptor("m", "sha256:" + "0" * 64, 3))


def test_not_a_directory_and_bad_compression(tmp_path: Path, store: BlobStore) -> None:
    with pytest.raises(BuildError, match="not a directory"):
        write_layer_from_dir(tmp_path / "missing", store)
    with pytest.raises(BuildError, match="compression"):
        write_layer_from_dir(tmp_path, store, compression="lz4")  # type: ignore[arg-type]


def _compressible_tree(root: Path) -> Path:
    """About 3 MB of text that every level compresses, and better at a higher one."""
    import random

    rng = random.Random(7)
    words = [f"name_{i}" for i in range(400)]
    (root / "pkg").mkdir(parents=True)
    for i in range(6):
        lines = (" ".join(rng.choice(words) for _ in range(12)) for _ in range(8000))
        (root / "pkg" / f"m{i}.py").write_text("\n".join(lines))
    return root


@pytest.mark.parametrize(
    ("compression", "tool"),
    [("gzip", "gzip"), ("zstd", "zstd"), ("zstd:chunked", "zstd"), ("estargz", "gzip")],
)
def test_a_higher_level_writes_fewer_bytes_that_any_reader_opens(
    tmp_path: Path, compression: str, tool: str
) -> None:
    tree = _compressible_tree(tmp_path / "tree")
    highest = {"gzip": 9, "estargz": 9}.get(compression, 19)
    store = BlobStore(tmp_path / "s")
    plain = write_layer_from_dir(tree, store, compression=compression)  # type: ignore[arg-type]
    high = write_layer_from_dir(tree, store, compression=compression, level=highest)  # type: ignore[arg-type]
    assert high.descriptor.size < plain.descriptor.size * 0.97, (high, plain)
    if compression != "estargz":  # eStargz's TOC, a tar member, names compressed offsets
        assert high.diff_id == plain.diff_id
    if shutil.which(tool):
        out = subprocess.run(
            [tool, "-dc"], input=store.read_bytes(high.digest), capture_output=True, check=True
        )
        assert _sha(out.stdout) == high.diff_id
        assert {"pkg/m0.py", "pkg/m5.py"} <= {m.name for m in _members(out.stdout)}


def test_each_format_checks_its_level() -> None:
    assert compression_level("zstd:chunked", None) == 3
    assert compression_level("gzip", None) == 6
    assert compression_level("zstd", 19) == 19
    with pytest.raises(ConfigError, match=r"^level 20 is out of range for zstd; use 1 to 19"):
        compression_level("zstd", 20)
    with pytest.raises(ConfigError, match=r"for estargz; use 1 to 9 \(default 6\)$"):
        compression_level("estargz", 12)
    with pytest.raises(ConfigError, match="out of range"):
        compression_level("gzip", 0)
    with pytest.raises(ConfigError, match="none has no compression level"):
        compression_level("none", 3)
