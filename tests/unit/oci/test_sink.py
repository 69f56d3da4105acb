"""The written images against the real tools: skopeo, umoci and podman."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from support.images import ImageFactory
from support.registry import ImageMaker, Registry

from torchslim.oci.archive import read_docker_archive, write_docker_archive
from torchslim.oci.layout import read_oci_layout, write_oci_layout

pytestmark = pytest.mark.e2e
Podman = Callable[..., "subprocess.CompletedProcess[str]"]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {name})")
    return path


def _run(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=300)
    assert proc.returncode == 0, f"{' '.join(args)} failed: {proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_skopeo_reads_layout_and_archive(
    tmp_path: Path, static_hello: Path, image_factory: ImageFactory, compression: str
) -> None:
    skopeo = _tool("skopeo")
    img = image_factory(static_hello, compression=compression, cmd=["/bin/hello"])
    layout = tmp_path / "layout"
    archive = tmp_path / "img.tar"
    write_oci_layout(img, layout, ref_name="v1")
    write_docker_archive(img, archive, repo_tags=["localhost/skopeo-test:v1"])
    info = json.loads(_run(skopeo, "inspect", f"oci:{layout}:v1"))
    assert info["Digest"] == img.digest()
    assert info["Layers"] == [lay.digest for lay in img.layers()]
    cfg = json.loads(_run(skopeo, "inspect", "--config", f"oci:{layout}:v1"))
    assert cfg["config"]["User"] == "1000:1000"
    raw = json.loads(_run(skopeo, "inspect", "--raw", f"docker-archive:{archive}"))
    assert raw["config"]["digest"] == img.manifest()["config"]["digest"]
    if compression == "zstd":
        return  # skopeo cannot convert zstd layers to a Docker manifest
    # skopeo's own docker-archive and OCI layout output reads back through our sources.
    copied = tmp_path / "copied.tar"
    _run(skopeo, "copy", f"oci:{layout}:v1", f"docker-archive:{copied}:localhost/c:1")
    back = read_docker_archive(copied)
    assert [lay.diff_id for lay in back.layers()] == [lay.diff_id for lay in img.layers()]
    for lay in back.layers():
        with back.open_layer(lay) as f:
            f.read()
    layout2 = tmp_path / "layout2"
    _run(skopeo, "copy", f"docker-archive:{archive}", f"oci:{layout2}:again")
    again = read_oci_layout(layout2, "again")
    assert again.config()["config"]["Cmd"] == ["/bin/hello"]


def test_umoci_unpacks_layout(
    tmp_path: Path, static_hello: Path, image_factory: ImageFactory
) -> None:
    umoci = _tool("umoci")
    img = image_factory(static_hello, compression="gzip")  # umoci 0.4 has no zstd
    write_oci_layout(img, tmp_path / "layout", ref_name="v1")
    assert "torchslim: test layer" in _run(umoci, "stat", "--image", f"{tmp_path / 'layout'}:v1")
    _run(umoci, "unpack", "--rootless", "--image", "layout:v1", "bundle", cwd=tmp_path)
    rootfs = tmp_path / "bundle" / "rootfs"
    hello = rootfs / "bin" / "hello"
    assert hello.read_bytes() == (static_hello / "bin" / "hello").read_bytes()
    assert os.access(hello, os.X_OK)
    assert stat.S_IMODE((rootfs / "tmp").stat().st_mode) == 0o1777
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert config["process"]["args"] == ["/bin/tool"]


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_podman_loads_runs_and_honours_config(
    tmp_path: Path,
    static_hello: Path,
    image_factory: ImageFactory,
    podman: Podman,
    compression: str,
) -> None:
    run = podman  # the session fixture: run_podman with the test containers.conf
    img = image_factory(static_hello, compression=compression, cmd=["/bin/hello", "from-oci"])
    archive = tmp_path / "img.tar"
    name = f"localhost/torchslim-oci-test-{os.getpid()}-{compression}:v1"
    write_docker_archive(img, archive, repo_tags=[name])
    out = run("load", "-i", str(archive)).stdout
    try:
        assert name in out
        (info,) = json.loads(run("image", "inspect", name).stdout)
        assert info["Config"]["User"] == "1000:1000"
        assert info["Config"]["Cmd"] == ["/bin/hello", "from-oci"]
        assert info["Healthcheck"]["Test"] == ["CMD", "/bin/tool", "health"]
        assert info["Healthcheck"]["Interval"] == 5_000_000_000
        assert info["RootFS"]["Layers"] == [lay.diff_id for lay in img.layers()]
        ran = run("run", "--rm", name)
        assert ran.stdout.strip() == "hello from-oci uid=1000"
        cid = run("create", name).stdout.strip()
        try:
            (ctr,) = json.loads(run("inspect", cid).stdout)
            assert ctr["Config"]["Healthcheck"]["Test"] == ["CMD", "/bin/tool", "health"]
        finally:
            run("rm", "-f", cid, check=False)
    finally:
        run("rmi", "-f", name, check=False)


def test_a_registry_sink_pushes_the_referrers_and_push_carries_a_layouts(
    registry: Registry,
    make_image: ImageMaker,
    no_host_logins: Path,
    tmp_path: Path,
) -> None:
    from torchslim.oci.distribution import RegistryClient
    from torchslim.oci.push import push_with_referrers
    from torchslim.oci.referrers import Artifact, registry_document, registry_referrers
    from torchslim.oci.sink import sink_for
    from torchslim.oci.transport import open_image, parse_location

    img = make_image({"bin/app": 2000})
    docs = [
        Artifact("application/vnd.cyclonedx+json", b'{"bomFormat":"CycloneDX"}\n', "s.cdx.json"),
        Artifact("application/spdx+json", b'{"spdxVersion":"SPDX-2.3"}\n', "s.spdx.json"),
    ]
    sink = sink_for(parse_location(f"docker://{registry.host}/t/sink"), tls_verify=False)
    written = sink.write([img], name="x", tag="v1", referrers=[docs])
    assert written.digest == img.digest() and len(written.referrers) == 2
    assert written.referrers_tag  # distribution 2.8: listed under sha256-<hex>
    with RegistryClient(registry.host, tls_verify=False) as client:
        found = registry_referrers(client, "t/sink", img.digest())
        assert [registry_document(client, "t/sink", d) for d in found] == [d.data for d in docs]

    # A layout with the same referrers, pushed elsewhere: they go along, same digests.
    layout = sink_for(parse_location(f"oci:{tmp_path / 'out'}"))
    in_layout = layout.write([img], name="x", tag="v1", referrers=[docs])
    assert sorted(in_layout.referrers) == sorted(written.referrers)
    pushed, carried = push_with_referrers(
        open_image(f"oci:{tmp_path / 'out'}"), f"{registry.host}/t/copied:v1", tls_verify=False
    )
    # A layout keeps no attach order: the same referrers, in any order.
    assert pushed.manifest_digest == img.digest()
    assert sorted(carried) == sorted(written.referrers)
    with RegistryClient(registry.host, tls_verify=False) as client:
        assert len(registry_referrers(client, "t/copied", img.digest())) == 2
