"""Bad input and bad networks: unknown names, tampered blobs, dropped connections."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.proxy import DroppingProxy
from support.registry import ImageMaker, Registry

from torchslim.cache import BlobStore
from torchslim.errors import BuildError, IntegrityError, NetworkError
from torchslim.oci.registry import RegistryClient, push_image, read_registry_image

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_host_logins")]

BIG = 3 << 20  # incompressible bytes: the gzip layer stays about this size


ProxyFactory = Callable[..., DroppingProxy]


@pytest.fixture
def proxy_factory(registry: Registry) -> Iterator[ProxyFactory]:
    """``proxy_factory(drop_after, times=1, busy=0)``: a proxy in front of the session registry."""
    made: list[DroppingProxy] = []

    def make(drop_after: int, times: int = 1, busy: int = 0) -> DroppingProxy:
        proxy = DroppingProxy(registry.host, drop_after, times, busy)
        made.append(proxy)
        return proxy

    yield make
    for p in made:
        p.close()


def _tag(reg: Registry, repo: str, tag: str) -> str | None:
    resp = httpx.head(
        f"http://{reg.host}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    return resp.headers.get("docker-content-digest") if resp.status_code == 200 else None


def test_unknown_tag_and_repository(registry: Registry, repo: str, make_image: ImageMaker) -> None:
    img = make_image({"a": 100})
    push_image(img, f"{registry.host}/{repo}:there", tls_verify=False)
    with pytest.raises(BuildError, match=r":nope not found \(MANIFEST_UNKNOWN") as ei:
        read_registry_image(f"{registry.host}/{repo}:nope", tls_verify=False)
    assert "\n" not in str(ei.value) and "skopeo list-tags" in str(ei.value)
    with pytest.raises(BuildError, match=r"-absent:1 not found \("):
        read_registry_image(f"{registry.host}/{repo}-absent:1", tls_verify=False)


def test_unreachable_registry_fails_cleanly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = RegistryClient(f"127.0.0.1:{port}", tls_verify=False, retries=1, backoff_s=0.01)
    with pytest.raises(NetworkError, match=r"ConnectError.*after 2 attempt") as ei:
        read_registry_image(f"127.0.0.1:{port}/x/y:1", client=client)
    assert "\n" not in str(ei.value)


def test_tampered_layer_blob_is_refused(
    registry: Registry, repo: str, make_image: ImageMaker, tmp_path: Path
) -> None:
    img = make_image({"good": 20_000})
    push_image(img, f"{registry.host}/{repo}:1", tls_verify=False)
    layer = img.layers()[0]
    data = registry.blob_data(layer.digest)
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, different bytes
    data.write_bytes(bytes(raw))
    cache = BlobStore(tmp_path / "c")
    got = read_registry_image(f"{registry.host}/{repo}:1", tls_verify=False, store=cache)
    with pytest.raises(IntegrityError, match=r"digest mismatch") as ei:
        got.open_layer(got.layers()[0])
    assert "\n" not in str(ei.value)
    assert not cache.has(layer.digest)
    assert not any(p.name.startswith(".incoming") for p in cache.root.iterdir())


def test_tampered_config_is_refused(registry: Registry, repo: str, make_image: ImageMaker) -> None:
    img = make_image({"cfg": 100})
    push_image(img, f"{registry.host}/{repo}:1", tls_verify=False)
    path = registry.blob_data(img.manifest()["config"]["digest"])
    path.write_bytes(path.read_bytes().replace(b"amd64", b"arm64"))
    with pytest.raises(IntegrityError, match=r"config: content is sha256:.*expected"):
        read_registry_image(f"{registry.host}/{repo}:1", tls_verify=False)


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_dropped_upload_is_retried(
    registry: Registry,
    repo: str,
    make_image: ImageMaker,
    proxy_factory: ProxyFactory,
    chunked: bool,
) -> None:
    proxy = proxy_factory(drop_after=BIG // 2)
    img = make_image({"small": 1_000}, {"big.bin": BIG})
    client = RegistryClient(proxy.host, tls_verify=False, retries=3, backoff_s=0.01)
    res = push_image(
        img,
        f"{proxy.host}/{repo}:1",
        client=client,
        chunked_threshold=1 << 20 if chunked else 1 << 30,
        chunk_size=1 << 20,
    )
    assert proxy.drops == 1
    assert res.manifest_digest == img.digest()
    assert len(res.uploaded) == 3  # config, small, big: each once in the result
    assert _tag(registry, repo, "1") == img.digest()
    got = read_registry_image(f"{registry.host}/{repo}:1", tls_verify=False)
    for layer in got.layers():
        with got.open_layer(layer) as f:
            f.read()


def test_dropped_upload_without_retries_then_rerun_resumes(
    registry: Registry,
    repo: str,
    make_image: ImageMaker,
    proxy_factory: ProxyFactory,
) -> None:
    old = make_image({"old": 1_000})
    push_image(old, f"{registry.host}/{repo}:1", tls_verify=False)
    # Layers go up in order: small ones first, then the big one, where the line drops.
    img = make_image({"small": 2_000}, {"small2": 3_000}, {"big.bin": BIG})
    proxy = proxy_factory(drop_after=BIG // 2, times=100)
    client = RegistryClient(proxy.host, tls_verify=False, retries=0)
    with pytest.raises(NetworkError, match=r"upload of sha256:\w+ .* failed after 1 attempt") as ei:
        push_image(img, f"{proxy.host}/{repo}:1", client=client)
    msg = str(ei.value)
    assert "\n" not in msg and "re-run the push" in msg
    assert _tag(registry, repo, "1") == old.digest()  # the tag still names the old image
    rerun = push_image(img, f"{registry.host}/{repo}:1", tls_verify=False)
    big = img.layers()[-1]
    assert [d for d, _ in rerun.uploaded] == [big.digest]
    assert {d for d, _ in rerun.skipped} == {
        img.manifest()["config"]["digest"],
        *(layer.digest for layer in img.layers()[:-1]),
    }
    assert _tag(registry, repo, "1") == img.digest()


def test_dropped_connection_on_read_is_retried(
    registry: Registry, repo: str, make_image: ImageMaker, proxy_factory: ProxyFactory
) -> None:
    img = make_image({"r": 1_000})
    push_image(img, f"{registry.host}/{repo}:1", tls_verify=False)
    proxy = proxy_factory(drop_after=0, times=1)
    client = RegistryClient(proxy.host, tls_verify=False, retries=2, backoff_s=0.01)
    got = read_registry_image(f"{proxy.host}/{repo}:1", client=client)
    assert got.digest() == img.digest() and proxy.drops == 1


def test_503_is_retried_then_gives_up_cleanly(
    registry: Registry, repo: str, make_image: ImageMaker, proxy_factory: ProxyFactory
) -> None:
    img = make_image({"s": 1_000})
    proxy = proxy_factory(drop_after=1 << 40, busy=2)
    client = RegistryClient(proxy.host, tls_verify=False, retries=2, backoff_s=0.01)
    assert push_image(img, f"{proxy.host}/{repo}:1", client=client).manifest_digest
    assert proxy.busy == 0
    proxy = proxy_factory(drop_after=1 << 40, busy=10)
    client = RegistryClient(proxy.host, tls_verify=False, retries=2, backoff_s=0.01)
    with pytest.raises(NetworkError, match=r"HTTP 503; retry later") as ei:
        read_registry_image(f"{proxy.host}/{repo}:1", client=client)
    assert "\n" not in str(ei.value)


def test_tls_against_plain_http_registry_says_tls_verify_false(registry: Registry) -> None:
    with pytest.raises(NetworkError, match=r"TLS to .* pass --tls-verify=false") as ei:
        read_registry_image(f"{registry.host}/x/y:1", tls_verify=True)
    assert "\n" not in str(ei.value)


def test_corrupt_local_blob_is_not_pushed_and_tag_stays(
    registry: Registry, repo: str, make_image: ImageMaker, tmp_path: Path
) -> None:
    from torchslim.oci.layout import read_oci_layout, write_oci_layout

    old = make_image({"v1": 500})
    push_image(old, f"{registry.host}/{repo}:1", tls_verify=False)
    img = make_image({"v2": 40_000})
    layout = tmp_path / "layout"
    write_oci_layout(img, layout)
    blob = layout / "blobs/sha256" / img.layers()[0].digest.split(":")[1]
    raw = bytearray(blob.read_bytes())
    raw[100] ^= 0xFF
    blob.write_bytes(bytes(raw))
    with pytest.raises(
        IntegrityError, match=r"layer sha256:\w+: content is sha256:\w+, expected"
    ) as ei:
        push_image(read_oci_layout(layout), f"{registry.host}/{repo}:1", tls_verify=False)
    assert "\n" not in str(ei.value)
    assert _tag(registry, repo, "1") == old.digest()
    assert not registry.blob_data(img.layers()[0].digest).exists()
