"""Each layer's SBOM metadata, kept by layer digest: a second read opens no layer."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import pytest
from support.sbom import make_rootfs

from torchslim.cache import BlobStore
from torchslim.oci.empty import empty_image
from torchslim.oci.image import Image
from torchslim.oci.layer import Layer, write_layer_from_dir
from torchslim.oci.mutate import append_layers
from torchslim.sbom.layermeta import DirectoryMetaStore, meta_from_bytes, meta_to_bytes
from torchslim.sbom.tree import LayerMeta, tree_from_image


class _Counting:
    """An image that counts layer opens (and can refuse them)."""

    def __init__(self, image: Image) -> None:
        self.image = image
        self.opened = 0
        self.refuse = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.image, name)

    def open_layer(self, layer: Layer) -> BinaryIO:
        if self.refuse:
            raise AssertionError(f"layer {layer.digest} read again")
        self.opened += 1
        return self.image.open_layer(layer)


@pytest.fixture
def image(tmp_path: Path) -> Image:
    """The SBOM test rootfs as one layer, then a layer that deletes and replaces files."""
    store = BlobStore(tmp_path / "blobs")
    lower = write_layer_from_dir(make_rootfs(tmp_path / "root"), store)
    upper_root = tmp_path / "upper"
    status = upper_root / "var/lib/dpkg/status.d"
    status.mkdir(parents=True)
    (status / ".wh.zlib1g").write_text("")
    (upper_root / "etc").mkdir()
    (upper_root / "etc/os-release").write_text('ID=debian\nVERSION_ID="13"\n')  # a file over a link
    (upper_root / "usr/share/doc/libncursesw6").mkdir(parents=True)  # a directory over a link
    upper = write_layer_from_dir(upper_root, store)
    return append_layers(empty_image(), [(lower, store, "root"), (upper, store, "edit")])


def test_meta_round_trips_and_rejects_other_formats() -> None:
    meta = LayerMeta(
        files={"a/METADATA": b"\x00\xffbytes"},
        links={"l": "../x"},
        hardlinks={"h": "a/METADATA"},
        whiteouts=["gone"],
        opaque=["dir"],
        others=["usr", "usr/bin/python3"],
    )
    assert meta_from_bytes(meta_to_bytes(meta)) == meta
    assert meta_from_bytes(b"not zstd") is None


def test_a_stored_tree_is_the_tree_and_reads_each_layer_once(image: Image, tmp_path: Path) -> None:
    plain = tree_from_image(image)
    assert "var/lib/dpkg/status.d/zlib1g" not in plain.files  # the whiteout applied
    assert plain.read_text("etc/os-release") == 'ID=debian\nVERSION_ID="13"\n'
    assert "usr/share/doc/libncursesw6" not in plain.links
    store = DirectoryMetaStore(tmp_path / "metas")
    counting = _Counting(image)
    first = tree_from_image(counting, store)  # type: ignore[arg-type]
    assert counting.opened == 2 and len(list((tmp_path / "metas").iterdir())) == 2
    counting.refuse = True
    again = tree_from_image(counting, store)  # type: ignore[arg-type]
    assert first == plain and again == plain
