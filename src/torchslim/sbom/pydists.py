"""Python distributions of an image: every ``*.dist-info`` (vendored ones too) + the lock.

A distribution is *vendored* when another distribution's RECORD lists its METADATA
(setuptools ships ``setuptools/_vendor/*.dist-info``); pip's ``_vendor/vendor.txt``
pins are read the same way, though they carry no license. The lock adds what the
installed files cannot say: the wheel's sha256, its URL and the index that served it.
"""

from __future__ import annotations

import csv
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from email.parser import Parser
from typing import Protocol
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from torchslim.sbom.licenses import python_license
from torchslim.sbom.model import License, PythonDist
from torchslim.sbom.tree import MetaTree

PYPI_FILES = "files.pythonhosted.org"
PYPI_SIMPLE = "https://pypi.org/simple"


class LockedWheelLike(Protocol):
    """What a lock records of one wheel (``torchslim.deps.lock.LockedWheel`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def filename(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def sha256(self) -> str: ...


@dataclass(frozen=True)
class Installed:
    """One distribution found in the image and the files its RECORD lists (image paths)."""

    dist: PythonDist
    key: str  # canonical name
    files: tuple[str, ...]


def index_of(url: str) -> str:
    """The index or find-links location a wheel URL came from."""
    parts = urlsplit(url)
    if parts.hostname == PYPI_FILES:
        return PYPI_SIMPLE
    m = re.match(r"(.*?/simple)/", url)
    if m:
        return m.group(1)
    return url.rsplit("/", 1)[0]


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _record_files(tree: MetaTree, dist_info: str) -> tuple[str, ...]:
    text = tree.read_text(f"{dist_info}/RECORD") or ""
    site = posixpath.dirname(dist_info)
    out = []
    for row in csv.reader(text.splitlines()):
        if row and row[0]:
            out.append("/" + posixpath.normpath(posixpath.join(site, row[0])).lstrip("/"))
    return tuple(sorted(set(out)))


def _read_dist(tree: MetaTree, dist_info: str) -> Installed | None:
    meta = Parser().parsestr(tree.read_text(f"{dist_info}/METADATA") or "", headersonly=False)
    name, version = meta.get("Name"), meta.get("Version")
    if not name or not version:
        return None  # not a distribution we can name; a scanner skips it too
    dist = PythonDist(
        name=str(name).strip(),
        version=str(version).strip(),
        location="/" + dist_info,
        license=python_license(meta),
    )
    return Installed(dist, canonicalize_name(dist.name), _record_files(tree, dist_info))


def _vendor_txt(tree: MetaTree, path: str) -> list[Installed]:
    """``pip/_vendor/vendor.txt``: ``name==version`` lines, one per vendored project."""
    out = []
    for line in (tree.read_text(path) or "").splitlines():
        m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)", line)
        if m:
            dist = PythonDist(
                name=m.group(1),
                version=m.group(2),
                location="/" + path,
                license=License(None, "vendor.txt pins carry no license"),
            )
            out.append(Installed(dist, canonicalize_name(dist.name), ()))
    return out


def _owner_of(path: str, location: str, found: list[Installed]) -> str | None:
    """The distribution (other than the one at ``location``) whose RECORD lists ``path``."""
    for inst in found:
        if inst.dist.location != location and path in inst.files:
            return inst.key
    return None


def python_dists(tree: MetaTree, *, locked: Iterable[LockedWheelLike] = ()) -> list[Installed]:
    """Every distribution in ``tree``: installed, vendored, and joined with the lock."""
    found: list[Installed] = []
    for path in sorted(tree.files):
        if path.endswith(".dist-info/METADATA"):
            inst = _read_dist(tree, path.rsplit("/", 1)[0])
            if inst is not None:
                found.append(inst)
    vendor_lists = [p for p in sorted(tree.files) if p.endswith("/_vendor/vendor.txt")]
    for path in vendor_lists:
        found += _vendor_txt(tree, path)

    wheels: dict[str, LockedWheelLike] = {canonicalize_name(w.name): w for w in locked}
    out: list[Installed] = []
    for inst in found:
        marker = inst.dist.location + ("/METADATA" if inst.dist.location.endswith("-info") else "")
        owner = _owner_of(marker, inst.dist.location, found)
        dist = replace(inst.dist, vendored_by=owner)
        wheel = wheels.get(inst.key)
        if owner is None and wheel is not None and _same_version(wheel.version, dist.version):
            dist = replace(
                dist,
                wheel=wheel.filename,
                sha256=wheel.sha256.removeprefix("sha256:"),
                url=wheel.url,
                index=index_of(wheel.url),
            )
        out.append(replace(inst, dist=dist))
    return sorted(out, key=lambda i: (i.key, i.dist.version, i.dist.location))
