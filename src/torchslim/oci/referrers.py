"""OCI 1.1 referrers: artifacts (SBOMs, provenance) attached to an image by ``subject``.

An artifact is an image manifest whose ``artifactType`` says what it is, whose config
is the empty descriptor (``{}``) and whose one layer is the document; its ``subject``
names the image manifest it describes (image-spec 1.1, "Guidelines for artifact usage").

* OCI layout: the artifact blobs and manifests go to ``blobs/sha256/``; ``index.json``
  keeps naming the image alone, so every tool that opens a layout by its one entry reads
  it as is (``skopeo``/``podman`` ``oci:DIR``, syft's ``oci-dir:``, ``umoci``). They are
  found as a registry's referrers API finds them: every manifest of the store whose
  ``subject`` is the image.
* Registry: blobs, then the manifest by digest. A registry with the referrers API
  answers with an ``OCI-Subject`` header; for one without (distribution 2.8, Debian's
  ``docker-registry``) the image index under the tag ``sha256-<hex>`` lists the
  referrers (distribution-spec 1.1, "Referrers Tag Schema").
* Reading goes the same ways back: ``GET /v2/<name>/referrers/<digest>``, else the tag.

Nothing here knows what an SBOM is.
"""

from __future__ import annotations

import base64
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchslim.cache import split_digest
from torchslim.errors import BuildError, IntegrityError, NetworkError, TorchslimError
from torchslim.oci import layout
from torchslim.oci.blobio import check_bytes, sha256_bytes
from torchslim.oci.distribution import RegistryClient, pull_scope, push_scope, registry_errors
from torchslim.oci.image import canonical_json, parse_json_object
from torchslim.oci.layer import Descriptor
from torchslim.oci.limits import DOCUMENT_MAX, MANIFEST_MAX, MiB
from torchslim.oci.media import OCI_INDEX, OCI_MANIFEST

EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_DATA = b"{}"
EMPTY_DIGEST = sha256_bytes(EMPTY_DATA)
CREATED_ANNOTATION = "org.opencontainers.image.created"
TITLE_ANNOTATION = "org.opencontainers.image.title"
SUBJECT_HEADER = "oci-subject"
_HEX64 = re.compile(r"[0-9a-f]{64}")
BLOBS_MAX = 1 << 16  # an image layout holds a few blobs per layer, not millions
SCAN_MAX = 256 * MiB  # the small JSON blobs read to find referrers, all together


@dataclass(frozen=True)
class Artifact:
    """One document to attach: its type, bytes, and the file name it is known by."""

    artifact_type: str  # "application/vnd.cyclonedx+json"
    data: bytes
    title: str | None = None  # "sbom.cdx.json": the layer's org.opencontainers.image.title

    @property
    def digest(self) -> str:
        return sha256_bytes(self.data)


@dataclass(frozen=True)
class Referrer:
    """An artifact manifest: its bytes and what an index lists about it."""

    manifest: bytes
    artifact_type: str
    annotations: dict[str, str]

    @property
    def digest(self) -> str:
        return sha256_bytes(self.manifest)

    def descriptor_json(self) -> dict[str, Any]:
        """The descriptor of this manifest in an index: with ``artifactType`` and annotations."""
        d = Descriptor(OCI_MANIFEST, self.digest, len(self.manifest), self.annotations or None)
        return {**d.to_json(), "artifactType": self.artifact_type}


def empty_descriptor() -> dict[str, Any]:
    return {
        "mediaType": EMPTY_MEDIA_TYPE,
        "digest": EMPTY_DIGEST,
        "size": len(EMPTY_DATA),
        "data": base64.b64encode(EMPTY_DATA).decode(),
    }


def subject_json(subject: Descriptor) -> dict[str, Any]:
    return {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size}


def artifact_manifest(artifact: Artifact, subject: Descriptor, created: str) -> Referrer:
    """The OCI 1.1 manifest that attaches ``artifact`` to ``subject`` (canonical JSON)."""
    layer_ann = {TITLE_ANNOTATION: artifact.title} if artifact.title else None
    layer = Descriptor(artifact.artifact_type, artifact.digest, len(artifact.data), layer_ann)
    annotations = {CREATED_ANNOTATION: created}
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact.artifact_type,
        "config": empty_descriptor(),
        "layers": [layer.to_json()],
        "subject": subject_json(subject),
        "annotations": annotations,
    }
    return Referrer(canonical_json(manifest), artifact.artifact_type, annotations)


