"""The three documents as artifacts and files, attached to a real OCI layout, and read back
by ``torchslim sbom``; an image without them says so in one line, exit code 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.sbom import CREATED, make_rootfs

from torchslim.cache import BlobStore
from torchslim.cli import main
from torchslim.oci.archive import write_docker_archive
from torchslim.oci.empty import empty_image
from torchslim.oci.image import Image
from torchslim.oci.index import manifest_descriptor
from torchslim.oci.layer import write_layer_from_dir
from torchslim.oci.layout import write_oci_layout
from torchslim.oci.mutate import append_layers
from torchslim.oci.referrers import add_referrers_to_layout
from torchslim.sbom.artifacts import documents, write_documents
from torchslim.sbom.collect import collect
from torchslim.sbom.model import BaseRef, ImageIdentity
from torchslim.sbom.provenance import ProvenanceInputs
from torchslim.sbom.read import NoSbomError, read_sbom


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    tmp = tmp_path_factory.mktemp("read")
    store = BlobStore(tmp / "cache")
    layer = write_layer_from_dir(make_rootfs(tmp / "rootfs"), store)
    return append_layers(empty_image(), [(layer, store, "rootfs")])


def _docs(image: Image) -> list:  # type: ignore[type-arg]
    ident = ImageIdentity("hello", image.digest(), tag="v1", created=CREATED)
    inputs = collect(image, ident, BaseRef("debian:bookworm"), tool_version="0.1.0")
    prov = ProvenanceInputs(ident, ["torchslim", "build", "."], tool_version="0.1.0")
    return documents(inputs, prov)


def test_documents_order_names_and_byproducts(image: Image, tmp_path: Path) -> None:
    docs = _docs(image)
    assert [d.title for d in docs] == ["sbom.cdx.json", "sbom.spdx.json", "sbom.provenance.json"]
    assert [d.data for d in _docs(image)] == [d.data for d in docs]  # byte-identical
    statement = json.loads(docs[2].data)
    byproducts = {
        b["name"]: b["digest"]["sha256"] for b in statement["predicate"]["runDetails"]["byproducts"]
    }
    assert byproducts == {d.title: d.digest.removeprefix("sha256:") for d in docs[:2]}
    paths = write_documents(tmp_path / "sbom", docs)
    assert [p.read_bytes() for p in paths] == [d.data for d in docs]


def test_read_back_from_an_oci_layout(image: Image, tmp_path: Path) -> None:
    layout = tmp_path / "oci"
    write_oci_layout(image, layout, ref_name="v1")
    with pytest.raises(NoSbomError, match="has no cyclonedx SBOM attached"):
        read_sbom(f"oci:{layout}")
    docs = _docs(image)
    add_referrers_to_layout(layout, manifest_descriptor(image), docs, CREATED)
    assert read_sbom(f"oci:{layout}:v1") == docs[0].data
    assert read_sbom(f"oci:{layout}", "spdx") == docs[1].data

    result = CliRunner().invoke(main, ["sbom", f"oci:{layout}", "--format", "spdx"])
    assert result.exit_code == 0 and result.stdout_bytes == docs[1].data
    out = tmp_path / "out.cdx.json"
    result = CliRunner().invoke(main, ["sbom", f"oci:{layout}", "-o", str(out)])
    assert result.exit_code == 0 and out.read_bytes() == docs[0].data


def test_an_archive_has_no_sbom_and_says_so(image: Image, tmp_path: Path) -> None:
    archive = tmp_path / "img.tar"
    write_docker_archive(image, archive, repo_tags=["hello:v1"])
    result = CliRunner().invoke(main, ["sbom", f"docker-archive:{archive}"])
    assert result.exit_code == 1
    assert "no SBOM attached" in result.stderr and "--sbom DIR" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
