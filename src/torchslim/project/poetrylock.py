"""``poetry.lock`` as input: the prod closure of the project's own dependencies, pinned.

Poetry 1.x (before 1.5) marks each package ``category = "main" | "dev"``, Poetry 2.x
``groups = [...]``, and the 1.5-1.8 locks say neither; the one rule that reads all
three is to walk the lock's dependency graph from the requirements
``pyproject.toml`` declares for prod. A package is reached through an optional
dependency only when the edge asks for that extra.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from torchslim.config import read_toml
from torchslim.errors import ConfigError
from torchslim.project.items import Artifact, RequirementItem
from torchslim.project.pyproject import poetry_specifier

POETRY_LOCK = "poetry.lock"


class Edge:
    """One dependency: which package, which versions, with which extras and marker."""

    def __init__(self, name: str, spec: Any, via: str | None) -> None:
        self.name = canonicalize_name(name)
        self.via = via
        table = spec if isinstance(spec, dict) else {"version": spec}
        self.optional = bool(table.get("optional", False))
        self.extras = tuple(table.get("extras", ()))
        self.marker = str(table["markers"]) if table.get("markers") else None
        self.constraint = str(table.get("version", "*"))

    def allows(self, version: str) -> bool:
        try:
            return Version(version) in SpecifierSet(poetry_specifier(self.constraint))
        except (ValueError, InvalidSpecifier, InvalidVersion):
            return True  # a constraint we cannot read does not narrow the choice


def _edges(pkg: Mapping[str, Any], via: str) -> list[Edge]:
    out = []
    for name, spec in pkg.get("dependencies", {}).items():
        for one in spec if isinstance(spec, list) else [spec]:
            out.append(Edge(name, one, via))
    return out


class PoetryLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        data = read_toml(path)
        version = str(data.get("metadata", {}).get("lock-version", ""))
        if not version.startswith(("1.", "2.")):
            raise ConfigError(
                f"{path}: lock-version {version!r} is not supported; run `poetry lock` again"
            )
        self.by_name: dict[str, list[Mapping[str, Any]]] = {}
        for pkg in data.get("package", []):
            self.by_name.setdefault(canonicalize_name(str(pkg["name"])), []).append(pkg)

    def has_all(self, names: Sequence[str]) -> bool:
        """Whether every declared prod requirement is in the lock (a cheap staleness test)."""
        return all(canonicalize_name(n) in self.by_name for n in names)

    def prod(self, roots: Sequence[Edge]) -> list[RequirementItem]:
        queue = deque(roots)
        seen: set[tuple[str, str]] = set()
        out: list[RequirementItem] = []
        while queue:
            edge = queue.popleft()
            candidates = self.by_name.get(edge.name, [])
            if not candidates:
                raise ConfigError(
                    f"{self.path}: {edge.via or 'pyproject.toml'} needs {edge.name!r}, which the "
                    "lock does not hold; run `poetry lock` again"
                )
            matching = [p for p in candidates if edge.allows(str(p["version"]))] or candidates
            for pkg in matching:
                key = (edge.name, str(pkg["version"]))
                if key in seen:
                    continue
                seen.add(key)
                out.append(self._item(pkg, edge))
                name = str(pkg["name"])
                for dep in _edges(pkg, name):
                    if not dep.optional:
                        queue.append(dep)
                for extra in edge.extras:
                    for spec in pkg.get("extras", {}).get(extra, []):
                        queue.append(Edge(str(spec).split(" ")[0].split("(")[0], "*", name))
        return out

    def _item(self, pkg: Mapping[str, Any], edge: Edge) -> RequirementItem:
        name, version = str(pkg["name"]), str(pkg["version"])
        source = pkg.get("source", {})
        kind = source.get("type")
        artifacts = tuple(
            Artifact(str(f["file"]), str(f["hash"])) for f in pkg.get("files", []) if "hash" in f
        )
        url = None
        if kind == "git":
            rev = source.get("resolved_reference") or source.get("reference")
            url = f"git+{source['url']}" + (f"@{rev}" if rev else "")
        elif kind in ("url", "file", "directory"):
            url = str(source.get("url"))
        return RequirementItem(
            text=f"{name}=={version}",
            source=POETRY_LOCK,
            kind="pinned",
            version=version,
            artifacts=artifacts,
            index=str(source["url"]) if kind == "legacy" else None,
            url=url,
            marker=edge.marker,
            via=edge.via,
        )


__all__ = ["POETRY_LOCK", "Edge", "PoetryLock"]
