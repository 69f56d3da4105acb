"""Writing the build cache to a registry (``--cache-to``): every layer a build used, the
record of its proof and what its proofs learned, by key.

Per entry: a HEAD on its tag (there, and for what is learned the same manifest: skipped),
else its layer blob (HEAD, mounted from the repositories named, e.g. the image's own, or
uploaded), its config, then the manifest under the key's tag, last. A registry that fails
half-way leaves whole entries or none: a later build either finds an entry whose every
blob is there or misses it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from torchslim.buildcache.entry import AnyEntry
from torchslim.cache import BlobStore
from torchslim.config import Progress
from torchslim.oci.blobio import sha256_bytes
from torchslim.oci.distribution import RegistryClient
from torchslim.oci.media import OCI_MANIFEST
from torchslim.oci.reference import Reference
from torchslim.oci.upload import CHUNK_SIZE, CHUNKED_THRESHOLD, Blob, BlobPusher, PushResult


@dataclass
class ExportResult:
    """What one ``--cache-to`` wrote: entries put, entries already there, blob traffic."""

    reference: str
    written: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    blobs: PushResult = field(default_factory=PushResult)


def export_entries(
    entries: Sequence[AnyEntry],
    ref: Reference,
    store: BlobStore,
    *,
    client: RegistryClient,
    mount_from: Sequence[str] = (),
    progress: Progress | None = None,
) -> ExportResult:
    """Put each entry the repository lacks under its key's tag (see the module's text)."""
    repo = ref.repository
    result = ExportResult(f"{ref.registry}/{repo}")
    pusher = BlobPusher(
        client, repo, mount_from, progress, CHUNKED_THRESHOLD, CHUNK_SIZE, result.blobs
    )
    for entry in {e.tag: e for e in entries}.values():
        tag = entry.tag
        head = client.send(
            "HEAD",
            f"/v2/{repo}/manifests/{tag}",
            scope=pusher.scope,
            headers={"Accept": OCI_MANIFEST},  # else a registry may answer 404 for OCI ones
        )
        head.close()
        manifest = entry.manifest_bytes()
        if head.status_code == 200 and (
            not entry.replaceable
            or head.headers.get("Docker-Content-Digest") == sha256_bytes(manifest)
        ):
            result.present.append(entry.key)
            continue
        for blob in entry.blobs:
            pusher.push_blob(Blob(blob.digest, blob.size, _opener(store, blob.digest)))
        config = entry.config_bytes()
        pusher.push_blob(Blob(sha256_bytes(config), len(config), _bytes_opener(config)))
        pusher.put_manifest(tag, manifest, OCI_MANIFEST)
        result.written.append(entry.key)
    return result


def _opener(store: BlobStore, digest: str) -> Callable[[], BinaryIO]:
    return lambda: store.open(digest)


def _bytes_opener(data: bytes) -> Callable[[], BinaryIO]:
    return lambda: io.BytesIO(data)
