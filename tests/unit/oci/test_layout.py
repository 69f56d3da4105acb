"""OCI layout sink and source: round trip, refusal, atomicity, integrity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.images import ImageFactory, make_tree

from torchslim.cache import BlobStore
from torchslim.errors import BuildError, IntegrityError, OutputExistsError
from torchslim.oci.empty import empty_image
from torchslim.oci.layer import write_layer_from_dir
from torchslim.oci.layout import read_oci_layout, write_oci_layout
from torchslim.oci.media import REF_NAME_ANNOTATION
from torchslim.oci.mutate import append_layers, with_config


@pytest.fixture
def written(tmp_path: Path, image_factory: ImageFactory) -> tuple[Path, object]:
    img = image_factory(make_tree(tmp_path / "t"))
    dest = tmp_path / "out" / "layout"
    write_oci_layout(img, dest, ref_name="v1")
    return dest, img


def test_round_trip(written: tuple[Path, object], store: BlobStore) -> None:
    dest, img = written
    assert json.loads((dest / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((dest / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["annotations"] == {REF_NAME_ANNOTATION: "v1"}
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    back = read_oci_layout(dest, "v1")
    assert back.digest() == img.digest() == entry["digest"]  # type: ignore[attr-defined]
    assert back.config_bytes() == img.config_bytes()  # type: ignore[attr-defined]
    assert back.layers() == img.layers()  # type: ignore[attr-defined]
    (layer,) = back.layers()
    with back.open_layer(layer) as f:
        assert f.read() == store.read_bytes(layer.digest)
    assert read_oci_layout(dest).digest() == back.digest()  # only one image: no ref needed
    with pytest.raises(BuildError, match="no image named 'v2'"):
        read_oci_layout(dest, "v2")
    assert not list(dest.parent.glob(".*tmp*"))


def test_mutating_a_layout_image_keeps_its_layers(
    written: tuple[Path, object], tmp_path: Path, store: BlobStore
) -> None:
    dest, _ = written
    base = read_oci_layout(dest, "v1")
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "x").write_text("x")
    extra = write_layer_from_dir(tmp_path / "extra", store)
    img = with_config(append_layers(base, [(extra, store, "extra")]), cmd=["/x"])
    out = tmp_path / "second"
    write_oci_layout(img, out, ref_name="v2")
    back = read_oci_layout(out)
    assert [lay.digest for lay in back.layers()] == [base.layers()[0].digest, extra.digest]
    assert back.config()["config"]["Cmd"] == ["/x"]
    for lay in back.layers():
        with back.open_layer(lay) as f:
            f.read()


def test_existing_output_is_refused_unless_forced(
    written: tuple[Path, object], tmp_path: Path
) -> None:
    dest, _ = written
    with pytest.raises(OutputExistsError, match="exists; pass --force to replace it"):
        write_oci_layout(empty_image(), dest, ref_name="e")
    write_oci_layout(empty_image(), dest, ref_name="e", force=True)
    assert read_oci_layout(dest, "e").layers() == []
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(OutputExistsError):
        write_oci_layout(empty_image(), afile)
    write_oci_layout(empty_image(), afile, force=True)
    assert afile.is_dir()


def test_interrupted_write_leaves_nothing(tmp_path: Path, store: BlobStore) -> None:
    layer = write_layer_from_dir(make_tree(tmp_path / "t"), store)
    corrupt = tmp_path / "corrupt.blob"
    data = bytearray(store.read_bytes(layer.digest))
    data[-20] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    img = append_layers(empty_image(), [(layer, corrupt, "x")])
    dest = tmp_path / "never"
    with pytest.raises(IntegrityError):
        write_oci_layout(img, dest)
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "corrupt.blob", "t"]


def test_missing_and_corrupt_blobs(written: tuple[Path, object], tmp_path: Path) -> None:
    dest, img = written
    (layer,) = img.layers()  # type: ignore[attr-defined]
    blob = dest / "blobs" / "sha256" / layer.digest.split(":")[1]
    copy = tmp_path / "copy"
    shutil.copytree(dest, copy)
    cblob = copy / blob.relative_to(dest)
    raw = bytearray(cblob.read_bytes())
    raw[-1] ^= 0xFF
    cblob.write_bytes(bytes(raw))
    opened = read_oci_layout(copy)  # lazy: layer bytes are not read yet
    with pytest.raises(IntegrityError, match="content is sha256:"), opened.open_layer(layer) as f:
        f.read()
    cblob.unlink()
    with pytest.raises(IntegrityError, match="missing"):
        read_oci_layout(copy)
    cfg = copy / "blobs" / "sha256" / img.manifest()["config"]["digest"].split(":")[1]  # type: ignore[attr-defined]
    cfg.write_text("{}")
    with pytest.raises(IntegrityError, match="config"):
        read_oci_layout(copy)
    with pytest.raises(BuildError, match="not an OCI image layout"):
        read_oci_layout(tmp_path)
