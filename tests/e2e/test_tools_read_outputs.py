"""Issue 24: the tools a security review points at an image read our outputs as they are.

One small real build (tests/support/fakebuild: no torch, no network) is written three
ways, SBOMs and provenance attached where torchslim attaches them: an ``oci:`` layout, a
``docker-archive:`` and a push to Debian's real ``docker-registry`` on loopback. Then
syft (``oci-dir:``, ``docker-archive:``, ``registry:``), skopeo (``inspect``, ``copy``
with no image name), podman (``pull oci:DIR``, ``load``) and umoci (``ls``, ``stat``,
``unpack``) each read them; a refusal fails the test, and so does a syft package list
that differs from the names and versions of our CycloneDX SBOM. ``torchslim sbom`` and
``push`` still find the documents.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name
from support.fakebuild import fake_service, pylock
from support.registry import Registry, start_registry
from support.wheels import make_wheel

import torchslim.build.lock as lock_step
from torchslim.build import BuildOptions, build, plan_build, publish
from torchslim.config import load_config
from torchslim.deps.pipconf import IndexSettings
from torchslim.oci.blobio import sha256_bytes
from torchslim.oci.distribution import RegistryClient
from torchslim.oci.layout import read_oci_layout
from torchslim.oci.push import push_with_referrers
from torchslim.oci.referrers import fallback_tag, layout_referrers, registry_referrers
from torchslim.sbom.artifacts import FORMATS
from torchslim.sbom.read import read_sbom

from .conftest import podman

pytestmark = pytest.mark.e2e
REPO = "team/svc"
SYFT_ENV = {
    "SYFT_CHECK_FOR_APP_UPDATE": "false",  # no network: no update check,
    "SYFT_PYTHON_SEARCH_REMOTE_LICENSES": "false",  # no license look-ups on PyPI
    "SYFT_GOLANG_SEARCH_REMOTE_LICENSES": "false",
    "SYFT_JAVA_USE_NETWORK": "false",
    "SYFT_REGISTRY_INSECURE_USE_HTTP": "true",  # the loopback registry speaks plain HTTP
}
Packages = set[tuple[str, str]]


@dataclass(frozen=True)
class Outputs:
    layout: Path
    archive: Path
    registry: Registry
    ref: str  # HOST/team/svc:TAG
    tag: str
    digest: str  # the image manifest's
    config_digest: str
    layers: list[str]
    diff_ids: list[str]
    cdx: dict[str, bytes]  # output kind → the CycloneDX document its build made

    def location(self, kind: str) -> str:
        """The output as syft and skopeo name it (no image name for the local ones)."""
        return {
            "oci": f"oci:{self.layout}",
            "docker-archive": f"docker-archive:{self.archive}",
            "registry": f"docker://{self.ref}",
        }[kind]


def _tool(name: str) -> str:
    exe = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(exe).exists():
        pytest.skip(f"{name} is not installed (bash scripts/install.sh; syft: pip install .[test])")
    return exe


def _run(*cmd: str, env: dict[str, str] | None = None) -> str:
    """Run a tool; its refusal (any non-zero exit) fails the test with what it said."""
    proc = subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert proc.returncode == 0, f"{' '.join(cmd)} refused our output:\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outputs]:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (bash scripts/install.sh installs it)")
    tmp = tmp_path_factory.mktemp("tools")
    reg = start_registry(tmp / "registry")
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TORCHSLIM_CACHE", str(tmp / "cache"))
            mp.setenv("SOURCE_DATE_EPOCH", "1700000000")
            service = fake_service(tmp, mp)
            # A second distribution beside torch: syft must find both, with their versions.
            extra = make_wheel(tmp / "wheels", name="tinyextra", version="0.3.1")
            mp.setattr(lock_step, "_uv_lock", lambda *a: pylock(service.wheel, extra))
            cfg = load_config(service.root)
            locations = {
                "oci": f"oci:{tmp / 'oci'}",
                "docker-archive": f"docker-archive:{tmp / 'img.tar'}",
                "registry": f"docker://{reg.host}/{REPO}",
            }
            cdx, digests, tags = {}, set(), set()
            for kind, location in locations.items():
                opts = BuildOptions(output=location, tls_verify=False)
                bp = plan_build(cfg, opts, IndexSettings(), environ={})
                result = build(bp.plans[0])
                publish(bp, [result])
                doc = next(a for a in result.artifacts if a.artifact_type == FORMATS["cyclonedx"])
                cdx[kind] = doc.data
                digests.add(result.image.digest())
                tags.add(bp.tag)
                image = result.image
            assert len(digests) == 1 and len(tags) == 1, "one image, written three ways"
            tag = tags.pop()
            yield Outputs(
                layout=tmp / "oci",
                archive=tmp / "img.tar",
                registry=reg,
                ref=f"{reg.host}/{REPO}:{tag}",
                tag=tag,
                digest=digests.pop(),
                config_digest=sha256_bytes(image.config_bytes()),
                layers=[layer.digest for layer in image.layers()],
                diff_ids=[layer.diff_id for layer in image.layers()],
                cdx=cdx,
            )
    finally:
        reg.stop()


def _components(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for c in items:
        yield c
        yield from _components(c.get("components") or [])


def sbom_packages(cdx: bytes) -> Packages:
    """The Python and Debian packages (name, version) our CycloneDX SBOM lists."""
    out = set()
    for c in _components(json.loads(cdx).get("components") or []):
        purl = str(c.get("purl", ""))
        if purl.startswith("pkg:pypi/"):
            out.add((canonicalize_name(c["name"]), str(c["version"])))
        elif purl.startswith("pkg:deb/"):
            out.add((str(c["name"]), str(c["version"])))
    return out


def syft_packages(syft_json: str) -> Packages:
    """The Python and Debian packages syft found (its binary classifiers left aside)."""
    out = set()
    for a in json.loads(syft_json)["artifacts"]:
        if a["type"] == "python":
            out.add((canonicalize_name(a["name"]), str(a["version"])))
        elif a["type"] == "deb":
            out.add((str(a["name"]), str(a["version"])))
    return out


def test_the_layout_names_the_image_alone_and_keeps_its_referrers(outputs: Outputs) -> None:
    index = json.loads((outputs.layout / "index.json").read_text())
    assert [e["digest"] for e in index["manifests"]] == [outputs.digest]
    assert len(layout_referrers(outputs.layout, outputs.digest)) == 3


@pytest.mark.parametrize(
    ("kind", "scheme"),
    [("oci", "oci-dir"), ("docker-archive", "docker-archive"), ("registry", "registry")],
)
def test_syft_reads_each_output_and_finds_our_sbom_packages(
    outputs: Outputs, kind: str, scheme: str
) -> None:
    target = {
        "oci": str(outputs.layout),
        "docker-archive": str(outputs.archive),
        "registry": outputs.ref,
    }[kind]
    out = _run(_tool("syft"), f"{scheme}:{target}", "-o", "syft-json", "-q", env=SYFT_ENV)
    ours = sbom_packages(outputs.cdx[kind])
    assert {("torch", "2.13.0"), ("tinyextra", "0.3.1")} <= ours
    assert syft_packages(out) == ours


@pytest.mark.parametrize("kind", ["oci", "docker-archive", "registry"])
def test_skopeo_inspects_and_copies_each_output(
    outputs: Outputs, kind: str, tmp_path: Path
) -> None:
    skopeo = _tool("skopeo")
    tls = ["--tls-verify=false"] if kind == "registry" else []
    info = json.loads(_run(skopeo, "inspect", *tls, outputs.location(kind)))
    if kind == "docker-archive":  # skopeo names an archive's layers by their DiffIDs
        assert info["Layers"] == outputs.diff_ids
    else:
        assert (info["Digest"], info["Layers"]) == (outputs.digest, outputs.layers)
    copy = tmp_path / "copy"
    src_tls = ["--src-tls-verify=false"] if kind == "registry" else []
    _run(skopeo, "copy", "-q", *src_tls, outputs.location(kind), f"oci:{copy}:copied")
    copied = read_oci_layout(copy, "copied")
    assert [layer.diff_id for layer in copied.layers()] == outputs.diff_ids
    if kind != "docker-archive":  # from the archive's Docker form skopeo rewrites the config
        assert sha256_bytes(copied.config_bytes()) == outputs.config_digest


def test_podman_pulls_the_layout_and_loads_the_archive(outputs: Outputs) -> None:
    pulled = podman("pull", "-q", f"oci:{outputs.layout}").stdout.strip().splitlines()[-1]
    try:
        assert f"sha256:{pulled}" == outputs.config_digest
    finally:
        podman("rmi", "-f", pulled, check=False)
    loaded = podman("load", "-q", "-i", str(outputs.archive)).stdout
    name = f"localhost/svc:{outputs.tag}"
    assert name in loaded
    try:
        ident = podman("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()
        assert f"sha256:{ident}" == outputs.config_digest
    finally:
        podman("rmi", "-f", name, check=False)


def test_umoci_lists_stats_and_unpacks_the_layout(outputs: Outputs, tmp_path: Path) -> None:
    umoci = _tool("umoci")
    assert _run(umoci, "ls", "--layout", str(outputs.layout)).split() == [outputs.tag]
    image = f"{outputs.layout}:{outputs.tag}"
    stat = json.loads(_run(umoci, "stat", "--json", "--image", image))
    assert stat["history"] is not None
    bundle = tmp_path / "bundle"
    _run(umoci, "unpack", "--rootless", "--image", image, str(bundle))
    assert (bundle / "rootfs" / "app" / "app" / "svc" / "__init__.py").is_file()


def test_torchslim_sbom_and_push_still_find_the_documents(outputs: Outputs) -> None:
    assert read_sbom(f"oci:{outputs.layout}") == outputs.cdx["oci"]
    pushed = read_sbom(f"docker://{outputs.ref}", tls_verify=False)
    assert pushed == outputs.cdx["registry"]
    # `torchslim push oci:DIR` carries the layout's referrers; Debian's registry has no
    # referrers API, so they are listed under the sha256-<hex> tag.
    copy = f"{outputs.registry.host}/team/copied:v1"
    image = read_oci_layout(outputs.layout)
    _, attached = push_with_referrers(image, copy, tls_verify=False)
    in_layout = {d["digest"] for d in layout_referrers(outputs.layout, outputs.digest)}
    assert set(attached) == in_layout
    with RegistryClient(outputs.registry.host, tls_verify=False) as client:
        found = registry_referrers(client, "team/copied", outputs.digest)
        index, _, _ = client.get_manifest("team/copied", fallback_tag(outputs.digest))
    assert {d["digest"] for d in found} == in_layout
    assert {m["digest"] for m in json.loads(index)["manifests"]} == in_layout
    assert read_sbom(f"docker://{copy}", tls_verify=False) == outputs.cdx["oci"]
