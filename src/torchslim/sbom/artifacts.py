"""The three supply-chain documents of an image, as OCI artifacts and as files.

``documents`` renders them once; the same list goes to a registry
(``oci.referrers.push_referrers``), into an OCI layout (``add_referrers_to_layout``)
and, with ``--sbom DIR``, beside any output (``write_documents``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from torchslim.oci.referrers import Artifact
from torchslim.sbom import cyclonedx, provenance, spdx
from torchslim.sbom.model import SbomInputs
from torchslim.sbom.provenance import Material, ProvenanceInputs

# artifactType → file suffix; also the order documents are written and attached in.
SUFFIXES = {
    cyclonedx.MEDIA_TYPE: ".cdx.json",
    spdx.MEDIA_TYPE: ".spdx.json",
    provenance.MEDIA_TYPE: ".provenance.json",
}
FORMATS = {"cyclonedx": cyclonedx.MEDIA_TYPE, "spdx": spdx.MEDIA_TYPE}


def documents(
    inputs: SbomInputs, prov: ProvenanceInputs | None = None, *, stem: str = "sbom"
) -> list[Artifact]:
    """CycloneDX, SPDX and (given its inputs) the provenance statement, in that order.

    The provenance lists both SBOMs as byproducts, by digest.
    """
    cdx = Artifact(cyclonedx.MEDIA_TYPE, cyclonedx.render_cyclonedx(inputs))
    spd = Artifact(spdx.MEDIA_TYPE, spdx.render_spdx(inputs))
    out = [cdx, spd]
    if prov is not None:
        names = [stem + SUFFIXES[a.artifact_type] for a in out]
        by = [
            Material(n, f"file:{n}", {"sha256": a.digest.removeprefix("sha256:")})
            for n, a in zip(names, out, strict=True)
        ]
        prov = replace(prov, byproducts=(*prov.byproducts, *by))
        out.append(Artifact(provenance.MEDIA_TYPE, provenance.render_provenance(prov)))
    return [Artifact(a.artifact_type, a.data, stem + SUFFIXES[a.artifact_type]) for a in out]


def write_documents(directory: Path, artifacts: Sequence[Artifact]) -> list[Path]:
    """Each artifact as ``DIR/<title>`` (written to a temporary name, then renamed)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for a in artifacts:
        path = directory / (a.title or f"document{SUFFIXES.get(a.artifact_type, '.json')}")
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_bytes(a.data)
        os.replace(tmp, path)
        paths.append(path)
    return paths
