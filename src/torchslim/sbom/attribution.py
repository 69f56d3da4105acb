"""Which component each removed byte belonged to, so the SBOM can say it per package.

Slimming rewrites RECORD after it removes files, so a removed path is matched to the
distribution that owns the *directory* it was in (``torch/test/x`` → the dist whose
RECORD still lists files under ``torch/``), deepest directory first; a file that was
stripped, not removed, is still listed and matches exactly. A removal whose ``owner``
the build already knows wins. Debian files left out at unpack time (docs, man pages,
locales) carry their package from the unpacker.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from packaging.utils import canonicalize_name

from torchslim.sbom.model import Removal, RemovedByRule
from torchslim.sbom.pydists import Installed

# Trees the Debian unpacker leaves out (torchslim.debian.deb.SKIP_TREES + docs), as rule ids.
DEBIAN_SKIP_RULES: dict[str, tuple[str, str]] = {
    "usr/share/doc": ("debian-docs", "package docs; only each package's copyright file is kept"),
    "usr/share/man": ("debian-man-pages", "manual pages; no man reader in the image"),
    "usr/share/info": ("debian-info-pages", "GNU info pages; no info reader in the image"),
    "usr/share/locale": ("debian-locales", "message translations; services log in English"),
    "usr/share/lintian": ("debian-lintian", "lintian overrides; only Debian's QA tool reads them"),
}


class SkippedLike(Protocol):
    """A file the Debian unpacker left out (``torchslim.debian.SkippedFile`` is one)."""

    @property
    def package(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...


def debian_skip_rule(path: str) -> str:
    rel = path.lstrip("/")
    for tree, (rule, _) in DEBIAN_SKIP_RULES.items():
        if rel == tree or rel.startswith(tree + "/"):
            return rule
    return "debian-skipped"


def removals_from_skipped(skipped: Iterable[SkippedLike]) -> list[Removal]:
    """The unpacker's skipped files as removals owned by their Debian package."""
    return [Removal(debian_skip_rule(s.path), s.path, s.size, owner=s.package) for s in skipped]


def _dir_owners(dists: Sequence[Installed]) -> dict[str, set[str]]:
    """Directory (image path) → locations of the distributions with files below it."""
    owners: dict[str, set[str]] = defaultdict(set)
    for inst in dists:
        site = posixpath.dirname(inst.dist.location)
        for f in inst.files:
            d = posixpath.dirname(f)
            while len(d) > len(site) and d.startswith(site + "/"):
                owners[d].add(inst.dist.location)
                d = posixpath.dirname(d)
    return owners


def _deepest(locations: Iterable[str]) -> str | None:
    """Of several owners, the most deeply installed (a vendored dist inside its vendor)."""
    ranked = sorted(locations, key=lambda loc: (-loc.count("/"), loc))
    if len(ranked) > 1 and ranked[0].count("/") == ranked[1].count("/"):
        return None  # two peers (e.g. nvidia-* namespace dirs): no guess
    return ranked[0] if ranked else None


class Attributor:
    """Maps removed image paths to component keys: a dist's location or ``deb:<name>``."""

    def __init__(self, dists: Sequence[Installed], debian: Iterable[str] = ()) -> None:
        self.by_file: dict[str, set[str]] = defaultdict(set)
        for inst in dists:
            for f in inst.files:
                self.by_file[f].add(inst.dist.location)
        self.by_dir = _dir_owners(dists)
        self.by_name = {
            inst.key: inst.dist.location for inst in dists if inst.dist.vendored_by is None
        }
        self.debian = set(debian)

    def owner(self, removal: Removal) -> str | None:
        if removal.owner is not None:
            if removal.owner in self.debian:
                return f"deb:{removal.owner}"
            return self.by_name.get(canonicalize_name(removal.owner))
        if removal.path in self.by_file:
            return _deepest(self.by_file[removal.path])
        d = posixpath.dirname(removal.path)
        while d not in ("", "/"):
            if d in self.by_dir:
                return _deepest(self.by_dir[d])
            d = posixpath.dirname(d)
        return None


def _summary(rows: Iterable[Removal]) -> tuple[RemovedByRule, ...]:
    files: dict[str, int] = defaultdict(int)
    nbytes: dict[str, int] = defaultdict(int)
    for r in rows:
        files[r.rule] += 1
        nbytes[r.rule] += r.bytes
    return tuple(RemovedByRule(rule, files[rule], nbytes[rule]) for rule in sorted(files))


def attribute(
    removals: Iterable[Removal], dists: Sequence[Installed], debian: Iterable[str] = ()
) -> tuple[Mapping[str, tuple[RemovedByRule, ...]], tuple[RemovedByRule, ...]]:
    """Per component key, the removed files and bytes by rule; and what no component owns."""
    who = Attributor(dists, debian)
    owned: dict[str, list[Removal]] = defaultdict(list)
    orphans: list[Removal] = []
    for r in removals:
        key = who.owner(r)
        (owned[key] if key is not None else orphans).append(r)
    return {k: _summary(v) for k, v in owned.items()}, _summary(orphans)
