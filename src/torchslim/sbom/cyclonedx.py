"""CycloneDX 1.6 JSON of an image, written with cyclonedx-python-lib.

The image is ``metadata.component`` (type container); its base, the operating system,
every Debian package and every Python distribution are components (vendored
distributions nested inside the one that vendors them). Ids and dates come from the
image, never from the clock or a random source: the same inputs give the same bytes.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from datetime import datetime

from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import LicenseExpression
from cyclonedx.model.tool import ToolRepository
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL
from packaging.utils import canonicalize_name

from torchslim.sbom import ids
from torchslim.sbom.model import DebianPackage, License, PythonDist, SbomInputs

MEDIA_TYPE = "application/vnd.cyclonedx+json"


def _props(pairs: Iterable[tuple[str, str]]) -> list[Property]:
    return [Property(name=k, value=v) for k, v in pairs]


def _licenses(lic: License) -> list[LicenseExpression]:
    return [LicenseExpression(lic.expression)] if lic.expression else []


def _sha256(hexdigest: str | None) -> list[HashType]:
    return [HashType(alg=HashAlgorithm.SHA_256, content=hexdigest)] if hexdigest else []


def _distribution(url: str | None) -> list[ExternalReference]:
    if not url:
        return []
    return [ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(url))]


def _deb(pkg: DebianPackage, distro: str) -> Component:
    purl = ids.deb_purl(pkg, distro)
    return Component(
        name=pkg.name,
        version=pkg.version,
        type=ComponentType.LIBRARY,
        bom_ref=purl,
        purl=PackageURL.from_string(purl),
        licenses=_licenses(pkg.license),
        hashes=_sha256(pkg.sha256),
        external_references=_distribution(ids.deb_download(pkg)),
        properties=_props(ids.deb_properties(pkg)),
    )


def _python(dist: PythonDist, nested: list[Component]) -> Component:
    purl = ids.pypi_purl(dist)
    # Two copies of one release (installed and vendored) share a purl; the ref stays unique.
    ref = purl if dist.vendored_by is None else f"{purl}#{dist.location}"
    return Component(
        name=dist.name,
        version=dist.version,
        type=ComponentType.LIBRARY,
        bom_ref=ref,
        purl=PackageURL.from_string(purl),
        licenses=_licenses(dist.license),
        hashes=_sha256(dist.sha256),
        external_references=_distribution(dist.url),
        properties=_props(ids.python_properties(dist)),
        components=nested,
    )


def _python_tree(dists: tuple[PythonDist, ...]) -> list[Component]:
    """Top-level distributions, each with the ones it vendors nested inside."""
    vendored: dict[str, list[PythonDist]] = {}
    for d in dists:
        if d.vendored_by is not None:
            vendored.setdefault(d.vendored_by, []).append(d)
    top = [d for d in dists if d.vendored_by is None]
    out = []
    for d in top:
        inner = [_python(v, []) for v in vendored.pop(canonicalize_name(d.name), [])]
        out.append(_python(d, inner))
    # A vendor we did not find as a distribution: keep its vendored ones at the top level.
    out += [_python(v, []) for group in vendored.values() for v in group]
    return out


def _base_and_os(inputs: SbomInputs) -> list[Component]:
    out: list[Component] = []
    os_ = inputs.os
    if os_.id:
        out.append(
            Component(
                name=os_.id,
                version=os_.version_id or os_.codename or None,
                type=ComponentType.OPERATING_SYSTEM,
                bom_ref=f"os:{os_.id}@{os_.version_id or os_.codename}",
                description=os_.pretty_name or None,
                properties=_props(
                    [(f"{ids.PROP}:os:codename", os_.codename)] if os_.codename else []
                ),
            )
        )
    base = inputs.base
    if base.digest:
        purl = ids.base_purl(base)
        assert purl is not None
        out.append(
            Component(
                name=base.name,
                version=base.digest,
                type=ComponentType.CONTAINER,
                bom_ref=purl,
                purl=PackageURL.from_string(purl),
                properties=_props([(f"{ids.PROP}:role", "base-image")]),
            )
        )
    return out


def _image(inputs: SbomInputs) -> Component:
    img = inputs.image
    purl = ids.image_purl(img)
    props = [
        (f"{ids.PROP}:platform", img.platform),
        ("org.opencontainers.image.base.name", inputs.base.name),
    ]
    if inputs.base.digest:
        props.append(("org.opencontainers.image.base.digest", inputs.base.digest))
    if inputs.torch is not None:
        props.append((f"{ids.PROP}:torch:version", inputs.torch.version))
        props.append((f"{ids.PROP}:torch:variant", inputs.torch.variant))
        props.append((f"{ids.PROP}:torch:cuda", inputs.torch.cuda or "none"))
    props += [
        (k.replace(":removed:", ":removed-unattributed:"), v)
        for k, v in ids.removed_properties(inputs.unattributed)
    ]
    return Component(
        name=img.name,
        version=img.tag or img.digest,
        type=ComponentType.CONTAINER,
        bom_ref=purl,
        purl=PackageURL.from_string(purl),
        description=img.description,
        licenses=[LicenseExpression(img.licenses)] if img.licenses else [],
        properties=_props(props),
    )


def render_cyclonedx(inputs: SbomInputs) -> bytes:
    """The CycloneDX 1.6 JSON document, UTF-8, ending in a newline."""
    uid = ids.document_uuid("cyclonedx", inputs.image, inputs.tool_version)
    tool = Component(
        name="torchslim", version=inputs.tool_version or None, type=ComponentType.APPLICATION
    )
    meta = BomMetaData(
        tools=ToolRepository(components=[tool]),
        component=_image(inputs),
        timestamp=datetime.fromisoformat(inputs.image.created.replace("Z", "+00:00")),
    )
    distro = inputs.os.distro
    components = [
        *_base_and_os(inputs),
        *(_deb(p, distro) for p in inputs.debian),
        *_python_tree(inputs.python),
    ]
    bom = Bom(serial_number=uid, metadata=meta, components=components)
    with warnings.catch_warnings():
        # The lib warns that the image has no dependency graph; an image contains, not depends.
        warnings.simplefilter("ignore", UserWarning)
        text = JsonV1Dot6(bom).output_as_string(indent=2)
    return text.encode("utf-8") + b"\n"
