"""Push images and indexes: only blobs the registry lacks go up, the manifest goes last.

Per blob: HEAD (present: skipped), then a cross-repository mount from the
repositories named (mounted), else an upload (uploaded): a monolithic PUT
streamed from the blob for small blobs, PATCH chunks for big ones. A
dropped upload is retried from a fresh session (or resumed where the
registry kept the bytes); a blob that did arrive is not sent again. The
manifest is put only after every blob is there, so a failed push leaves
the tag as it was.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from typing import BinaryIO

from torchslim.config import Progress
from torchslim.errors import BuildError, ConfigError
from torchslim.oci.blobio import sha256_bytes
from torchslim.oci.distribution import (
    RegistryClient,
)
from torchslim.oci.image import Image, manifest_media_type
from torchslim.oci.index import image_index, manifest_descriptor
from torchslim.oci.layer import Layer
from torchslim.oci.layout import LayoutImage
from torchslim.oci.media import OCI_INDEX
from torchslim.oci.pull import RegistryImage
from torchslim.oci.reference import Reference, as_reference
from torchslim.oci.referrers import push_layout_referrers
from torchslim.oci.upload import (
    CHUNK_SIZE,
    CHUNKED_THRESHOLD,
    Blob,
    BlobPusher,
    PushResult,
)

log = logging.getLogger(__name__)


def _image_blobs(image: Image) -> list[Blob]:
    config = image.config_bytes()

    def open_config() -> BinaryIO:
        return io.BytesIO(config)

    blobs = [Blob(sha256_bytes(config), len(config), open_config)]
    seen = {blobs[0].digest}
    for layer in image.layers():
        if layer.digest in seen:
            continue
        seen.add(layer.digest)
        blobs.append(Blob(layer.digest, layer.descriptor.size, _layer_opener(image, layer)))
    return blobs


def _layer_opener(image: Image, layer: Layer) -> Callable[[], BinaryIO]:
    return lambda: image.open_layer(layer)


def _origin(image: Image) -> RegistryImage | None:
    """The registry image a (mutated) image was built on, if any: its repo can lend blobs."""
    if isinstance(image, RegistryImage):
        return image
    base = getattr(image, "_base", None)  # oci.mutate keeps the original source here
    return base if isinstance(base, RegistryImage) else None


def _auto_mounts(images: Sequence[Image], ref: Reference) -> list[str]:
    out: list[str] = []
    for image in images:
        base = _origin(image)
        if base is not None and base.reference.registry == ref.registry:
            out.append(base.reference.repository)
    return out


def _client_for(ref: Reference, tls_verify: bool, client: RegistryClient | None) -> RegistryClient:
    if client is not None:
        if client.registry != ref.registry:
            raise ConfigError(f"client is for {client.registry}, not {ref.registry}")
        return client
    return RegistryClient(ref.registry, tls_verify=tls_verify)


def _target_ident(ref: Reference, digest: str) -> str:
    if ref.digest is not None and ref.digest != digest:
        raise ConfigError(
            f"cannot push image {digest} to {ref}: the reference pins another digest; "
            "drop @DIGEST or give a tag"
        )
    return ref.tag or digest


def push_image(
    image: Image,
    ref: Reference | str,
    *,
    tls_verify: bool = True,
    progress: Progress | None = None,
    mount_from: Sequence[str] = (),
    client: RegistryClient | None = None,
    chunked_threshold: int = CHUNKED_THRESHOLD,
    chunk_size: int = CHUNK_SIZE,
) -> PushResult:
    """Push blobs the registry lacks, then the manifest under ``ref``'s tag (or digest).

    ``mount_from`` names repositories of the same registry to mount blobs
    from; the repository of a registry base image is added automatically.
    ``progress(digest, sent, total)`` follows each upload.
    """
    return push_index(
        [image],
        ref,
        tls_verify=tls_verify,
        progress=progress,
        mount_from=mount_from,
        client=client,
        chunked_threshold=chunked_threshold,
        chunk_size=chunk_size,
        as_index=False,
    )


def push_index(
    images: Sequence[Image],
    ref: Reference | str,
    *,
    tls_verify: bool = True,
    progress: Progress | None = None,
    mount_from: Sequence[str] = (),
    client: RegistryClient | None = None,
    chunked_threshold: int = CHUNKED_THRESHOLD,
    chunk_size: int = CHUNK_SIZE,
    as_index: bool = True,
) -> PushResult:
    """Push several platform images by digest, then an OCI index naming them under ``ref``."""
    r = as_reference(ref)
    if not images:
        raise BuildError(f"nothing to push to {r}: no images were given")
    if as_index:
        image_index(images)  # refuses two images of one platform before anything is sent
    cl = _client_for(r, tls_verify, client)
    result = PushResult(reference=str(r))
    mounts = [*mount_from, *_auto_mounts(images, r)]
    pusher = BlobPusher(cl, r.repository, mounts, progress, chunked_threshold, chunk_size, result)
    try:
        for image in images:
            for blob in _image_blobs(image):
                pusher.push_blob(blob)
        if not as_index:
            image = images[0]
            ident = _target_ident(r, image.digest())
            result.manifest_digest = pusher.put_manifest(
                ident, image.manifest_bytes(), manifest_media_type(image)
            )
            return result
        for image in images:
            pusher.put_manifest(image.digest(), image.manifest_bytes(), manifest_media_type(image))
        index = image_index(images)
        ident = _target_ident(r, sha256_bytes(index))
        result.manifest_digest = pusher.put_manifest(ident, index, OCI_INDEX)
        return result
    finally:
        if client is None:
            cl.close()


def push_with_referrers(
    image: Image,
    ref: Reference | str,
    *,
    tls_verify: bool = True,
    progress: Progress | None = None,
    mount_from: Sequence[str] = (),
) -> tuple[PushResult, list[str]]:
    """``push_image``, then (over the same connection) the referrers a layout attaches to
    the image (its SBOMs and provenance); returns the push and the referrers' digests."""
    r = as_reference(ref)
    with RegistryClient(r.registry, tls_verify=tls_verify) as client:
        result = push_image(image, r, progress=progress, mount_from=mount_from, client=client)
        if not isinstance(image, LayoutImage):
            return result, []
        made, _ = push_layout_referrers(
            client, r.repository, image.root, manifest_descriptor(image)
        )
    return result, [m.digest for m in made]
