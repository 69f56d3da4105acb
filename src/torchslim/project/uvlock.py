"""``uv.lock`` as input: the project's prod closure, pinned with every file hash.

The project itself is a package in the lock (``source = { virtual = "." }`` or
``{ editable = "." }``). Prod is everything reachable from its
``dependencies`` (plus the configured extras' ``optional-dependencies``);
``dev-dependencies`` (PEP 735 groups) only for the groups the config names. Where uv forked the
resolution (one package at two versions, by marker), both entries are kept with
the edge's marker, so the build picks the one its target satisfies.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from torchslim.config import read_toml
from torchslim.errors import ConfigError
from torchslim.project.items import Artifact, RequirementItem

UV_LOCK = "uv.lock"

Package = Mapping[str, Any]


def _artifacts(pkg: Package) -> tuple[Artifact, ...]:
    files = [*pkg.get("wheels", [])]
    if "sdist" in pkg:
        files.append(pkg["sdist"])
    out = []
    for f in files:
        if "hash" not in f:
            continue
        url = f.get("url")
        name = f.get("filename") or PurePosixPath(str(url or f.get("path", ""))).name
        out.append(Artifact(str(name), str(f["hash"]), str(url) if url else None))
    return tuple(out)


def _is_root(pkg: Package, name: str | None) -> bool:
    source = pkg.get("source", {})
    if name is not None:
        return canonicalize_name(str(pkg.get("name", ""))) == canonicalize_name(name)
    return bool(source.get("virtual") == "." or source.get("editable") == ".")


class UvLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        data = read_toml(path)
        if data.get("version") != 1:
            raise ConfigError(
                f"{path}: lock version {data.get('version')!r} is not supported (expected 1); "
                "regenerate it with a current uv (`uv lock`)"
            )
        self.packages: list[Package] = list(data.get("package", []))
        self.by_name: dict[str, list[Package]] = {}
        for pkg in self.packages:
            self.by_name.setdefault(canonicalize_name(str(pkg["name"])), []).append(pkg)

    def root(self, project: str | None) -> Package | None:
        found = [p for p in self.packages if _is_root(p, project)]
        return found[0] if found else None

    def _target(self, dep: Mapping[str, Any], parent: str) -> Package:
        candidates = self.by_name.get(canonicalize_name(str(dep["name"])), [])
        if "version" in dep:
            candidates = [p for p in candidates if p.get("version") == dep["version"]]
        if "source" in dep:
            candidates = [p for p in candidates if p.get("source") == dep["source"]]
        if len(candidates) != 1:
            raise ConfigError(
                f"{self.path}: {parent} depends on {dep['name']!r}, which the lock holds "
                f"{len(candidates)} times; regenerate it with `uv lock`"
            )
        return candidates[0]

    def is_fresh(self, root: Package, declared: Sequence[str]) -> bool:
        """Whether the lock was made from these ``[project].dependencies``."""
        metadata = root.get("metadata", {}).get("requires-dist", [])
        locked = {
            _key(d["name"], d.get("specifier", ""), d.get("extras", ()))
            for d in metadata
            if "extra" not in str(d.get("marker", ""))
        }
        wanted = set()
        for text in declared:
            req = Requirement(text)
            wanted.add(_key(req.name, str(req.specifier), req.extras))
        return locked == wanted

    def prod(
        self, root: Package, extras: Sequence[str], groups: Sequence[str] = ()
    ) -> list[RequirementItem]:
        """Every package reachable from the root, its ``extras`` and its dependency
        ``groups`` (uv keeps them as the root's ``dev-dependencies``), breadth first."""
        optional = root.get("optional-dependencies", {})
        locked_groups = root.get("dev-dependencies", {})
        for group in groups:
            if group not in locked_groups:
                raise ConfigError(
                    f"key `groups`: {group!r} is not a dependency group of {root['name']} in "
                    f"{self.path} (its groups: {', '.join(sorted(locked_groups)) or 'none'})"
                )
        for extra in extras:
            if extra not in optional:
                raise ConfigError(
                    f"key `extras`: {extra!r} is not an extra of {root['name']} in {self.path} "
                    f"(its extras: {', '.join(sorted(optional)) or 'none'})"
                )
        start = [*root.get("dependencies", [])]
        for extra in extras:
            start += optional[extra]
        for group in groups:
            start += locked_groups[group]
        queue: deque[tuple[Mapping[str, Any], str | None]] = deque((d, None) for d in start)
        seen: set[int] = set()
        out: list[RequirementItem] = []
        while queue:
            dep, via = queue.popleft()
            pkg = self._target(dep, via or str(root["name"]))
            if id(pkg) in seen:
                continue
            seen.add(id(pkg))
            if pkg is not root:
                out.append(self._item(pkg, dep.get("marker"), via))
            name = str(pkg["name"])
            follow = [*pkg.get("dependencies", [])]
            for extra in dep.get("extra", []):
                follow += pkg.get("optional-dependencies", {}).get(extra, [])
            queue.extend((d, name) for d in follow)
        return out

    def _item(self, pkg: Package, marker: str | None, via: str | None) -> RequirementItem:
        name, version = str(pkg["name"]), str(pkg.get("version", ""))
        source = pkg.get("source", {})
        url = source.get("url") or source.get("git") or source.get("path")
        url = url or source.get("directory") or source.get("editable")
        return RequirementItem(
            text=f"{name}=={version}" if version else name,
            source=UV_LOCK,
            kind="pinned",
            version=version or None,
            artifacts=_artifacts(pkg),
            index=source.get("registry"),
            url=str(url) if url else None,
            marker=marker,
            via=via,
        )


def _key(name: str, specifier: str, extras: Any) -> tuple[str, SpecifierSet, tuple[str, ...]]:
    return canonicalize_name(name), SpecifierSet(specifier), tuple(sorted(extras))


__all__ = ["UV_LOCK", "UvLock"]
