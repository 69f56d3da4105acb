"""Push to and read from a real docker-registry: skipping, mounting, indexes, skopeo interop."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from support.registry import ImageMaker, Registry

from torchslim.cache import BlobStore
from torchslim.config import Platform
from torchslim.errors import BuildError
from torchslim.oci.layout import read_oci_layout
from torchslim.oci.mutate import with_config
from torchslim.oci.registry import push_image, push_index, read_registry_image

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_host_logins")]

BASE = ({"usr/lib/libbase.so": 200_000}, {"opt/torch/lib.so": 300_000})


def _tag_digest(reg: Registry, repo: str, tag: str) -> str | None:
    resp = httpx.head(
        f"http://{reg.host}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    return resp.headers.get("docker-content-digest") if resp.status_code == 200 else None


def test_push_then_repush_uploads_nothing(
    registry: Registry, repo: str, make_image: ImageMaker
) -> None:
    img = make_image(*BASE, {"app/main.py": b"print('hi')\n"})
    sent: list[tuple[str, int, int]] = []
    first = push_image(
        img, f"{registry.host}/{repo}:v1", tls_verify=False, progress=lambda *a: sent.append(a)
    )
    sizes = {layer.digest: layer.descriptor.size for layer in img.layers()}
    assert {d for d, _ in first.uploaded} >= set(sizes)
    assert first.skipped == [] and first.mounted == []
    assert first.manifest_digest == img.digest()
    assert _tag_digest(registry, repo, "v1") == img.digest()
    # Progress reports every byte of every uploaded blob, ending at the total.
    finals = {d: (s, t) for d, s, t in sent}
    assert all(finals[d] == (size, size) for d, size in first.uploaded if size)

    again = push_image(img, f"docker://{registry.host}/{repo}:v1", tls_verify=False)
    assert again.uploaded == [] and again.bytes_uploaded == 0
    assert len(again.skipped) == len(first.uploaded)
    assert again.manifest_digest == first.manifest_digest


def test_second_service_uploads_only_its_layers(
    registry: Registry, repo: str, make_image: ImageMaker
) -> None:
    base = make_image(*BASE)
    svc_a = make_image({"app/a.py": 5_000}, base=base)
    svc_b = make_image({"app/b.py": 7_000}, {"model/b.bin": 50_000}, base=base)
    push_image(svc_a, f"{registry.host}/{repo}:a", tls_verify=False)
    res = push_image(svc_b, f"{registry.host}/{repo}:b", tls_verify=False)
    base_digests = {layer.digest for layer in base.layers()}
    own = [layer for layer in svc_b.layers() if layer.digest not in base_digests]
    assert len(own) == 2
    # Its own layers and its config, nothing of the base.
    assert {d for d, _ in res.uploaded} == {layer.digest for layer in own} | {
        svc_b.manifest()["config"]["digest"]
    }
    assert {d for d, _ in res.skipped} == base_digests
    assert res.bytes_uploaded < sum(layer.descriptor.size for layer in base.layers())


def test_cross_repository_mount(registry: Registry, repo: str, make_image: ImageMaker) -> None:
    base = make_image(*BASE)
    push_image(base, f"{registry.host}/{repo}-base:1", tls_verify=False)
    svc = make_image({"app/x.py": 3_000}, base=base)
    res = push_image(
        svc, f"{registry.host}/{repo}-svc:1", tls_verify=False, mount_from=[f"{repo}-base"]
    )
    assert {d for d, _ in res.mounted} == {layer.digest for layer in base.layers()}
    assert res.skipped == []
    assert _tag_digest(registry, f"{repo}-svc", "1") == svc.digest()
    # The first source lacks the blobs, the second has them: still mounted, not uploaded.
    res2 = push_image(
        svc,
        f"{registry.host}/{repo}-svc2:1",
        tls_verify=False,
        mount_from=[f"{repo}-nothing-here", f"{repo}-base"],
    )
    assert {d for d, _ in res2.mounted} == {layer.digest for layer in base.layers()}
    assert {d for d, _ in res2.uploaded} == {
        svc.layers()[-1].digest,
        svc.manifest()["config"]["digest"],
    }


def test_base_from_registry_is_mounted_without_download(
    registry: Registry, repo: str, make_image: ImageMaker, tmp_path: Path
) -> None:
    """A service FROM a registry base, pushed to another repo: base blobs mount, never move."""
    base = make_image(*BASE)
    push_image(base, f"{registry.host}/{repo}-base:1", tls_verify=False)
    empty_store = BlobStore(tmp_path / "empty-cache")
    pulled = read_registry_image(
        f"{registry.host}/{repo}-base:1", tls_verify=False, store=empty_store
    )
    assert pulled.digest() == base.digest()
    svc = make_image({"app/y.py": 2_000}, base=pulled)
    res = push_image(svc, f"{registry.host}/{repo}-svc:1", tls_verify=False)
    assert {d for d, _ in res.mounted} == {layer.digest for layer in base.layers()}
    assert not any(empty_store.has(layer.digest) for layer in base.layers())


def test_read_back_matches_and_layers_verify(
    registry: Registry, repo: str, make_image: ImageMaker, tmp_path: Path
) -> None:
    img = make_image(*BASE, {"app/main.py": b"x = 1\n"})
    push_image(img, f"{registry.host}/{repo}:rt", tls_verify=False)
    cache = BlobStore(tmp_path / "fresh")
    got = read_registry_image(f"{registry.host}/{repo}:rt", tls_verify=False, store=cache)
    assert got.digest() == img.digest()
    assert got.manifest_bytes() == img.manifest_bytes()
    assert got.config_bytes() == img.config_bytes()
    assert got.reference.digest == img.digest()
    assert [layer.diff_id for layer in got.layers()] == [layer.diff_id for layer in img.layers()]
    for layer in got.layers():
        with got.open_layer(layer) as f, img.open_layer(layer) as g:
            assert f.read() == g.read()
        assert cache.has(layer.digest)
    # Pinned by digest resolves to the same image.
    by_digest = read_registry_image(
        f"{registry.host}/{repo}@{img.digest()}", tls_verify=False, store=cache
    )
    assert by_digest.digest() == img.digest()


def _skopeo() -> str:
    exe = shutil.which("skopeo")
    if exe is None:
        pytest.skip("skopeo is not installed")
    return exe


def test_skopeo_inspect_and_copy_back(
    registry: Registry, repo: str, make_image: ImageMaker, tmp_path: Path
) -> None:
    skopeo = _skopeo()
    img = make_image(*BASE)
    push_image(img, f"{registry.host}/{repo}:sk", tls_verify=False)
    src = f"docker://{registry.host}/{repo}:sk"
    out = subprocess.run(
        [skopeo, "inspect", "--tls-verify=false", src], capture_output=True, text=True, check=True
    )
    info = json.loads(out.stdout)
    assert info["Digest"] == img.digest()
    assert info["Architecture"] == "amd64"
    assert info["Layers"] == [layer.digest for layer in img.layers()]
    dest = tmp_path / "layout"
    subprocess.run(
        [skopeo, "copy", "--src-tls-verify=false", src, f"oci:{dest}:sk"],
        capture_output=True,
        check=True,
    )
    copied = read_oci_layout(dest, "sk")
    assert copied.digest() == img.digest()


def test_multi_platform_index(
    registry: Registry, repo: str, make_image: ImageMaker, tmp_path: Path
) -> None:
    amd = make_image({"bin/app": 4_000}, arch="amd64")
    arm = make_image({"bin/app": 4_001}, arch="arm64")
    res = push_index([amd, arm], f"{registry.host}/{repo}:multi", tls_verify=False)
    resp = httpx.get(
        f"http://{registry.host}/v2/{repo}/manifests/multi",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
    )
    assert resp.headers["docker-content-digest"] == res.manifest_digest
    index = resp.json()
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    store = BlobStore(tmp_path / "c")
    ref = f"{registry.host}/{repo}:multi"
    assert read_registry_image(ref, tls_verify=False, store=store).digest() == amd.digest()
    arm64 = Platform.parse("linux/arm64")
    got_arm = read_registry_image(ref, platform=arm64, tls_verify=False, store=store)
    assert got_arm.digest() == arm.digest()
    with pytest.raises(BuildError, match=r"no linux/s390x image.*linux/amd64, linux/arm64") as ei:
        read_registry_image(ref, platform=Platform("linux", "s390x"), tls_verify=False, store=store)
    assert "\n" not in str(ei.value)
    if shutil.which("skopeo"):
        out = subprocess.run(
            [_skopeo(), "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(out.stdout)["mediaType"] == "application/vnd.oci.image.index.v1+json"


def test_base_for_another_architecture(
    registry: Registry, repo: str, make_image: ImageMaker
) -> None:
    arm = make_image({"bin/app": 1_000}, arch="arm64")
    push_image(arm, f"{registry.host}/{repo}:arm", tls_verify=False)
    with pytest.raises(BuildError, match=r"is a linux/arm64 image but linux/amd64 was asked") as ei:
        read_registry_image(f"{registry.host}/{repo}:arm", tls_verify=False)
    assert "\n" not in str(ei.value)


def test_config_edit_only_pushes_config(
    registry: Registry, repo: str, make_image: ImageMaker
) -> None:
    img = make_image(*BASE)
    push_image(img, f"{registry.host}/{repo}:1", tls_verify=False)
    edited = with_config(img, env={"MODE": "prod"})
    res = push_image(edited, f"{registry.host}/{repo}:2", tls_verify=False)
    assert [d for d, _ in res.uploaded] == [edited.manifest()["config"]["digest"]]
    assert _tag_digest(registry, repo, "1") == img.digest()
    assert _tag_digest(registry, repo, "2") == edited.digest()
