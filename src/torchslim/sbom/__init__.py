"""SBOMs and build provenance for the images torchslim builds.

``collect`` gathers the inputs (an image's files + the lock + the slimming removals),
``cyclonedx`` / ``spdx`` render them, ``provenance`` writes the in-toto statement, and
``artifacts.documents`` turns them into the three OCI artifacts (``oci.referrers``
attaches them) or files. ``read.read_sbom`` reads one back from an image.
"""

from torchslim.sbom.artifacts import documents, write_documents
from torchslim.sbom.attribution import removals_from_skipped
from torchslim.sbom.collect import collect
from torchslim.sbom.model import BaseRef, ImageIdentity, Removal, SbomInputs, TorchInfo
from torchslim.sbom.provenance import (
    Material,
    ProvenanceInputs,
    bytes_material,
    file_material,
    git_material,
    image_material,
)

__all__ = [
    "BaseRef",
    "ImageIdentity",
    "Material",
    "ProvenanceInputs",
    "Removal",
    "SbomInputs",
    "TorchInfo",
    "bytes_material",
    "collect",
    "documents",
    "file_material",
    "git_material",
    "image_material",
    "removals_from_skipped",
    "write_documents",
]
