"""Bad input and bad networks: unknown names, tampered blobs, dropped connections."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.registry import ImageMaker, Registry

from torchslim.cache import BlobStore
from torchslim.errors import BuildError, IntegrityError, NetworkError
from torchslim.oci.registry import RegistryClient, push_image, read_registry_image

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_host_logins")]

BIG = 3 << 20  # incompressible bytes: the gzip layer stays about this size


class DroppingProxy:
    """A loopback TCP proxy that cuts the connection once ``drop_after`` client bytes passed.

    Counts bytes from all clients together; the connection that crosses the
    mark is reset on both sides, once (or ``times`` times).
    """

    def __init__(self, upstream: str, drop_after: int, times: int = 1, busy: int = 0) -> None:
        host, port = upstream.rsplit(":", 1)
        self.busy = busy  # answer this many connections with 503 Service Unavailable
        self.upstream = (host, int(port))
        self.drop_after = drop_after
        self.times = times
        self.sent = 0
        self.drops = 0
        self._lock = threading.Lock()
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._srv.getsockname()[1]}"
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._srv.accept()
            except OSError:
                return
            if self.busy > 0:
                self.busy -= 1
                self._unavailable(client)
                continue
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _unavailable(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head and (data := client.recv(65536)):
            head += data
        client.sendall(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        client.close()

    def _cut(self, *socks: socket.socket) -> None:
        for s in socks:
            try:
                s.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                s.close()
            except OSError:
                pass

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while data := src.recv(65536):
                if upstream:
                    with self._lock:
                        self.sent += len(data)
                        drop = self.drops < self.times and self.sent > self.drop_after
                        if drop:
                            self.drops += 1
                            self.sent = 0
                    if drop:
                        self._cut(src, dst)
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop = True
        self._srv.close()


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
