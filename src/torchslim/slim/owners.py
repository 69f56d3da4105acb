"""Which installed distribution owns an image path, from the ``*.dist-info/RECORD`` files."""

from __future__ import annotations

import csv
import posixpath
from email.parser import HeaderParser

from torchslim.slim.image import ImageView


def _label(view: ImageView, dist_info: str) -> str:
    """``Name Version`` from METADATA, else from the ``name-version.dist-info`` folder."""
    raw = view.read_bytes(posixpath.join(dist_info, "METADATA"))
    if raw is not None:
        meta = HeaderParser().parsestr(raw.decode("utf-8", "replace"), headersonly=True)
        if meta.get("Name"):
            return f"{meta['Name']} {meta.get('Version', '')}".strip()
    stem = posixpath.basename(dist_info).removesuffix(".dist-info")
    name, _, version = stem.partition("-")
    return f"{name} {version}".strip()


def package_owners(view: ImageView) -> dict[str, str]:
    """Image path -> ``Name Version`` of the distribution whose RECORD lists it."""
    owners: dict[str, str] = {}
    for record in sorted(p for p in view.paths if p.endswith(".dist-info/RECORD")):
        raw = view.read_bytes(record)
        if raw is None:
            continue
        dist_info = posixpath.dirname(record)
        site = posixpath.dirname(dist_info)
        label = _label(view, dist_info)
        for row in csv.reader(raw.decode("utf-8", "replace").splitlines()):
            if row and row[0]:
                owners.setdefault(posixpath.normpath(posixpath.join(site, row[0])), label)
    return owners


def owner_of(path: str, owners: dict[str, str]) -> str | None:
    """The owner of ``path``, else of the package folder (below site-packages) it lies in."""
    if path in owners:
        return owners[path]
    parts = path.split("/")
    sites = [i for i, part in enumerate(parts) if part.endswith("-packages")]
    if not sites:
        return None
    for i in range(len(parts) - 1, sites[-1] + 1, -1):
        prefix = "/".join(parts[:i]) + "/"
        hit = next((o for p, o in owners.items() if p.startswith(prefix)), None)
        if hit is not None:
            return hit
    return None
