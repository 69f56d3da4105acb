"""Property-based: random and mutated tar streams, manifests, indexes, configs and archives fed
to the readers. Only TorchslimError may escape, nothing is written, memory stays bounded."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import tempfile
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.hostile import config_json, raw_layout
from support.images import Entry, sha, tar_bytes

from torchslim.errors import TorchslimError
from torchslim.oci.archive import read_docker_archive
from torchslim.oci.flatten import LayerCollector, MergedView, flatten
from torchslim.oci.image import check_config, parse_json, parse_json_object
from torchslim.oci.layout import read_oci_layout
from torchslim.oci.limits import Budget, Limits
from torchslim.oci.tarstream import LayerStats, walk_layer

PEAK_MIB = 64  # what one reader may allocate for inputs of a few KiB
SMALL = Limits(max_uncompressed=8 << 20, ratio_floor=1 << 20, max_entries=10_000)
BOUNDED = settings(
    max_examples=200,
    deadline=2000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)
names = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["..", "../x", "/etc/passwd", "a/../../b", ".wh.", ".wh..", ".wh..wh..opq"]),
    st.builds(
        lambda a, b: f"{a}/{b}",
        st.text(max_size=10),
        st.sampled_from([".wh.x", ".wh..wh.plnk", ".."]),
    ),
)
entries = st.lists(
    st.builds(
        Entry,
        name=names.filter(lambda n: n and "\0" not in n),
        data=st.binary(max_size=64),
        kind=st.sampled_from(["file", "dir", "symlink", "hardlink"]),
        mode=st.integers(0, 0o7777),
        linkname=names.filter(lambda n: "\0" not in n),
    ),
    max_size=8,
)


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for pos, value in edits:
        if out:
            out[pos % len(out)] = value
    return bytes(out[:cut] if cut is not None else out)


mutations = st.tuples(
    st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=6),
    st.none() | st.integers(0, 4096),
)


@contextmanager
def guarded() -> Iterator[Path]:
    """A scratch directory that must hold the same files after the reader ran, and a peak
    allocation the reader must stay under; only TorchslimError may escape the body."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tracemalloc.start()
        try:
            yield root
        except TorchslimError:
            pass
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert peak < PEAK_MIB << 20, f"peak {peak >> 20} MiB"


def snapshot(root: Path) -> set[str]:
    return {os.path.join(d, n) for d, ds, fs in os.walk(root) for n in ds + fs}


def _walk(blob: bytes) -> None:
    view = MergedView()
    collector = LayerCollector(view)
    walk_layer(io.BytesIO(blob), Budget(SMALL), "layer", collector.visit, LayerStats())


@BOUNDED
@given(entries, st.sampled_from(["none", "gzip", "zstd"]), mutations)
def test_tar_streams(items: list[Entry], how: str, mutation: tuple[Any, Any]) -> None:
    try:
        raw = tar_bytes(items)
    except (ValueError, UnicodeError, tarfile.TarError):
        return  # tarfile cannot even write this name; nothing to read
    if how == "gzip":
        raw = gzip.compress(raw, mtime=0)
    elif how == "zstd":
        raw = zstandard.ZstdCompressor().compress(raw)
    with guarded():
        _walk(mutate(raw, *mutation))


@BOUNDED
@given(st.binary(max_size=2048))
def test_random_bytes_as_a_layer(blob: bytes) -> None:
    with guarded():
        _walk(blob)


def _layout(tmp: Path, manifest: Any, config: Any, index: Any) -> Path:
    def enc(value: Any) -> bytes:
        return value if isinstance(value, bytes) else json.dumps(value).encode()

    return raw_layout(
        tmp / "img",
        enc(config),
        [],
        manifest=None if manifest is None else enc(manifest),
        index=None if index is None else enc(index),
    )


@BOUNDED
@given(json_values, json_values, st.sampled_from(["manifest", "config", "index"]))
def test_layout_documents(value: Any, other: Any, which: str) -> None:
    with guarded() as tmp:
        config = config_json([]) if which != "config" else value
        manifest = value if which == "manifest" else None
        index = {"schemaVersion": 2, "manifests": other} if which == "index" else None
        path = _layout(tmp, manifest, config, index)
        before = snapshot(tmp)
        try:
            image = read_oci_layout(path)
            flatten(image, limits=SMALL)
        finally:
            assert snapshot(tmp) == before


@BOUNDED
@given(mutations, st.sampled_from(["manifest", "config", "index"]))
def test_layout_documents_mutated(mutation: tuple[Any, Any], which: str) -> None:
    raw = tar_bytes([Entry("f", b"x"), Entry("d", kind="dir"), Entry("d/.wh.f")])
    blob = gzip.compress(raw, mtime=0)
    with guarded() as tmp:
        path = raw_layout(tmp / "img", config_json([sha(raw)]), [(blob, "gzip")])
        index = json.loads((path / "index.json").read_text())
        target = {
            "index": path / "index.json",
            "manifest": path / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1],
        }.get(which)
        if target is None:
            manifest = json.loads(
                (path / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]).read_text()
            )
            target = path / "blobs/sha256" / manifest["config"]["digest"].split(":")[1]
        target.write_bytes(mutate(target.read_bytes(), *mutation))
        before = snapshot(tmp)
        try:
            flatten(read_oci_layout(path), limits=SMALL)
        finally:
            assert snapshot(tmp) == before


@BOUNDED
@given(json_values, st.dictionaries(st.text(max_size=20), st.binary(max_size=64), max_size=3))
def test_docker_archives(manifest: Any, members: dict[str, bytes]) -> None:
    with guarded() as tmp:
        path = tmp / "img.tar"
        with tarfile.open(path, "w") as tar:
            for name, data in {"manifest.json": json.dumps(manifest).encode(), **members}.items():
                if not name or "\0" in name:
                    continue
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
        before = snapshot(tmp)
        try:
            flatten(read_docker_archive(path), limits=SMALL)
        finally:
            assert snapshot(tmp) == before


@BOUNDED
@given(json_values)
def test_image_configs(value: Any) -> None:
    with guarded():
        check_config(value if isinstance(value, dict) else {"config": value}, "config")


@BOUNDED
@given(st.binary(max_size=512) | st.text(max_size=512).map(str.encode), st.integers(0, 5000))
def test_json_parsing(data: bytes, depth: int) -> None:
    nested = b"[" * depth + data + b"]" * depth
    with guarded():
        parse_json(nested, "doc")
        parse_json_object(data, "doc")
