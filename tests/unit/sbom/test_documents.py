"""CycloneDX 1.6 and SPDX 2.3 documents: valid (schemas, spdx-tools), deterministic, and
saying what the issue asks: purls, hashes, licenses, torch's variant, removed bytes."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from support.sbom import CREATED, DATA, DIGEST, SITE, make_rootfs

from torchslim.debian.spec import DebPackage
from torchslim.deps.lock import LockedWheel
from torchslim.sbom.collect import collect
from torchslim.sbom.cyclonedx import render_cyclonedx
from torchslim.sbom.model import BaseRef, ImageIdentity, Removal, SbomInputs
from torchslim.sbom.spdx import render_spdx

IMAGE = ImageIdentity(
    "registry.example.com/team/hello-torch",
    DIGEST,
    tag="v1.2-pytorch2.13-cpu",
    created=CREATED,
    description="hello-torch service",
)
CLICK = LockedWheel(
    "click",
    "8.5.1",
    "click-8.5.1-py3-none-any.whl",
    "https://files.pythonhosted.org/packages/31/7d/164b7ffc8624fe9efb4221bf9af485d5c1e41b9ae118045d2b6dc5457d8b/click-8.5.1-py3-none-any.whl",
    "8bb5376d2006950386f8c6427613334a2acadc5f559cb80e638d00b4df957e37",
    126163,
)
SSL = DebPackage(
    "libssl3",
    "3.0.20-1~deb12u2",
    "amd64",
    "pool/main/o/openssl/libssl3_3.0.20-1~deb12u2_amd64.deb",
    "sha256:" + "ef" * 32,
    2000000,
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> SbomInputs:
    root = make_rootfs(tmp_path_factory.mktemp("docs") / "rootfs")
    removals = [Removal("torch-headers", f"/{SITE}/torch/include/ATen/Tensor.h", 1234)]
    return collect(
        root,
        IMAGE,
        BaseRef("debian:bookworm"),
        locked_wheels=[CLICK],
        locked_debs=[SSL],
        mirror="http://deb.debian.org/debian",
        removals=removals,
        tool_version="0.1.0",
    )


def _components(doc: dict[str, object]) -> list[dict[str, object]]:
    out = []
    stack = list(doc.get("components") or [])  # type: ignore[call-overload]
    while stack:
        c = stack.pop()
        out.append(c)
        stack += c.get("components") or []
    return out


def test_cyclonedx_is_valid_and_deterministic(inputs: SbomInputs) -> None:
    data = render_cyclonedx(inputs)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode()) is None
    assert render_cyclonedx(inputs) == data
    doc = json.loads(data)
    assert doc["specVersion"] == "1.6"
    assert doc["serialNumber"].startswith("urn:uuid:")
    assert doc["metadata"]["timestamp"].startswith("2026-11-23T18:01:13")
    image = doc["metadata"]["component"]
    assert image["type"] == "container" and image["version"] == "v1.2-pytorch2.13-cpu"
    assert image["purl"].startswith("pkg:oci/hello-torch@sha256:abab")
    assert "repository_url=registry.example.com/team/hello-torch" in image["purl"]
    props = {p["name"]: p["value"] for p in image["properties"]}
    assert props["torchslim:torch:variant"] == "cpu" and props["torchslim:torch:cuda"] == "none"
    assert props["org.opencontainers.image.base.name"] == "debian:bookworm"


def test_cyclonedx_components(inputs: SbomInputs) -> None:
    doc = json.loads(render_cyclonedx(inputs))
    comps = _components(doc)
    purls = {c.get("purl") for c in comps}
    assert (
        "pkg:deb/debian/libssl3@3.0.20-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl"
        in purls
    )
    assert (
        "pkg:deb/debian/libbz2-1.0@1.0.8-5%2Bb1?arch=amd64&distro=debian-12&upstream=bzip2%401.0.8-5"
        in purls
    )
    assert "pkg:pypi/torch@2.13.0%2Bcpu" in purls
    ssl = next(c for c in comps if c["name"] == "libssl3")
    assert ssl["hashes"] == [{"alg": "SHA-256", "content": "ef" * 32}]
    assert ssl["licenses"] == [{"expression": "Apache-2.0 AND (Artistic-1.0 OR GPL-1.0-or-later)"}]
    assert ssl["externalReferences"][0]["url"].endswith(
        "/pool/main/o/openssl/libssl3_3.0.20-1~deb12u2_amd64.deb"
    )
    click = next(c for c in comps if c["name"] == "click")
    assert click["hashes"][0]["content"] == CLICK.sha256
    cprops = {p["name"]: p["value"] for p in click["properties"]}
    assert cprops["torchslim:python:index"] == "https://pypi.org/simple"
    torch = next(c for c in comps if c["name"] == "torch")
    tprops = {p["name"]: p["value"] for p in torch["properties"]}
    assert tprops["torchslim:removed:torch-headers:bytes"] == "1234"
    assert tprops["torchslim:removed:torch-headers:files"] == "1"
    setuptools = next(c for c in doc["components"] if c["name"] == "setuptools")
    nested = {c["name"] for c in setuptools["components"]}
    assert nested == {"autocommand", "packaging"}
    os_ = next(c for c in comps if c["type"] == "operating-system")
    assert (os_["name"], os_["version"]) == ("debian", "12")


def test_spdx_is_valid_for_the_schema_and_spdx_tools(inputs: SbomInputs, tmp_path: Path) -> None:
    data = render_spdx(inputs)
    assert render_spdx(inputs) == data
    doc = json.loads(data)
    schema = json.loads((DATA / "spdx-schema-2.3.json").read_text())
    jsonschema.validate(doc, schema)
    path = tmp_path / "sbom.spdx.json"
    path.write_bytes(data)
    problems = validate_full_spdx_document(parse_file(str(path)))
    assert [p.validation_message for p in problems] == []


def test_spdx_packages_and_relationships(inputs: SbomInputs) -> None:
    doc = json.loads(render_spdx(inputs))
    pkgs = {p["SPDXID"]: p for p in doc["packages"]}
    by_name = {p["name"]: p for p in doc["packages"]}
    image = by_name["registry.example.com/team/hello-torch"]
    assert image["primaryPackagePurpose"] == "CONTAINER"
    rels = {
        (r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"])
        for r in doc["relationships"]
    }
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", image["SPDXID"]) in rels
    assert (image["SPDXID"], "CONTAINS", by_name["libssl3"]["SPDXID"]) in rels
    autocommand = by_name["autocommand"]["SPDXID"]
    assert (by_name["setuptools"]["SPDXID"], "CONTAINS", autocommand) in rels
    assert by_name["libssl3"]["checksums"] == [{"algorithm": "SHA256", "checksumValue": "ef" * 32}]
    assert by_name["libssl3"]["sourceInfo"] == "built from Debian source package openssl"
    refs = {r["licenseId"] for r in doc["hasExtractedLicensingInfos"]}
    declared = " ".join(p["licenseDeclared"] for p in pkgs.values())
    assert refs and all(r in declared for r in refs)
    torch_notes = [a["comment"] for a in by_name["torch"]["annotations"]]
    assert "torchslim:removed:torch-headers:bytes=1234" in torch_notes
    assert by_name["click"]["downloadLocation"] == CLICK.url
    assert doc["documentNamespace"].startswith("https://spdx.org/spdxdocs/torchslim/")
    assert doc["creationInfo"] == {"created": CREATED, "creators": ["Tool: torchslim-0.1.0"]}


def test_a_registry_base_is_named_by_digest(inputs: SbomInputs) -> None:
    from dataclasses import replace

    base = BaseRef("docker.io/library/python:3.11-slim", "sha256:" + "12" * 32)
    other = replace(inputs, base=base)
    cdx = json.loads(render_cyclonedx(other))
    b = next(c for c in cdx["components"] if c["type"] == "container")
    assert b["version"] == base.digest and b["purl"].startswith("pkg:oci/python@sha256:1212")
    spdx = json.loads(render_spdx(other))
    base_pkg = next(p for p in spdx["packages"] if p["name"] == base.name)
    assert {"spdxElementId": spdx["packages"][0]["SPDXID"], "relationshipType": "DESCENDANT_OF",
            "relatedSpdxElement": base_pkg["SPDXID"]} in spdx["relationships"]  # fmt: skip
    # Another image digest: other ids, so documents of two images never collide.
    assert (
        json.loads(
            render_cyclonedx(replace(inputs, image=replace(IMAGE, digest="sha256:" + "99" * 32)))
        )["serialNumber"]
        != json.loads(render_cyclonedx(inputs))["serialNumber"]
    )
