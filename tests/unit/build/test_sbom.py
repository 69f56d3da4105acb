"""The sbom step on a real (fake-base) build: the three documents, their reproducibility,
where the sinks put them, ``--sbom DIR``, and the manifest and index annotations.

The base is a real OCI layout made from this host's Python, the lock's one wheel a real
small ``torch`` wheel (with headers and a test binary for slimming to remove); nothing
leaves this machine.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from support.fakebuild import make_base_layout, make_service, plan_for
from support.sbom import DATA
from support.wheels import make_wheel

from torchslim.build import Invocation, build, publish
from torchslim.build.report import BuildResult
from torchslim.cli import main
from torchslim.oci.layout import read_oci_layout
from torchslim.oci.referrers import layout_document, layout_referrers
from torchslim.oci.transport import open_image
from torchslim.sbom.read import read_sbom

EPOCH = 1_700_000_000  # 2023-11-14T22:13:20Z
CREATED = "2023-11-14T22:13:20Z"
TITLES = ["sbom.cdx.json", "sbom.spdx.json", "sbom.provenance.json"]
TYPES = ["application/vnd.cyclonedx+json", "application/spdx+json", "application/vnd.in-toto+json"]
OCI = "org.opencontainers.image."
HEADER = b"#pragma once\n" * 300  # torch/include/torch.h: rule torch-headers
TEST_BINARY = b"not really a test binary\n" * 40  # torch/test/test_ops: rule torch-test-binaries


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("TORCHSLIM_CACHE", str(root))
    return root


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return make_base_layout(tmp_path)


@pytest.fixture
def project(tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    torch = make_wheel(
        tmp_path,
        name="torch",
        version="2.13.0",
        extra={"torch/include/torch.h": HEADER, "torch/test/test_ops": TEST_BINARY},
    )
    root = make_service(tmp_path / "svc", base, [torch], monkeypatch)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "svc"\nversion = "1.0"\nlicense = "Apache-2.0"\n'
        'description = """A service\n  for tests."""\n'
    )
    return root


def _amd64(project: Path, **opts: object) -> BuildResult:
    opts.setdefault("source_date_epoch", EPOCH)
    return build(plan_for(project, platform="linux/amd64", **opts).plans[0])


def _props(component: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in component.get("properties", [])}


def test_the_build_carries_cyclonedx_spdx_and_provenance(
    project: Path, cache: Path, base: Path
) -> None:
    result = _amd64(project)
    assert [a.title for a in result.artifacts] == TITLES
    assert [a.artifact_type for a in result.artifacts] == TYPES
    cdx_bytes, spdx_bytes, prov_bytes = (a.data for a in result.artifacts)

    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cdx_bytes.decode()) is None
    cdx = json.loads(cdx_bytes)
    image = cdx["metadata"]["component"]
    assert image["purl"].startswith(f"pkg:oci/svc@{result.digest}?arch=amd64")
    assert image["licenses"] == [{"expression": "Apache-2.0"}]  # from pyproject's [project]
    assert image["description"] == "A service for tests."
    props = _props(image)
    base_digest = read_oci_layout(base, "3.11").digest()
    assert props[OCI + "base.digest"] == base_digest
    assert props["torchslim:torch:variant"] == "cpu"
    # Per component: what slimming removed from it, by rule (the ledger's, file by file).
    torch = next(c for c in cdx["components"] if c["name"] == "torch")
    removed = {k: v for k, v in _props(torch).items() if ":removed:" in k}
    assert removed == {
        "torchslim:removed:torch-headers:bytes": str(len(HEADER)),
        "torchslim:removed:torch-headers:files": "1",
        "torchslim:removed:torch-test-binaries:bytes": str(len(TEST_BINARY)),
        "torchslim:removed:torch-test-binaries:files": "1",
    }
    ledger = {rule: nbytes for rule, _, _, nbytes in result.ledger.by_rule()}
    assert ledger["torch-headers"] == len(HEADER)
    assert _props(torch)["torchslim:python:wheel"] == "torch-2.13.0-py3-none-any.whl"

    spdx = json.loads(spdx_bytes)
    jsonschema.validate(spdx, json.loads((DATA / "spdx-schema-2.3.json").read_text()))
    assert spdx["spdxVersion"] == "SPDX-2.3"

    prov = json.loads(prov_bytes)
    assert prov["subject"] == [
        {"name": "svc:v1.0-pytorch2.13-cpu", "digest": {"sha256": result.digest[7:]}}
    ]
    deps = {d["name"]: d for d in prov["predicate"]["buildDefinition"]["resolvedDependencies"]}
    config_sha = hashlib.sha256((project / "torchslim.toml").read_bytes()).hexdigest()
    assert deps["config"] == {"name": "config", "uri": "file:torchslim.toml",
                              "digest": {"sha256": config_sha}}  # fmt: skip
    lock_sha = hashlib.sha256((project / "pylock.toml").read_bytes()).hexdigest()
    assert deps["lock"]["digest"] == {"sha256": lock_sha}
    assert deps["base"]["digest"] == {"sha256": base_digest[7:]}
    assert "source" not in deps  # not a git checkout
    run = prov["predicate"]["runDetails"]
    assert run["metadata"]["startedOn"] == CREATED  # SOURCE_DATE_EPOCH, never the clock
    assert run["builder"]["id"] == "urn:torchslim:builder:local"
    byproducts = {b["name"]: b["digest"]["sha256"] for b in run["byproducts"]}
    assert byproducts == {
        t: a.digest[7:] for t, a in zip(TITLES[:2], result.artifacts[:2], strict=True)
    }

    # The labels and the manifest say the same.
    labels = result.image.config()["config"]["Labels"]
    annotations = result.image.manifest()["annotations"]
    assert labels[OCI + "licenses"] == annotations[OCI + "licenses"] == "Apache-2.0"
    assert annotations[OCI + "base.name"] == f"oci:{base}:3.11"
    assert annotations[OCI + "base.digest"] == base_digest


def test_same_inputs_give_byte_identical_documents(project: Path, cache: Path) -> None:
    cold = _amd64(project)
    warm = _amd64(project)  # every layer from the cache, every layer's metadata too
    assert all(layer.cached for layer in warm.layers)
    assert any((cache / "sbom-layers").iterdir())
    assert [a.data for a in warm.artifacts] == [a.data for a in cold.artifacts]
    assert warm.digest == cold.digest


def test_the_command_and_options_are_recorded(project: Path, cache: Path) -> None:
    from torchslim.build import BuildOptions

    opts = BuildOptions(platform="linux/amd64", keep=("torch/include/**",))
    invocation = Invocation.of(["torchslim", "build", "svc"], opts)
    result = build(plan_for(project, **vars(opts)).plans[0], None, invocation)
    prov = json.loads(result.artifacts[2].data)
    external = prov["predicate"]["buildDefinition"]["externalParameters"]
    assert external == {
        "command": ["torchslim", "build", "svc"],
        "options": {"platform": "linux/amd64", "keep": ["torch/include/**"]},
    }
    internal = prov["predicate"]["buildDefinition"]["internalParameters"]
    assert internal["keep"] == ["torch/include/**"] and internal["profile"] == "inference"
    assert (internal["compression"], internal["compressionLevel"]) == ("gzip", 6)
    # Kept headers are not removed, so the SBOM books no removal for them.
    torch = next(c for c in json.loads(result.artifacts[0].data)["components"]
                 if c["name"] == "torch")  # fmt: skip
    assert "torchslim:removed:torch-headers:bytes" not in _props(torch)
    assert "startedOn" not in prov["predicate"]["runDetails"]["metadata"]  # no epoch given


def _cli(*args: str) -> bytes:
    res = CliRunner().invoke(main, list(args), env={"SOURCE_DATE_EPOCH": str(EPOCH)})
    assert res.exit_code == 0, res.output
    return res.stdout_bytes


def test_a_layout_output_holds_the_referrers_and_sbom_dir_the_files(
    project: Path, cache: Path, tmp_path: Path
) -> None:
    out, files = tmp_path / "out", tmp_path / "sbom"
    _cli("build", str(project), "--platform", "linux/amd64",
         "--output", f"oci:{out}", "--sbom", str(files))  # fmt: skip
    image = open_image(f"oci:{out}")
    # index.json names the image alone; the referrers are blobs whose subject it is.
    index = json.loads((out / "index.json").read_text())
    assert [e["digest"] for e in index["manifests"]] == [image.digest()]
    found = layout_referrers(out, image.digest())
    docs = {d["artifactType"]: layout_document(out, d) for d in found}
    assert docs == {t: (files / n).read_bytes() for t, n in zip(TYPES, TITLES, strict=True)}
    assert sorted(p.name for p in files.iterdir()) == sorted(TITLES)
    prov = json.loads((files / "sbom.provenance.json").read_bytes())
    assert prov["predicate"]["buildDefinition"]["externalParameters"] == {
        "command": ["torchslim", "build", str(project)],
        "options": {"platform": "linux/amd64", "output": f"oci:{out}"},
    }
    assert _cli("sbom", f"oci:{out}") == (files / "sbom.cdx.json").read_bytes()
    assert read_sbom(f"oci:{out}", "spdx") == (files / "sbom.spdx.json").read_bytes()
    annotations = image.manifest()["annotations"]
    assert {OCI + "base.name", OCI + "base.digest", OCI + "description"} <= set(annotations)

    # --no-attach-sbom: the same index.json, and no referrers.
    _cli("build", str(project), "--platform", "linux/amd64", "--force",
         "--output", f"oci:{out}", "--no-attach-sbom")  # fmt: skip
    index = json.loads((out / "index.json").read_text())
    assert len(index["manifests"]) == 1 and "artifactType" not in index["manifests"][0]
    assert open_image(f"oci:{out}").digest() == image.digest()
    assert layout_referrers(out, image.digest()) == []


def test_two_platforms_each_get_referrers_and_the_index_their_shared_annotations(
    project: Path, cache: Path, tmp_path: Path
) -> None:
    # The arm64 half is x86 files under an arm64 config: it cannot run, so no proof here.
    out = tmp_path / "out"
    bp = plan_for(project, output=f"oci:{out}", source_date_epoch=EPOCH, prove=False)
    results = [build(plan) for plan in bp.plans]
    written = publish(bp, results)
    assert written is not None and len(written.referrers) == 6
    index = json.loads((out / "index.json").read_text())
    top = index["manifests"][0]
    nested = json.loads((out / "blobs" / "sha256" / top["digest"][7:]).read_bytes())
    shared = nested["annotations"]
    assert (
        shared[OCI + "base.name"] == results[0].image.manifest()["annotations"][OCI + "base.name"]
    )
    assert shared[OCI + "licenses"] == "Apache-2.0" and shared[OCI + "created"] == CREATED
    # Each platform is built on its own base manifest: no one base digest for the index.
    base_digests = {r.image.manifest()["annotations"][OCI + "base.digest"] for r in results}
    assert len(base_digests) == 2 and OCI + "base.digest" not in shared
    for result in results:
        found = layout_referrers(out, result.digest)
        docs = {d["artifactType"]: layout_document(out, d) for d in found}
        assert docs == {a.artifact_type: a.data for a in result.artifacts}
        prov = json.loads(result.artifacts[2].data)
        platform = prov["predicate"]["buildDefinition"]["internalParameters"]["platform"]
        assert platform == result.platform


def test_sbom_dir_of_two_platforms_has_one_folder_each(
    project: Path, cache: Path, tmp_path: Path
) -> None:
    from torchslim.build.sbom import write_sbom_files

    bp = plan_for(project, source_date_epoch=EPOCH, prove=False)
    results = [build(plan) for plan in bp.plans]
    paths = write_sbom_files(tmp_path / "sbom", results)
    rel = sorted(p.relative_to(tmp_path / "sbom").as_posix() for p in paths)
    assert rel == sorted(f"{d}/{t}" for d in ("linux-amd64", "linux-arm64") for t in TITLES)
    assert (tmp_path / "sbom/linux-arm64/sbom.cdx.json").read_bytes() == results[1].artifacts[
        0
    ].data
