"""SPDX 2.3 JSON of an image, as plain dicts (the format is small; no library needed).

The document DESCRIBES the image package; the image CONTAINS the operating system,
every Debian package and every top-level Python distribution; a distribution CONTAINS
the ones it vendors; the image is a DESCENDANT_OF a registry base. Licenses that are
not on the SPDX list are declared once in ``hasExtractedLicensingInfos``. What slimming
removed is an annotation per package and rule. Keys are sorted and ids derived from
names, so the same inputs give the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

from packaging.utils import canonicalize_name

from torchslim.sbom import ids
from torchslim.sbom.model import NOASSERTION, DebianPackage, License, PythonDist, SbomInputs

MEDIA_TYPE = "application/spdx+json"
SPDX_VERSION = "SPDX-2.3"
DOCUMENT_ID = "SPDXRef-DOCUMENT"


class _Doc:
    def __init__(self, inputs: SbomInputs) -> None:
        self.inputs = inputs
        self.tool = f"Tool: torchslim-{inputs.tool_version or 'unknown'}"
        self.packages: list[dict[str, Any]] = []
        self.relationships: list[dict[str, str]] = []
        self.refs: dict[str, dict[str, str]] = {}

    def relate(self, a: str, kind: str, b: str) -> None:
        self.relationships.append(
            {"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b}
        )

    def annotations(self, pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
        return [
            {
                "annotationDate": self.inputs.image.created,
                "annotationType": "OTHER",
                "annotator": self.tool,
                "comment": f"{k}={v}",
            }
            for k, v in pairs
        ]

    def package(
        self,
        spdxid: str,
        name: str,
        version: str | None,
        *,
        purpose: str,
        lic: License | None = None,
        purl: str | None = None,
        download: str | None = None,
        sha256: str | None = None,
        notes: list[tuple[str, str]] | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        pkg: dict[str, Any] = {
            "SPDXID": spdxid,
            "name": name,
            "downloadLocation": download or NOASSERTION,
            "filesAnalyzed": False,
            "licenseConcluded": NOASSERTION,
            "licenseDeclared": lic.spdx if lic else NOASSERTION,
            "copyrightText": NOASSERTION,
            "primaryPackagePurpose": purpose,
            **(extra or {}),
        }
        if version:
            pkg["versionInfo"] = version
        if lic is not None:
            pkg["licenseComments"] = f"declared license read from: {lic.source}"
            for ref in lic.refs:
                self.refs[ref.id] = {
                    "licenseId": ref.id,
                    "name": ref.name,
                    "extractedText": ref.text,
                }
        if purl:
            pkg["externalRefs"] = [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": purl,
                }
            ]
        if sha256:
            pkg["checksums"] = [{"algorithm": "SHA256", "checksumValue": sha256}]
        if notes:
            pkg["annotations"] = self.annotations(notes)
        self.packages.append(pkg)


def _deb(doc: _Doc, image_id: str, pkg: DebianPackage) -> None:
    sid = ids.spdx_id("deb", pkg.name, pkg.arch, pkg.version)
    source = f"built from Debian source package {pkg.source or pkg.name}"
    if pkg.source_version:
        source += f" {pkg.source_version}"
    doc.package(
        sid,
        pkg.name,
        pkg.version,
        purpose="LIBRARY",
        lic=pkg.license,
        purl=ids.deb_purl(pkg, doc.inputs.os.distro),
        download=ids.deb_download(pkg),
        sha256=pkg.sha256,
        notes=ids.deb_properties(pkg)[1:],
        extra={"sourceInfo": source, "supplier": "Organization: Debian"},
    )
    doc.relate(image_id, "CONTAINS", sid)


def _python(doc: _Doc, image_id: str, dists: tuple[PythonDist, ...]) -> None:
    def sid(d: PythonDist) -> str:
        return ids.spdx_id("pypi", canonicalize_name(d.name), d.version, d.location)

    top: dict[str, str] = {canonicalize_name(d.name): sid(d) for d in dists if not d.vendored_by}
    for d in dists:
        # SPDX's downloadLocation is a network location; a local wheel is a note instead.
        remote = d.url if d.url and d.url.startswith(("https://", "http://")) else None
        local = [(f"{ids.PROP}:python:url", d.url)] if d.url and not remote else []
        doc.package(
            sid(d),
            d.name,
            d.version,
            purpose="LIBRARY",
            lic=d.license,
            purl=ids.pypi_purl(d),
            download=remote,
            sha256=d.sha256,
            notes=ids.python_properties(d)[1:] + local,
        )
        parent = top.get(d.vendored_by, image_id) if d.vendored_by else image_id
        doc.relate(parent, "CONTAINS", sid(d))


def _image_and_base(doc: _Doc) -> str:
    inputs = doc.inputs
    img = inputs.image
    image_id = ids.spdx_id("image", img.name)
    notes = [
        (f"{ids.PROP}:platform", img.platform),
        ("org.opencontainers.image.base.name", inputs.base.name),
    ]
    if inputs.torch is not None:
        notes += [
            (f"{ids.PROP}:torch:version", inputs.torch.version),
            (f"{ids.PROP}:torch:variant", inputs.torch.variant),
            (f"{ids.PROP}:torch:cuda", inputs.torch.cuda or "none"),
        ]
    notes += [
        (k.replace(":removed:", ":removed-unattributed:"), v)
        for k, v in ids.removed_properties(inputs.unattributed)
    ]
    lic = License(img.licenses, "org.opencontainers.image.licenses") if img.licenses else None
    extra = {"description": img.description} if img.description else None
    doc.package(
        image_id,
        img.name,
        img.tag or img.digest,
        purpose="CONTAINER",
        lic=lic,
        purl=ids.image_purl(img),
        sha256=img.digest.removeprefix("sha256:"),
        notes=notes,
        extra=extra,
    )
    doc.relate(DOCUMENT_ID, "DESCRIBES", image_id)
    os_ = inputs.os
    if os_.id:
        os_id = ids.spdx_id("os", os_.id, os_.version_id or os_.codename)
        doc.package(
            os_id,
            os_.id,
            os_.version_id or os_.codename or None,
            purpose="OPERATING_SYSTEM",
            extra={"description": os_.pretty_name} if os_.pretty_name else None,
        )
        doc.relate(image_id, "CONTAINS", os_id)
    if inputs.base.digest:
        base_id = ids.spdx_id("base", inputs.base.name, inputs.base.digest)
        doc.package(
            base_id,
            inputs.base.name,
            inputs.base.digest,
            purpose="CONTAINER",
            purl=ids.base_purl(inputs.base),
            sha256=inputs.base.digest.removeprefix("sha256:"),
        )
        doc.relate(image_id, "DESCENDANT_OF", base_id)
    return image_id


def render_spdx(inputs: SbomInputs) -> bytes:
    """The SPDX 2.3 JSON document, UTF-8, keys sorted, ending in a newline."""
    doc = _Doc(inputs)
    image_id = _image_and_base(doc)
    for pkg in inputs.debian:
        _deb(doc, image_id, pkg)
    _python(doc, image_id, inputs.python)
    uid = ids.document_uuid("spdx", inputs.image, inputs.tool_version)
    name = f"{inputs.image.name}:{inputs.image.tag}" if inputs.image.tag else inputs.image.name
    slug = "".join(c if c.isalnum() or c in ".-" else "-" for c in name)
    document: dict[str, Any] = {
        "spdxVersion": SPDX_VERSION,
        "dataLicense": "CC0-1.0",
        "SPDXID": DOCUMENT_ID,
        "name": name,
        "documentNamespace": f"https://spdx.org/spdxdocs/torchslim/{slug}-{uid}",
        "creationInfo": {"created": inputs.image.created, "creators": [doc.tool]},
        "packages": doc.packages,
        "relationships": doc.relationships,
    }
    if doc.refs:
        document["hasExtractedLicensingInfos"] = [doc.refs[k] for k in sorted(doc.refs)]
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