# -- OCI layout


def _blob(root: Path, digest: str) -> Path:
    algo, hexpart = split_digest(digest)
    return root / "blobs" / algo / hexpart


def _put_file(path: Path, data: bytes) -> None:
    """Write ``data`` at ``path`` through a temporary sibling (never a half-written blob)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def add_referrers_to_layout(
    root: Path, subject: Descriptor, artifacts: Sequence[Artifact], created: str
) -> list[Referrer]:
    """Attach ``artifacts`` to the manifest ``subject`` of the layout at ``root``: their
    blobs only, each written once (running it twice changes nothing).

    ``index.json`` is left as it is, naming the image alone: a second entry there makes
    skopeo and podman ask "more than one image in oci, choose an image" and syft's
    ``oci-dir:`` refuse the layout; buildx's nesting (attestations beside the image in an
    index) is refused by syft's ``oci-dir:`` and by umoci ("tag is ambiguous").
    """
    if not (root / "index.json").is_file():
        raise BuildError(f"{root} is not an OCI image layout (no index.json)")
    if not _blob(root, subject.digest).is_file():
        raise BuildError(f"{root} does not hold the manifest {subject.digest} to attach to")
    made = []
    for artifact in artifacts:
        ref = artifact_manifest(artifact, subject, created)
        for digest, data in (
            (EMPTY_DIGEST, EMPTY_DATA),
            (artifact.digest, artifact.data),
            (ref.digest, ref.manifest),
        ):
            if not _blob(root, digest).is_file():
                _put_file(_blob(root, digest), data)
        made.append(ref)
    return made


def _small_json_blobs(root: Path) -> Iterator[str]:
    """Digests of the layout's plain-file blobs that may be manifests: at most MANIFEST_MAX
    bytes, a JSON object (layers, links and odd names are passed over unread). A layout
    of more than BLOBS_MAX blobs, or whose candidates add up to more than SCAN_MAX bytes,
    is refused."""
    folder = root / "blobs" / "sha256"
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return
    if len(names) > BLOBS_MAX:
        raise IntegrityError(f"{root}: over {BLOBS_MAX} blobs, not an image layout")
    total = 0
    for name in names:
        if not _HEX64.fullmatch(name):
            continue
        try:
            st = (folder / name).lstat()
            if not stat.S_ISREG(st.st_mode) or not 0 < st.st_size <= MANIFEST_MAX:
                continue
            with (folder / name).open("rb") as f:
                if f.read(1) != b"{":
                    continue
        except OSError:
            continue
        total += st.st_size
        if total > SCAN_MAX:
            raise IntegrityError(
                f"{root}: its small JSON blobs add up to over {SCAN_MAX >> 20} MiB; "
                "the layout is hostile, refusing to look for referrers in it"
            )
        yield f"sha256:{name}"


def _referrer_descriptor(digest: str, data: bytes, subject_digest: str) -> dict[str, Any] | None:
    """What an index would list about the manifest ``data`` when it is an artifact whose
    subject is ``subject_digest``; None for anything else."""
    if b'"subject"' not in data:
        return None
    try:
        manifest = parse_json_object(data, f"blob {digest[:19]}")
    except TorchslimError:
        return None
    subject = manifest.get("subject")
    artifact_type = manifest.get("artifactType")
    if (
        manifest.get("mediaType") != OCI_MANIFEST
        or not isinstance(artifact_type, str)
        or not isinstance(subject, dict)
        or subject.get("digest") != subject_digest
    ):
        return None
    annotations = manifest.get("annotations")
    desc = Descriptor(
        OCI_MANIFEST,
        digest,
        len(data),
        {str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else None,
    )
    return {**desc.to_json(), "artifactType": artifact_type}


def _referrer_order(descriptor: dict[str, Any]) -> tuple[str, str, str]:
    created = (descriptor.get("annotations") or {}).get(CREATED_ANNOTATION, "")
    return str(created), str(descriptor["artifactType"]), str(descriptor["digest"])


def layout_referrers(
    root: Path, subject_digest: str, artifact_type: str | None = None
) -> list[dict[str, Any]]:
    """Descriptors of the artifacts whose subject is ``subject_digest``: every manifest in
    ``blobs/`` that names it (what the referrers API answers), oldest first, then by type.

    Layouts of older torchslim versions, which also listed them in ``index.json``, are
    read the same way."""
    out = []
    for digest in _small_json_blobs(root):
        found = _referrer_descriptor(digest, read_layout_blob(root, digest), subject_digest)
        if found is not None and artifact_type in (None, found["artifactType"]):
            out.append(found)
    return sorted(out, key=_referrer_order)


def read_layout_blob(root: Path, digest: str, cap: int = MANIFEST_MAX) -> bytes:
    """A blob of the layout, under ``blobs/`` only, at most ``cap`` bytes, digest-checked."""
    return layout.read_layout_blob(root, str(digest), f"blob {str(digest)[:19]}", cap)


def layout_document(root: Path, descriptor: dict[str, Any]) -> bytes:
    """The document an artifact manifest (given by its index descriptor) carries."""
    manifest = parse_json_object(read_layout_blob(root, str(descriptor["digest"])), "artifact")
    layers = manifest.get("layers") or []
    if not layers:
        raise IntegrityError(f"{root}: artifact {descriptor['digest']} has no layer")
    return read_layout_blob(root, str(layers[0]["digest"]), DOCUMENT_MAX)


def layout_artifacts(root: Path, subject_digest: str) -> list[tuple[Artifact, str]]:
    """The artifacts attached to ``subject_digest`` in a layout, with their created dates:
    pushing them again (``push_referrers``) gives the same manifest digests."""
    out = []
    for entry in layout_referrers(root, subject_digest):
        manifest = parse_json_object(read_layout_blob(root, str(entry["digest"])), "artifact")
        layer = (manifest.get("layers") or [{}])[0]
        title = (layer.get("annotations") or {}).get(TITLE_ANNOTATION)
        created = str((manifest.get("annotations") or {}).get(CREATED_ANNOTATION, ""))
        data = layout_document(root, entry)
        out.append((Artifact(str(manifest.get("artifactType")), data, title), created))
    return out


# -- registry


def fallback_tag(subject_digest: str) -> str:
    """``sha256-<hex>``: the tag a registry without the referrers API keeps referrers under."""
    algo, hexpart = split_digest(subject_digest)
    return f"{algo}-{hexpart}"


def _put_blob(client: RegistryClient, repo: str, data: bytes) -> None:
    digest = sha256_bytes(data)
    scope = push_scope(repo)
    if client.has_blob(repo, digest, scope):
        return
    resp = client.send("POST", f"/v2/{repo}/blobs/uploads/", scope=scope)
    location = resp.headers.get("location")
    if resp.status_code != 202 or not location:
        raise NetworkError(
            f"registry {client.registry} refused to start an upload to {repo} "
            f"({registry_errors(resp)}); check your push rights"
        )
    url = str(resp.request.url.join(location).copy_merge_params({"digest": digest}))
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))}
    resp = client.send("PUT", url, scope=scope, headers=headers, body=data)
    if resp.status_code != 201:
        raise NetworkError(
            f"registry {client.registry} refused blob {digest} ({registry_errors(resp)})"
        )


def _put_manifest(client: RegistryClient, repo: str, ident: str, data: bytes, media: str) -> str:
    resp = client.send(
        "PUT",
        f"/v2/{repo}/manifests/{ident}",
        scope=push_scope(repo),
        headers={"Content-Type": media},
        body=data,
    )
    if resp.status_code not in (200, 201):
        raise BuildError(
            f"registry {client.registry} rejected manifest {ident} for {repo} "
            f"({registry_errors(resp)}); the image was pushed, its SBOM was not"
        )
    return str(resp.headers.get(SUBJECT_HEADER, ""))


def _get_index(client: RegistryClient, path: str, repo: str) -> dict[str, Any] | None:
    """An image index at ``path``, or None on 404 (no API, or no tag)."""
    what = f"{client.registry}/{repo} referrers index"
    resp, body = client.get_small(
        path, scope=pull_scope(repo), cap=MANIFEST_MAX, what=what, headers={"Accept": OCI_INDEX}
    )
    if resp.status_code == 404:
        return None
    if resp.status_code != 200:
        raise NetworkError(f"GET {path} on {client.registry}: {registry_errors(resp, body)}")
    return parse_json_object(body, what)


def push_referrers(
    client: RegistryClient,
    repo: str,
    subject: Descriptor,
    artifacts: Sequence[Artifact],
    created: str,
) -> tuple[list[Referrer], bool]:
    """Push ``artifacts`` as referrers of ``subject``; returns them and whether the tag
    fallback was used (the registry did not confirm the subject)."""
    made = []
    confirmed = True
    for artifact in artifacts:
        ref = artifact_manifest(artifact, subject, created)
        _put_blob(client, repo, EMPTY_DATA)
        _put_blob(client, repo, artifact.data)
        answer = _put_manifest(client, repo, ref.digest, ref.manifest, OCI_MANIFEST)
        confirmed = confirmed and answer == subject.digest
        made.append(ref)
    if not confirmed:
        tag = fallback_tag(subject.digest)
        index = _get_index(client, f"/v2/{repo}/manifests/{tag}", repo) or {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [],
        }
        entries = list(index.get("manifests") or [])
        have = {str(e.get("digest")) for e in entries}
        entries += [r.descriptor_json() for r in made if r.digest not in have]
        index["manifests"] = entries
        _put_manifest(client, repo, tag, canonical_json(index), OCI_INDEX)
    return made, not confirmed


def registry_referrers(
    client: RegistryClient, repo: str, subject_digest: str, artifact_type: str | None = None
) -> list[dict[str, Any]]:
    """Descriptors of ``subject_digest``'s referrers: the API, else the fallback tag."""
    index = _get_index(client, f"/v2/{repo}/referrers/{subject_digest}", repo)
    if index is None:
        index = _get_index(client, f"/v2/{repo}/manifests/{fallback_tag(subject_digest)}", repo)
    entries = [dict(e) for e in (index or {}).get("manifests") or []]
    if artifact_type is not None:
        entries = [e for e in entries if e.get("artifactType") == artifact_type]
    return entries


