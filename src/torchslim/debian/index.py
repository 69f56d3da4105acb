"""Packages indices: fetch (verified against the signed release), cache, and look up."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import lzma
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from torchslim.cache import BlobStore
from torchslim.config import Progress
from torchslim.debian.control import Relation, iter_stanzas, parse_relations, parse_stanza
from torchslim.debian.fetch import Fetcher
from torchslim.debian.release import Release, parse_release, verify_clearsigned
from torchslim.debian.version import satisfies, version_key
from torchslim.errors import ResolveError

COMPONENT = "main"


@dataclass
class Candidate:
    """One binary package stanza of an index; fields are parsed on first use."""

    name: str
    suite: str
    raw: str

    @cached_property
    def fields(self) -> dict[str, str]:
        return parse_stanza(self.raw)

    @property
    def version(self) -> str:
        return self.fields["Version"]

    @property
    def arch(self) -> str:
        return self.fields.get("Architecture", "all")

    def relations(self, key: str) -> list[list[Relation]]:
        try:
            return parse_relations(self.fields.get(key, ""))
        except ValueError as e:
            raise ResolveError(
                f"Debian package {self.name!r} in {self.suite} has an unreadable {key} ({e}); "
                "drop it from `apt`"
            ) from e

    @cached_property
    def provides(self) -> list[Relation]:
        return [alts[0] for alts in self.relations("Provides")]


_PKG = re.compile(r"^Package:\s*(\S+)", re.M)
_PROVIDES = re.compile(r"^Provides:(.*(?:\n[ \t].*)*)", re.M)


@dataclass
class PackageIndex:
    """Name → candidates, and virtual name → providing candidates, over one or more suites."""

    suites: list[str] = field(default_factory=list)
    packages: dict[str, list[Candidate]] = field(default_factory=dict)
    providers: dict[str, list[Candidate]] = field(default_factory=dict)

    def add_text(self, text: str, suite: str) -> None:
        self.suites.append(suite)
        for chunk in iter_stanzas(text):
            m = _PKG.search(chunk)
            if not m:
                continue
            cand = Candidate(m[1], suite, chunk)
            self.packages.setdefault(cand.name, []).append(cand)
            pm = _PROVIDES.search(chunk)
            if pm:
                try:
                    provided = parse_relations(pm[1])
                except ValueError:
                    continue  # a malformed Provides only hides that package as a provider
                for alts in provided:
                    self.providers.setdefault(alts[0].name, []).append(cand)

    def best(self, rel: Relation) -> Candidate | None:
        """Highest real package version meeting ``rel`` (``None`` when there is none)."""
        best: Candidate | None = None
        for c in self.packages.get(rel.name, ()):
            if rel.op and rel.version and not satisfies(c.version, rel.op, rel.version):
                continue
            if best is None or version_key(c.version) > version_key(best.version):
                best = c
        return best

    def providing(self, rel: Relation) -> list[Candidate]:
        """Candidates whose Provides meet ``rel`` (a versioned rel needs a versioned Provides)."""
        out: list[Candidate] = []
        for c in self.providers.get(rel.name, ()):
            for p in c.provides:
                if p.name != rel.name:
                    continue
                if rel.op and rel.version:
                    if p.op != "=" or p.version is None:
                        continue
                    if not satisfies(p.version, rel.op, rel.version):
                        continue
                out.append(c)
                break
        return sorted(out, key=lambda c: c.name)


def _decompress(data: bytes, path: str) -> str:
    if path.endswith(".xz"):
        raw = lzma.decompress(data)
    elif path.endswith(".gz"):
        raw = gzip.decompress(data)
    else:
        raw = data
    return raw.decode("utf-8", errors="replace")


def fetch_release(fetcher: Fetcher, suite: str) -> Release:
    path = f"dists/{suite}/InRelease"
    data = fetcher.get_bytes(path)
    url = fetcher.url(path)
    if data is None:
        raise ResolveError(
            f"suite {suite!r} not found on {fetcher.mirror} ({url} is 404); check the suite "
            "or the `mirror`"
        )
    release = parse_release(verify_clearsigned(data, url).decode("utf-8", errors="replace"), url)
    return dataclasses.replace(
        release, url=url, sha256="sha256:" + hashlib.sha256(data).hexdigest()
    )


def fetch_packages(
    fetcher: Fetcher,
    release: Release,
    suite: str,
    arch: str,
    store: BlobStore,
    progress: Progress | None = None,
) -> str:
    """Text of ``main/binary-<arch>/Packages`` checked against the signed list; cached by
    digest, so a warm run reads the store instead of the mirror."""
    base = f"{COMPONENT}/binary-{arch}/Packages"
    for suffix in (".xz", ".gz", ""):
        entry = release.files.get(base + suffix)
        if entry is None:
            continue
        if not store.verify(entry.sha256):
            fetcher.to_store(
                f"dists/{suite}/{entry.path}", store, entry.sha256, entry.size, progress
            )
        return _decompress(store.read_bytes(entry.sha256), entry.path)
    raise ResolveError(
        f"suite {suite!r} on {fetcher.mirror} has no {base} for arch {arch!r}; "
        "check `arch` (amd64 or arm64)"
    )


def load_index(
    fetcher: Fetcher,
    suites: Iterable[str],
    arch: str,
    store: BlobStore,
    progress: Progress | None = None,
) -> tuple[PackageIndex, dict[str, Release]]:
    """Index over ``suites``; the first must exist, later ones (``-updates``) may be absent."""
    index = PackageIndex()
    releases: dict[str, Release] = {}
    for i, suite in enumerate(suites):
        try:
            release = fetch_release(fetcher, suite)
        except ResolveError:
            if i == 0:
                raise
            continue
        releases[suite] = release
        text = fetch_packages(fetcher, release, suite, arch, store, progress)
        index.add_text(text, suite)
    return index, releases
