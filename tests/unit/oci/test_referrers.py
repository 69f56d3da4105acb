"""OCI 1.1 referrers: artifact manifests, OCI layout entries, a real registry's fallback tag."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.images import ImageFactory, make_tree
from support.registry import Registry, start_registry

from torchslim.errors import IntegrityError
from torchslim.oci import referrers
from torchslim.oci.blobio import sha256_bytes
from torchslim.oci.distribution import RegistryClient
from torchslim.oci.index import manifest_descriptor
from torchslim.oci.layer import Descriptor
from torchslim.oci.layout import read_oci_layout, write_oci_layout
from torchslim.oci.media import OCI_INDEX, OCI_MANIFEST
from torchslim.oci.referrers import (
    EMPTY_DIGEST,
    EMPTY_MEDIA_TYPE,
    Artifact,
    add_referrers_to_layout,
    artifact_manifest,
    fallback_tag,
    layout_artifacts,
    layout_document,
    layout_referrers,
    push_referrers,
    registry_document,
    registry_referrers,
)
from torchslim.oci.registry import push_image

CREATED = "2024-01-01T00:00:00Z"
CDX = "application/vnd.cyclonedx+json"
SPDX = "application/spdx+json"
INTOTO = "application/vnd.in-toto+json"


def _artifacts() -> list[Artifact]:
    return [
        Artifact(CDX, b'{"bomFormat":"CycloneDX"}\n', "sbom.cdx.json"),
        Artifact(SPDX, b'{"spdxVersion":"SPDX-2.3"}\n', "sbom.spdx.json"),
        Artifact(INTOTO, b'{"_type":"https://in-toto.io/Statement/v1"}\n', "provenance.json"),
    ]


@pytest.fixture
def layout(tmp_path: Path, image_factory: ImageFactory) -> tuple[Path, object]:
    img = image_factory(make_tree(tmp_path / "t"))
    dest = tmp_path / "layout"
    write_oci_layout(img, dest, ref_name="v1")
    return dest, img


def test_artifact_manifest_is_an_oci_1_1_artifact(layout: tuple[Path, object]) -> None:
    _, img = layout
    subject = manifest_descriptor(img)  # type: ignore[arg-type]
    ref = artifact_manifest(_artifacts()[0], subject, CREATED)
    m = json.loads(ref.manifest)
    assert m["mediaType"] == OCI_MANIFEST and m["artifactType"] == CDX
    assert m["config"]["mediaType"] == EMPTY_MEDIA_TYPE and m["config"]["digest"] == EMPTY_DIGEST
    assert m["config"]["size"] == 2 and sha256_bytes(b"{}") == EMPTY_DIGEST
    assert m["subject"] == {
        "mediaType": OCI_MANIFEST,
        "digest": subject.digest,
        "size": subject.size,
    }
    assert m["layers"][0]["digest"] == sha256_bytes(_artifacts()[0].data)
    assert m["annotations"] == {"org.opencontainers.image.created": CREATED}
    # Same inputs, same bytes.
    assert artifact_manifest(_artifacts()[0], subject, CREATED).manifest == ref.manifest


def test_layout_keeps_one_index_entry_and_finds_referrers_by_subject(
    layout: tuple[Path, object],
) -> None:
    root, img = layout
    subject = manifest_descriptor(img)  # type: ignore[arg-type]
    before = (root / "index.json").read_bytes()
    made = add_referrers_to_layout(root, subject, _artifacts(), CREATED)
    again = add_referrers_to_layout(root, subject, _artifacts(), CREATED)
    assert [r.digest for r in made] == [r.digest for r in again]
    # index.json names the image alone (skopeo, podman, syft and umoci open it as is).
    assert (root / "index.json").read_bytes() == before
    for r in made:
        assert (root / "blobs" / "sha256" / r.digest[7:]).read_bytes() == r.manifest
    found = layout_referrers(root, subject.digest)
    # Oldest first, then by type: SPDX, CycloneDX, in-toto.
    assert [d["artifactType"] for d in found] == [SPDX, CDX, INTOTO]
    assert {d["digest"] for d in found} == {r.digest for r in made}
    assert found[0] == {**made[1].descriptor_json()}
    only = layout_referrers(root, subject.digest, SPDX)
    assert [layout_document(root, d) for d in only] == [_artifacts()[1].data]
    assert layout_referrers(root, "sha256:" + "0" * 64) == []
    # The image is still what the layout opens, with and without its tag.
    assert read_oci_layout(root).digest() == img.digest()  # type: ignore[attr-defined]
    assert read_oci_layout(root, "v1").digest() == img.digest()  # type: ignore[attr-defined]


def test_referrers_of_another_subject_and_odd_blobs_are_passed_over(
    layout: tuple[Path, object], tmp_path: Path
) -> None:
    root, img = layout
    subject = manifest_descriptor(img)  # type: ignore[arg-type]
    add_referrers_to_layout(root, subject, _artifacts()[:1], CREATED)
    blobs = root / "blobs" / "sha256"
    other = Descriptor(OCI_MANIFEST, "sha256:" + "1" * 64, 10)
    foreign = artifact_manifest(_artifacts()[1], other, CREATED).manifest
    (blobs / sha256_bytes(foreign)[7:]).write_bytes(foreign)
    (blobs / "not-a-digest").write_bytes(b'{"subject": {}}')
    outside = tmp_path / "outside.json"
    outside.write_bytes(artifact_manifest(_artifacts()[2], subject, CREATED).manifest)
    (blobs / sha256_bytes(outside.read_bytes())[7:]).symlink_to(outside)
    assert [d["artifactType"] for d in layout_referrers(root, subject.digest)] == [CDX]


def test_a_layout_of_too_many_json_bytes_is_refused(
    layout: tuple[Path, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, img = layout
    subject = manifest_descriptor(img)  # type: ignore[arg-type]
    add_referrers_to_layout(root, subject, _artifacts(), CREATED)
    monkeypatch.setattr(referrers, "SCAN_MAX", 2000)
    with pytest.raises(IntegrityError, match="layout is hostile"):
        layout_referrers(root, subject.digest)
    monkeypatch.setattr(referrers, "BLOBS_MAX", 3)
    with pytest.raises(IntegrityError, match="over 3 blobs"):
        layout_referrers(root, subject.digest)


def test_a_layout_of_older_torchslim_still_lists_its_referrers(
    layout: tuple[Path, object],
) -> None:
    """Written before index.json named the image alone: the entries are read as before."""
    root, img = layout
    subject = manifest_descriptor(img)  # type: ignore[arg-type]
    made = add_referrers_to_layout(root, subject, _artifacts(), CREATED)
    index = json.loads((root / "index.json").read_text())
    index["manifests"] += [r.descriptor_json() for r in made]
    (root / "index.json").write_text(json.dumps(index))
    assert len(layout_referrers(root, subject.digest)) == 3
    assert read_oci_layout(root).digest() == img.digest()  # type: ignore[attr-defined]


def test_umoci_still_unpacks_a_layout_with_referrers(
    layout: tuple[Path, object], tmp_path: Path
) -> None:
    if shutil.which("umoci") is None:
        pytest.skip("umoci is not installed")
    root, img = layout
    add_referrers_to_layout(root, manifest_descriptor(img), _artifacts(), CREATED)  # type: ignore[arg-type]
    out = subprocess.run(
        ["umoci", "unpack", "--rootless", "--image", f"{root}:v1", str(tmp_path / "bundle")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.mark.e2e
def test_push_then_query_returns_the_three_artifacts(
    registry: Registry, layout: tuple[Path, object], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-logins"))
    _, img = layout
    pushed = push_image(img, f"{registry.host}/t/referrers:v1", tls_verify=False)  # type: ignore[arg-type]
    subject = manifest_descriptor(img)  # type: ignore[arg-type]
    assert pushed.manifest_digest == subject.digest
    with RegistryClient(registry.host, tls_verify=False) as client:
        assert registry_referrers(client, "t/referrers", subject.digest) == []
        made, fell_back = push_referrers(client, "t/referrers", subject, _artifacts(), CREATED)
        # distribution 2.8 has no referrers API: the sha256-<hex> tag holds them.
        assert fell_back
        tag = fallback_tag(subject.digest)
        resp = httpx.get(
            f"http://{registry.host}/v2/t/referrers/manifests/{tag}",
            headers={"Accept": OCI_INDEX},
        )
        assert resp.status_code == 200
        assert [m["digest"] for m in resp.json()["manifests"]] == [r.digest for r in made]
        # Pushing again keeps one entry per artifact.
        push_referrers(client, "t/referrers", subject, _artifacts(), CREATED)
        found = registry_referrers(client, "t/referrers", subject.digest)
        assert sorted(d["artifactType"] for d in found) == sorted([CDX, SPDX, INTOTO])
        docs = {d["artifactType"]: registry_document(client, "t/referrers", d) for d in found}
        assert docs == {a.artifact_type: a.data for a in _artifacts()}
        assert (
            registry_referrers(client, "t/referrers", subject.digest, INTOTO)[0]["artifactType"]
            == INTOTO
        )
        # A layout's referrers pushed again are the same manifests (what `push` can carry).
        root = layout[0]
        add_referrers_to_layout(root, subject, _artifacts(), CREATED)
        carried = layout_artifacts(root, subject.digest)
        by_type = sorted(_artifacts(), key=lambda a: a.artifact_type)
        assert [a for a, _ in carried] == by_type and {c for _, c in carried} == {CREATED}
        again, _ = push_referrers(client, "t/referrers", subject, [a for a, _ in carried], CREATED)
        assert sorted(r.digest for r in again) == sorted(r.digest for r in made)
