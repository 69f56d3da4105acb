"""The one image-index writer: several platform manifests named by one OCI index.

Used by the layout sink (a nested index in ``index.json``) and by the registry push,
so a multi-platform image has the same index digest wherever it is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torchslim.errors import BuildError
from torchslim.oci.image import Image, canonical_json, manifest_media_type
from torchslim.oci.layer import Descriptor
from torchslim.oci.media import OCI_INDEX


def manifest_descriptor(image: Image, annotations: dict[str, str] | None = None) -> Descriptor:
    """The descriptor of ``image``'s manifest."""
    manifest = image.manifest_bytes()
    return Descriptor(manifest_media_type(image), image.digest(), len(manifest), annotations)


def index_entry(
    image: Image,
    annotations: dict[str, str] | None = None,
    *,
    manifest: Descriptor | None = None,
) -> dict[str, Any]:
    """An index entry for ``image``'s manifest (or another form of it), with its platform."""
    p = image.platform
    platform: dict[str, str] = {"architecture": p.arch, "os": p.os}
    if p.variant:
        platform["variant"] = p.variant
    if manifest is None:
        desc = manifest_descriptor(image, annotations)
    else:
        desc = Descriptor(manifest.media_type, manifest.digest, manifest.size, annotations)
    return {**desc.to_json(), "platform": platform}


def index_bytes(entries: Sequence[dict[str, Any]]) -> bytes:
    """An OCI image index over ``entries``, canonically serialized."""
    return canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(entries)})


def image_index(images: Sequence[Image]) -> bytes:
    """The index of several platform images; two images of one platform are refused."""
    platforms = [str(img.platform) for img in images]
    dupes = sorted({p for p in platforms if platforms.count(p) > 1})
    if dupes:
        raise BuildError(f"an image index cannot hold two images for {', '.join(dupes)}")
    return index_bytes([index_entry(img) for img in images])
