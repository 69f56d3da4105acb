"""Debian packages of an image: dpkg's status (or distroless ``status.d/``) + copyright files.

The image's own records are the truth of what is installed (a scanner reads the same);
the lock adds what only the build knows: the sha256 of each ``.deb`` from the signed
Packages index and its pool path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

from torchslim.debian.control import iter_stanzas, parse_stanza
from torchslim.sbom.licenses import debian_license
from torchslim.sbom.model import DebianPackage, OsRelease
from torchslim.sbom.tree import MetaTree

STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d"


class LockedDeb(Protocol):
    """What a lock records of one ``.deb`` (``torchslim.debian.DebPackage`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def arch(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def filename(self) -> str: ...


def os_release(tree: MetaTree) -> OsRelease:
    """``/etc/os-release`` (or ``/usr/lib/os-release``) fields a scanner keys on."""
    text = tree.read_text("etc/os-release") or tree.read_text("usr/lib/os-release") or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            fields[key.strip()] = value.strip().strip("\"'")
    return OsRelease(
        id=fields.get("ID", ""),
        version_id=fields.get("VERSION_ID", ""),
        codename=fields.get("VERSION_CODENAME", ""),
        pretty_name=fields.get("PRETTY_NAME", ""),
    )


def _stanzas(tree: MetaTree) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for path in tree.under(STATUS_D):
        if path.endswith(".md5sums"):
            continue
        out += [parse_stanza(s) for s in iter_stanzas(tree.read_text(path) or "")]
    out += [parse_stanza(s) for s in iter_stanzas(tree.read_text(STATUS) or "")]
    # dpkg keeps removed-but-configured packages in status; only installed ones count.
    installed = [s for s in out if s.get("Status", "install ok installed").endswith(" installed")]
    return [s for s in installed if s.get("Package")]


def _source(fields: dict[str, str]) -> tuple[str | None, str | None]:
    """``Source: bzip2 (1.0.8-5)`` → ("bzip2", "1.0.8-5"); absent parts are None."""
    m = re.match(r"^\s*(\S+)(?:\s+\((\S+)\))?", fields.get("Source", ""))
    if not m:
        return None, None
    return m.group(1), m.group(2)


def debian_packages(
    tree: MetaTree, *, locked: Iterable[LockedDeb] = (), mirror: str | None = None
) -> list[DebianPackage]:
    """Every installed Debian package of ``tree``, sorted by name and architecture."""
    by_key = {(d.name, d.version, d.arch): d for d in locked}
    seen: dict[tuple[str, str], DebianPackage] = {}
    for f in _stanzas(tree):
        name, version, arch = f["Package"], f.get("Version", ""), f.get("Architecture", "")
        source, source_version = _source(f)
        lock = by_key.get((name, version, arch))
        sha = lock.sha256.removeprefix("sha256:") if lock is not None else None
        seen[(name, arch)] = DebianPackage(
            name=name,
            version=version,
            arch=arch,
            source=source if source != name else None,
            source_version=source_version,
            license=debian_license(tree.read_text(f"usr/share/doc/{name}/copyright")),
            sha256=sha,
            filename=lock.filename if lock is not None else None,
            mirror=mirror if lock is not None else None,
        )
    return [seen[k] for k in sorted(seen)]
