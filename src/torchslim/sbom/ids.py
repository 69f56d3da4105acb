"""Names both SBOM formats share: purls, document ids, property names. No randomness.

purls follow what syft writes for the same packages, so a scanner matching our SBOM
against its own finds the same strings: ``pkg:deb/debian/NAME@VERSION?arch=…&distro=
debian-12&upstream=SOURCE``, ``pkg:pypi/NAME@VERSION``, ``pkg:oci/NAME@DIGEST``.
"""

from __future__ import annotations

import hashlib
import re
import uuid

from packageurl import PackageURL
from packaging.utils import canonicalize_name

from torchslim.sbom.model import BaseRef, DebianPackage, ImageIdentity, PythonDist, RemovedByRule

PROP = "torchslim"
_NAMESPACE = uuid.UUID("6b1f4a2e-2c5d-5b8e-9f3a-7d1c0e4b9a10")  # torchslim's own uuid5 space


def document_uuid(kind: str, image: ImageIdentity, tool_version: str) -> uuid.UUID:
    """One uuid per (document kind, image digest, torchslim version): same inputs, same id."""
    return uuid.uuid5(_NAMESPACE, f"{kind}\n{image.digest}\n{image.platform}\n{tool_version}")


def deb_purl(pkg: DebianPackage, distro: str) -> str:
    quals = {"arch": pkg.arch}
    if distro:
        quals["distro"] = distro
    if pkg.source:
        quals["upstream"] = pkg.source + (f"@{pkg.source_version}" if pkg.source_version else "")
    elif pkg.source_version:
        quals["upstream"] = f"{pkg.name}@{pkg.source_version}"
    return str(PackageURL("deb", "debian", pkg.name, pkg.version, quals).to_string())


def pypi_purl(dist: PythonDist) -> str:
    name = canonicalize_name(dist.name)
    return str(PackageURL("pypi", None, name, dist.version).to_string())


def _oci_name(name: str) -> str:
    return name.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0].lower()


def _repository(name: str) -> str | None:
    """``registry/repo`` of an image name with a registry part, else None."""
    bare = name.split("@", 1)[0]
    head, slash, _ = bare.partition("/")
    if not slash or not ("." in head or ":" in head or head == "localhost"):
        return None
    last = bare.rsplit("/", 1)
    if ":" in last[-1]:
        bare = bare[: bare.rfind(":")]
    return bare


def oci_purl(name: str, digest: str, *, arch: str | None = None, tag: str | None = None) -> str:
    quals: dict[str, str] = {}
    if arch:
        quals["arch"] = arch
    repo = _repository(name)
    if repo:
        quals["repository_url"] = repo
    if tag:
        quals["tag"] = tag
    return str(PackageURL("oci", None, _oci_name(name), digest, quals or None).to_string())


def image_purl(image: ImageIdentity) -> str:
    arch = image.platform.split("/")[1] if "/" in image.platform else None
    return oci_purl(image.name, image.digest, arch=arch, tag=image.tag)


def base_purl(base: BaseRef) -> str | None:
    return oci_purl(base.name, base.digest) if base.digest else None


def spdx_id(kind: str, *parts: str) -> str:
    """``SPDXRef-<kind>-<readable>-<8 hex>``: readable, unique, and only allowed characters."""
    readable = re.sub(r"[^A-Za-z0-9.-]+", "-", "-".join(parts)).strip("-")
    digest = hashlib.sha256("\0".join((kind, *parts)).encode()).hexdigest()[:8]
    return f"SPDXRef-{kind}-{readable}-{digest}"


def removed_properties(removed: tuple[RemovedByRule, ...]) -> list[tuple[str, str]]:
    """``torchslim:removed:<rule>:files`` / ``:bytes`` pairs, by rule id."""
    out: list[tuple[str, str]] = []
    for r in removed:
        out.append((f"{PROP}:removed:{r.rule}:bytes", str(r.bytes)))
        out.append((f"{PROP}:removed:{r.rule}:files", str(r.files)))
    return out


def deb_properties(pkg: DebianPackage) -> list[tuple[str, str]]:
    out = [(f"{PROP}:license:source", pkg.license.source)]
    if pkg.source:
        out.append((f"{PROP}:debian:source", pkg.source))
    if pkg.source_version:
        out.append((f"{PROP}:debian:source-version", pkg.source_version))
    if pkg.filename:
        out.append((f"{PROP}:debian:filename", pkg.filename))
    return out + removed_properties(pkg.removed)


def python_properties(dist: PythonDist) -> list[tuple[str, str]]:
    out = [
        (f"{PROP}:license:source", dist.license.source),
        (f"{PROP}:python:location", dist.location),
    ]
    if dist.index:
        out.append((f"{PROP}:python:index", dist.index))
    if dist.wheel:
        out.append((f"{PROP}:python:wheel", dist.wheel))
    if dist.vendored_by:
        out.append((f"{PROP}:python:vendored-by", dist.vendored_by))
    return out + list(dist.properties) + removed_properties(dist.removed)


def deb_download(pkg: DebianPackage) -> str | None:
    if pkg.mirror and pkg.filename:
        return f"{pkg.mirror.rstrip('/')}/{pkg.filename}"
    return None