def registry_document(client: RegistryClient, repo: str, descriptor: dict[str, Any]) -> bytes:
    """The document an artifact manifest (given by its descriptor) carries, digest-checked."""
    data, _, _ = client.get_manifest(repo, str(descriptor["digest"]))
    layers = parse_json_object(data, "artifact manifest").get("layers") or []
    if not layers:
        raise IntegrityError(
            f"{client.registry}/{repo}: artifact {descriptor['digest']} has no layer"
        )
    digest = str(layers[0]["digest"])
    what = f"{client.registry}/{repo} blob {digest}"
    split_digest(digest, what)
    resp, body = client.get_small(
        f"/v2/{repo}/blobs/{digest}", scope=pull_scope(repo), cap=DOCUMENT_MAX, what=what
    )
    if resp.status_code != 200:
        raise NetworkError(f"{what}: {registry_errors(resp, body)}")
    return check_bytes(body, digest, what)


def push_layout_referrers(
    client: RegistryClient, repo: str, root: Path, subject: Descriptor
) -> tuple[list[Referrer], bool]:
    """Push what a layout attaches to ``subject`` (``torchslim push oci:DIR``): the same
    artifact manifests, so the same digests, as the layout holds."""
    by_created: dict[str, list[Artifact]] = {}
    for artifact, created in layout_artifacts(root, subject.digest):
        by_created.setdefault(created, []).append(artifact)
    made: list[Referrer] = []
    tagged = False
    for created, artifacts in sorted(by_created.items()):
        refs, fallback = push_referrers(client, repo, subject, artifacts, created)
        made += refs
        tagged = tagged or fallback
    return made, tagged
