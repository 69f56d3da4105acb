"""docker-archive sink and source, including the legacy ``<id>/layer.tar`` form."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from support.images import ImageFactory, make_tree

from torchslim.cache import BlobStore
from torchslim.errors import BuildError, IntegrityError, OutputExistsError
from torchslim.oci.archive import normalize_ref, read_docker_archive, write_docker_archive
from torchslim.oci.image import Image
from torchslim.oci.media import DOCKER_MANIFEST, OCI_LAYER_TAR


def _files(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}  # type: ignore[union-attr]


def _read_all(img: Image) -> list[bytes]:
    out = []
    for layer in img.layers():
        with img.open_layer(layer) as f:
            out.append(f.read())
    return out


def test_gzip_archive_is_docker_save_and_oci_layout(
    tmp_path: Path, image_factory: ImageFactory
) -> None:
    img = image_factory(make_tree(tmp_path / "t"))
    dest = tmp_path / "img.tar"
    write_docker_archive(img, dest, repo_tags=["app:v1", "ghcr.io/o/app:latest"])
    files = _files(dest)
    (entry,) = json.loads(files["manifest.json"])
    cfg_hex = hashlib.sha256(img.config_bytes()).hexdigest()
    assert entry["Config"] == f"blobs/sha256/{cfg_hex}"
    assert entry["RepoTags"] == ["app:v1", "ghcr.io/o/app:latest"]
    assert entry["Layers"] == [f"blobs/sha256/{lay.digest[7:]}" for lay in img.layers()]
    assert files[entry["Config"]] == img.config_bytes()
    index = json.loads(files["index.json"])
    names = [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]]
    assert names == ["docker.io/library/app:v1", "ghcr.io/o/app:latest"]
    assert index["manifests"][0]["mediaType"] == DOCKER_MANIFEST
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    back = read_docker_archive(dest)
    assert back.config_bytes() == img.config_bytes()
    assert [lay.digest for lay in back.layers()] == [lay.digest for lay in img.layers()]
    assert [lay.diff_id for lay in back.layers()] == [lay.diff_id for lay in img.layers()]
    assert _read_all(back) == _read_all(img)
    assert back.manifest()["mediaType"] == DOCKER_MANIFEST
    assert read_docker_archive(dest, "ghcr.io/o/app").digest() == back.digest()
    with pytest.raises(BuildError, match="no image tagged"):
        read_docker_archive(dest, "other:1")


def test_archive_bytes_are_deterministic(tmp_path: Path, image_factory: ImageFactory) -> None:
    img = image_factory(make_tree(tmp_path / "t"))
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    write_docker_archive(img, a, repo_tags=["x:1"])
    write_docker_archive(image_factory(make_tree(tmp_path / "t2", mtime=5)), b, repo_tags=["x:1"])
    assert a.read_bytes() == b.read_bytes()


def test_zstd_archive_has_only_docker_manifest(tmp_path: Path, image_factory: ImageFactory) -> None:
    img = image_factory(make_tree(tmp_path / "t"), compression="zstd")
    dest = tmp_path / "z.tar"
    write_docker_archive(img, dest, repo_tags=["z:1"])
    files = _files(dest)
    assert "index.json" not in files and "manifest.json" in files
    back = read_docker_archive(dest)
    assert back.digest() == img.digest()  # manifest re-synthesized, same canonical bytes
    assert _read_all(back) == _read_all(img)


def test_refuses_existing_and_interrupted_write_leaves_nothing(
    tmp_path: Path, image_factory: ImageFactory, store: BlobStore
) -> None:
    img = image_factory(make_tree(tmp_path / "t"))
    dest = tmp_path / "img.tar"
    dest.write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="pass --force"):
        write_docker_archive(img, dest, repo_tags=["a:1"])
    assert dest.read_bytes() == b"old"
    # Corrupt the cached layer: the write fails and the old file stays.
    (layer,) = img.layers()
    p = store.path(layer.digest)
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        write_docker_archive(img, dest, repo_tags=["a:1"], force=True)
    assert dest.read_bytes() == b"old"
    assert not [q for q in tmp_path.iterdir() if "tmp" in q.name]


def _legacy_archive(path: Path, layer_tars: list[bytes], tag: str) -> bytes:
    """What ``docker save`` wrote before v25: <id>/layer.tar, <hex>.json, manifest.json."""
    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in layer_tars]
    diff_ids.append(diff_ids[0])  # the first layer again, stored as a symlink
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    cfg_name = hashlib.sha256(config).hexdigest() + ".json"
    names = []
    with tarfile.open(path, "w") as tar:
        for i, data in enumerate(layer_tars):
            ti = tarfile.TarInfo(f"{i:064x}/layer.tar")
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
            names.append(ti.name)
        # A duplicate layer saved as a symlink, as docker does.
        link = tarfile.TarInfo("f" * 64 + "/layer.tar")
        link.type = tarfile.SYMTYPE
        link.linkname = f"../{0:064x}/layer.tar"
        tar.addfile(link)
        names.append(link.name)
        for name, blob in (
            (cfg_name, config),
            (
                "manifest.json",
                json.dumps([{"Config": cfg_name, "RepoTags": [tag], "Layers": names}]).encode(),
            ),
        ):
            ti = tarfile.TarInfo(name)
            ti.size = len(blob)
            tar.addfile(ti, io.BytesIO(blob))
    return config


def _layer_tar(content: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ti = tarfile.TarInfo("f.txt")
        ti.size = len(content)
        tar.addfile(ti, io.BytesIO(content))
    return buf.getvalue()


def test_reads_legacy_docker_save(tmp_path: Path) -> None:
    tars = [_layer_tar(b"one"), _layer_tar(b"two")]
    dest = tmp_path / "legacy.tar"
    config = _legacy_archive(dest, tars, "old:1")
    img = read_docker_archive(dest)
    assert img.config_bytes() == config
    assert [lay.descriptor.media_type for lay in img.layers()] == [OCI_LAYER_TAR] * 3
    assert [lay.digest for lay in img.layers()] == [lay.diff_id for lay in img.layers()]
    assert _read_all(img) == [*tars, tars[0]]
    assert img.manifest()["layers"][1]["size"] == len(tars[1])


def test_legacy_layer_with_wrong_content_fails(tmp_path: Path) -> None:
    dest = tmp_path / "legacy.tar"
    _legacy_archive(dest, [_layer_tar(b"one"), _layer_tar(b"two")], "old:1")
    raw = bytearray(dest.read_bytes())
    at = raw.find(b"one")
    raw[at : at + 3] = b"ONE"
    dest.write_bytes(bytes(raw))
    img = read_docker_archive(dest)
    with pytest.raises(IntegrityError), img.open_layer(img.layers()[0]) as f:
        f.read()


def test_rejects_compressed_or_foreign_files(tmp_path: Path) -> None:
    gz = tmp_path / "x.tar.gz"
    gz.write_bytes(gzip.compress(b"x" * 1000))
    with pytest.raises(BuildError, match="compressed"):
        read_docker_archive(gz)
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tar:
        tar.add(make_tree(tmp_path / "t") / "etc", arcname="etc")
    with pytest.raises(BuildError, match="no manifest.json"):
        read_docker_archive(plain)


def test_normalize_ref() -> None:
    assert normalize_ref("app") == "docker.io/library/app:latest"
    assert normalize_ref("app:v1") == "docker.io/library/app:v1"
    assert normalize_ref("me/app:v1") == "docker.io/me/app:v1"
    assert normalize_ref("localhost:5000/app:v1") == "localhost:5000/app:v1"
    assert normalize_ref("localhost/app") == "localhost/app:latest"
