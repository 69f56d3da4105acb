"""Manifest annotations: the OCI keys registries and scanners read from the manifest itself.

The image-spec puts ``org.opencontainers.image.base.name`` / ``.base.digest`` on the
manifest (a scanner finds the base without the config); registries show a manifest's (or,
for a multi-platform image, the index's) ``description``, ``licenses`` and ``source``. They
are copied from the image's labels, so both always say the same; the index carries those
every platform shares (``oci.index.common_annotations``).
"""

from __future__ import annotations

from collections.abc import Mapping

from torchslim.build.plan import Plan
from torchslim.oci.image import Image
from torchslim.oci.reference import Reference, parse_reference

OCI = "org.opencontainers.image."
ANNOTATED_LABELS = tuple(
    OCI + key
    for key in (
        "base.name",
        "base.digest",
        "created",
        "description",
        "licenses",
        "revision",
        "source",
        "title",
        "version",
    )
)


def annotations_from_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return {key: str(labels[key]) for key in ANNOTATED_LABELS if labels.get(key)}


def manifest_annotations(image: Image) -> dict[str, str]:
    """The annotations ``image``'s manifest gets: its OCI labels that describe it."""
    labels = (image.config().get("config") or {}).get("Labels") or {}
    return annotations_from_labels(labels)


def base_name(plan: Plan) -> str:
    """``org.opencontainers.image.base.name``: ``debian:bookworm`` for torchslim's base, a
    registry base fully qualified (``docker.io/library/python:3.11-slim``), else as configured."""
    if plan.base is None:
        return f"debian:{plan.debian.suite}"
    if plan.base.transport == "docker":
        ref = parse_reference(plan.base.target)
        return str(Reference(ref.registry, ref.repository, ref.tag))  # the digest has its own key
    return plan.cfg.base
