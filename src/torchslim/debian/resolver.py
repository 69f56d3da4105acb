"""Dependency resolution over Packages indices, without apt.

Greedy and deterministic, like apt for a fresh install: walk Pre-Depends and Depends from the
root set in order; an OR-group already met by a chosen package (or a script-only package) is
skipped, otherwise its first satisfiable alternative is chosen (highest version; for a virtual
name, the alphabetically first provider). Recommends/Suggests are not followed; Conflicts and
Breaks are not checked (a fresh set from one suite does not carry them).
"""

from __future__ import annotations

from collections import deque

from torchslim.cache import BlobStore
from torchslim.config import Progress
from torchslim.debian.control import Relation
from torchslim.debian.fetch import Fetcher
from torchslim.debian.index import Candidate, PackageIndex, load_index
from torchslim.debian.release import Release
from torchslim.debian.spec import SCRIPT_ONLY, DebianSpec, DebPackage
from torchslim.debian.version import satisfies
from torchslim.errors import ResolveError

# Control fields copied to status.d (order as dpkg writes them).
STATUS_FIELDS = (
    "Package",
    "Essential",
    "Priority",
    "Section",
    "Installed-Size",
    "Maintainer",
    "Architecture",
    "Multi-Arch",
    "Source",
    "Version",
    "Replaces",
    "Provides",
    "Pre-Depends",
    "Depends",
    "Recommends",
    "Suggests",
    "Conflicts",
    "Breaks",
    "Description",
    "Homepage",
)


def suites_for(spec: DebianSpec) -> list[str]:
    """Main suite plus ``-updates`` (same mirror and keyring). The security archive lives on
    another path (debian-security) and is not used; point releases fold its fixes in."""
    return [spec.suite, f"{spec.suite}-updates"]


class Resolver:
    def __init__(self, index: PackageIndex, arch: str, suite: str) -> None:
        self.index = index
        self.arch = arch
        self.suite = suite
        self.chosen: dict[str, Candidate] = {}
        self.why: dict[str, str] = {}
        self.script_only: dict[str, str] = {}  # name → first package that asked for it

    def _arch_ok(self, rel: Relation) -> bool:
        return rel.arch in (None, "any", "native", self.arch, "all")

    def _met(self, rel: Relation) -> bool:
        """Is ``rel`` met by what is chosen already (or by definition, if script-only)?"""
        if rel.name in SCRIPT_ONLY:
            return True
        if not self._arch_ok(rel):
            return False
        c = self.chosen.get(rel.name)
        if c is not None and (
            not rel.op or not rel.version or satisfies(c.version, rel.op, rel.version)
        ):
            return True
        for c in self.chosen.values():
            for p in c.provides:
                if p.name != rel.name:
                    continue
                if not rel.op or not rel.version:
                    return True
                if p.op == "=" and p.version and satisfies(p.version, rel.op, rel.version):
                    return True
        return False

    def _pick(self, rel: Relation) -> Candidate | None:
        if not self._arch_ok(rel) or (rel.name in self.chosen):
            return None  # chosen but at a version that does not fit: try another alternative
        real = self.index.best(rel)
        if real is not None:
            return real
        providers = self.index.providing(rel)
        return providers[0] if providers else None

    def resolve(self, roots: list[str]) -> list[Candidate]:
        queue: deque[Candidate] = deque()
        for name in roots:
            rel = Relation(name)
            if name in self.chosen:  # asked for by name: never waved through as script-only
                continue
            c = self._pick(rel)
            if c is None:
                raise ResolveError(
                    f"Debian package {name!r} not found in {self.suite} ({self.arch}); check "
                    "the name in `apt` (packages.debian.org lists them)"
                )
            self._choose(c, "requested", queue)
        while queue:
            pkg = queue.popleft()
            for key in ("Pre-Depends", "Depends"):
                for group in pkg.relations(key):
                    for r in group:
                        if r.name in SCRIPT_ONLY:
                            self.script_only.setdefault(r.name, pkg.name)
                    if any(self._met(r) for r in group):
                        continue
                    for rel in group:
                        c = self._pick(rel)
                        if c is not None:
                            self._choose(c, f"{pkg.name} {key}: {rel}", queue)
                            break
                    else:
                        alts = " | ".join(str(r) for r in group)
                        raise ResolveError(
                            f"Debian package {pkg.name!r} ({pkg.version}) needs {alts!r}, which "
                            f"nothing in {self.suite} ({self.arch}) satisfies; drop it from "
                            "`apt` or pick another suite"
                        )
        return sorted(self.chosen.values(), key=lambda c: c.name)

    def _choose(self, c: Candidate, why: str, queue: deque[Candidate]) -> None:
        self.chosen[c.name] = c
        self.why[c.name] = why
        queue.append(c)


def to_deb(c: Candidate) -> DebPackage:
    f = c.fields
    control = {k: f[k] for k in STATUS_FIELDS if k in f}
    return DebPackage(
        name=c.name,
        version=c.version,
        arch=c.arch,
        filename=f["Filename"],
        sha256="sha256:" + f["SHA256"],
        size=int(f["Size"]),
        control=control,
    )


def resolve_index(index: PackageIndex, spec: DebianSpec) -> list[DebPackage]:
    """Pure resolution of ``spec.roots()`` against an index (no network)."""
    chosen = Resolver(index, spec.arch, spec.suite).resolve(spec.roots())
    return [to_deb(c) for c in chosen]


def resolve(
    spec: DebianSpec, store: BlobStore, progress: Progress | None = None
) -> list[DebPackage]:
    """Verified indices of ``spec.suite`` (+ ``-updates``) → the full package set, sorted."""
    return resolve_signed(spec, store, progress)[0]


def resolve_signed(
    spec: DebianSpec, store: BlobStore, progress: Progress | None = None
) -> tuple[list[DebPackage], dict[str, Release]]:
    """:func:`resolve`, and the signed release file of each suite it read (by suite)."""
    with Fetcher(spec.mirror) as fetcher:
        index, releases = load_index(fetcher, suites_for(spec), spec.arch, store, progress)
    return resolve_index(index, spec), releases
