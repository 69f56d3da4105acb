"""``torchslim sbom IMAGE``: the SBOM attached to an image, read back from its referrers."""

from __future__ import annotations

from typing import Any

from torchslim.errors import ConfigError, TorchslimError
from torchslim.oci.image import Image
from torchslim.oci.layout import LayoutImage
from torchslim.oci.pull import RegistryImage, read_registry_image
from torchslim.oci.referrers import (
    CREATED_ANNOTATION,
    layout_document,
    layout_referrers,
    registry_document,
    registry_referrers,
)
from torchslim.oci.transport import open_image
from torchslim.sbom.artifacts import FORMATS


class NoSbomError(TorchslimError):
    """The image carries no SBOM of the asked format."""


def _open(ref: str, tls_verify: bool) -> Image:
    if ref.startswith("docker://"):
        return read_registry_image(ref.removeprefix("docker://"), tls_verify=tls_verify)
    return open_image(ref)


def _newest(descriptors: list[dict[str, Any]]) -> dict[str, Any]:
    """Of several SBOMs of one kind (rebuilt by other torchslim versions), the newest."""
    return max(
        descriptors,
        key=lambda d: ((d.get("annotations") or {}).get(CREATED_ANNOTATION, ""), d["digest"]),
    )


def read_sbom(ref: str, fmt: str = "cyclonedx", *, tls_verify: bool = True) -> bytes:
    """The ``fmt`` (cyclonedx | spdx) SBOM attached to the image ``ref``, as stored."""
    media = FORMATS.get(fmt)
    if media is None:
        raise ConfigError(f"unknown SBOM format {fmt!r}; use one of {', '.join(FORMATS)}")
    image = _open(ref, tls_verify)
    subject = image.digest()
    if isinstance(image, LayoutImage):
        found = layout_referrers(image.root, subject, media)
        if found:
            return layout_document(image.root, _newest(found))
    elif isinstance(image, RegistryImage):
        repo = image.reference.repository
        found = registry_referrers(image.client, repo, subject, media)
        if found:
            return registry_document(image.client, repo, _newest(found))
    else:
        raise NoSbomError(
            f"{ref}: no SBOM attached (torchslim writes SBOMs into oci: layouts and "
            "registries; rebuild with --sbom DIR to get files)"
        )
    raise NoSbomError(
        f"{ref}: image {subject} has no {fmt} SBOM attached; build it with torchslim to an "
        "oci: or docker:// output (or pass --sbom DIR to get files)"
    )
