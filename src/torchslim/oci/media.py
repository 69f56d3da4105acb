"""Media types, and the mapping between Docker's and OCI's names for the same bytes."""

from __future__ import annotations

OCI_LAYOUT_VERSION = "1.0.0"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"

DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})

# Same bytes, OCI name: an OCI manifest should not carry Docker layer types.
_DOCKER_TO_OCI_LAYER = {
    DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
    DOCKER_LAYER_TAR: OCI_LAYER_TAR,
    DOCKER_FOREIGN_LAYER: OCI_LAYER_ND_GZIP,
}

COMPRESSION_MEDIA_TYPE = {
    "gzip": OCI_LAYER_GZIP,
    "zstd": OCI_LAYER_ZSTD,
    "zstd:chunked": OCI_LAYER_ZSTD,  # the same media type; the annotations say chunked
    "estargz": OCI_LAYER_GZIP,  # a gzip tar; the annotations say eStargz
    "none": OCI_LAYER_TAR,
}

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
CONTAINERD_NAME_ANNOTATION = "io.containerd.image.name"


def oci_layer_type(media_type: str) -> str:
    """The OCI name of a layer media type (Docker names map to their OCI twins)."""
    return _DOCKER_TO_OCI_LAYER.get(media_type, media_type)


def sniff_layer_type(head: bytes) -> str:
    """Guess a layer's media type from its first bytes (for archives that carry none)."""
    if head.startswith(b"\x1f\x8b"):
        return OCI_LAYER_GZIP
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return OCI_LAYER_ZSTD
    return OCI_LAYER_TAR
