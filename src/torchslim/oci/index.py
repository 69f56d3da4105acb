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


def index_bytes(
    entries: Sequence[dict[str, Any]], annotations: dict[str, str] | None = None
) -> bytes:
    """An OCI image index over ``entries``, canonically serialized."""
    index: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(entries)}
    if annotations:
        index["annotations"] = dict(annotations)
    return canonical_json(index)


def common_annotations(images: Sequence[Image]) -> dict[str, str]:
    """The manifest annotations every image agrees on: what the index says of them all
    (registries show an index's ``description`` and ``licenses``, scanners its base)."""
    sets = [image.manifest().get("annotations") or {} for image in images]
    if not sets:
        return {}
    return {k: str(v) for k, v in sets[0].items() if all(s.get(k) == v for s in sets[1:])}


def image_index(images: Sequence[Image]) -> bytes:
    """The index of several platform images; two images of one platform are refused.

    The index carries the manifest annotations all the images share."""
    platforms = [str(img.platform) for img in images]
    dupes = sorted({p for p in platforms if platforms.count(p) > 1})
    if dupes:
        raise BuildError(f"an image index cannot hold two images for {', '.join(dupes)}")
    return index_bytes([index_entry(img) for img in images], common_annotations(images))
