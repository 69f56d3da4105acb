"""empty + mutate: canonical configs, stable digests, base bytes untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.images import ImageFactory, make_tree

from torchslim.cache import BlobStore
from torchslim.errors import BuildError, IntegrityError
from torchslim.oci.empty import empty_image
from torchslim.oci.image import Image, canonical_json, layer_by_diff_id
from torchslim.oci.layer import write_layer_from_dir
from torchslim.oci.media import OCI_CONFIG, OCI_MANIFEST
from torchslim.oci.mutate import Healthcheck, append_layers, rfc3339, with_config


def test_empty_image_is_minimal_and_canonical() -> None:
    img = empty_image()
    cfg = img.config()
    assert cfg["architecture"] == "amd64" and cfg["os"] == "linux"
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": []}
    assert img.layers() == []
    assert img.config_bytes() == canonical_json(cfg)
    assert str(img.platform) == "linux/amd64"
    assert str(empty_image("arm64", variant="v8").platform) == "linux/arm64/v8"
    m = img.manifest()
    assert m["mediaType"] == OCI_MANIFEST and m["config"]["mediaType"] == OCI_CONFIG
    assert img.digest() == empty_image().digest()


def test_same_inputs_same_digest_and_edits_change_it(
    tmp_path: Path, image_factory: ImageFactory
) -> None:
    root = make_tree(tmp_path / "t")
    a, b = image_factory(root), image_factory(root)
    assert a.manifest_bytes() == b.manifest_bytes() and a.digest() == b.digest()
    c = image_factory(root, cmd=["/bin/other"])
    assert c.digest() != a.digest()
    assert c.layers() == a.layers()
    for img in (a, c):
        assert img.config_bytes() == canonical_json(json.loads(img.config_bytes()))
        assert img.manifest_bytes() == canonical_json(img.manifest())


def test_append_layers_extends_rootfs_history_and_manifest(
    tmp_path: Path, store: BlobStore
) -> None:
    l1 = write_layer_from_dir(make_tree(tmp_path / "one"), store)
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "app.py").write_text("print(1)\n")
    l2 = write_layer_from_dir(tmp_path / "two", store, prefix="app", compression="zstd")
    stamp = rfc3339(1_700_000_000)
    assert stamp == "2023-11-14T22:13:20Z"
    base = append_layers(empty_image(), [(l1, store, "base")], created=stamp)
    img = append_layers(base, [(l2, store.path(l2.digest), "app")], created=stamp)
    cfg = img.config()
    assert cfg["rootfs"]["diff_ids"] == [l1.diff_id, l2.diff_id]
    assert cfg["history"] == [
        {"created": stamp, "created_by": "base"},
        {"created": stamp, "created_by": "app"},
    ]
    assert [d["digest"] for d in img.manifest()["layers"]] == [l1.digest, l2.digest]
    assert (
        img.manifest()["config"]["digest"]
        == "sha256:" + __import__("hashlib").sha256(img.config_bytes()).hexdigest()
    )
    assert layer_by_diff_id(img, l2.diff_id) == l2
    with img.open_layer(l2) as f:
        assert f.read() == store.read_bytes(l2.digest)
    # The base is unchanged by mutation.
    assert base.config()["rootfs"]["diff_ids"] == [l1.diff_id]
    with pytest.raises(BuildError):
        layer_by_diff_id(img, "sha256:" + "f" * 64)


def test_with_config_fields(image_factory: ImageFactory, tmp_path: Path) -> None:
    img = image_factory(make_tree(tmp_path / "t"))
    img2 = with_config(
        img,
        env=["PATH=/usr/bin", "LANG=C.UTF-8"],
        entrypoint=["/bin/tool"],
        working_dir="/app",
        exposed_ports=[8000, "9000/udp"],
        labels={"a": "b"},
        author="me",
    )
    c = img2.config()["config"]
    assert c["Env"] == ["PATH=/usr/bin", "LANG=C.UTF-8"]
    assert c["Entrypoint"] == ["/bin/tool"] and "Cmd" not in c  # Dockerfile semantics
    assert c["WorkingDir"] == "/app" and c["User"] == "1000:1000"
    assert c["ExposedPorts"] == {"8000/tcp": {}, "9000/udp": {}}
    assert c["Labels"] == {"org.opencontainers.image.title": "test", "a": "b"}
    hc = {
        "Test": ["CMD", "/bin/tool", "health"],
        "Interval": 5_000_000_000,
        "Timeout": 30_000_000_000,
        "StartPeriod": 0,
        "Retries": 2,
    }
    assert c["Healthcheck"] == hc
    assert img2.config()["container_config"]["Healthcheck"] == hc  # what podman 4 reads
    assert img2.config()["author"] == "me"
    assert img2.config()["created"] == "2024-01-01T00:00:00Z"
    with pytest.raises(BuildError, match="healthcheck"):
        Healthcheck(("curl", "x")).to_config()


def test_mutated_layer_with_wrong_bytes_fails_integrity(tmp_path: Path, store: BlobStore) -> None:
    layer = write_layer_from_dir(make_tree(tmp_path / "t"), store)
    bad = tmp_path / "bad.blob"
    bad.write_bytes(b"not the layer")
    img: Image = append_layers(empty_image(), [(layer, bad, "x")])
    with pytest.raises(IntegrityError), img.open_layer(layer) as f:
        f.read()
    gone = append_layers(empty_image(), [(layer, BlobStore(tmp_path / "empty"), "x")])
    with pytest.raises(IntegrityError, match="not in the blob store"):
        gone.open_layer(layer)


def test_manifest_annotations_are_set_kept_and_not_inherited(
    tmp_path: Path, image_factory: ImageFactory
) -> None:
    from torchslim.oci.layout import read_oci_layout, write_oci_layout
    from torchslim.oci.mutate import with_annotations

    plain = image_factory(make_tree(tmp_path / "t"))
    marked = with_annotations(plain, {"org.opencontainers.image.base.name": "debian:bookworm"})
    assert marked.manifest()["annotations"] == {
        "org.opencontainers.image.base.name": "debian:bookworm"
    }
    assert "annotations" not in plain.manifest()
    assert marked.config_bytes() == plain.config_bytes() and marked.digest() != plain.digest()
    # Later edits keep them; a second call merges.
    edited = with_annotations(with_config(marked, cmd=["/bin/x"]), {"a": "1"})
    assert set(edited.manifest()["annotations"]) == {"org.opencontainers.image.base.name", "a"}
    # An image read back has them in its manifest; one built on it does not inherit them
    # (they describe that image, not what is built on it).
    write_oci_layout(edited, tmp_path / "layout", ref_name="v1")
    stored = read_oci_layout(tmp_path / "layout", "v1")
    assert stored.digest() == edited.digest()
    assert "annotations" not in with_config(stored, cmd=["/bin/y"]).manifest()
