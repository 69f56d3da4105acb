"""Who brought each file: Python distributions (RECORD), Debian packages (dpkg), conda.

Everything is read from metadata files captured during the single layer pass.
Paths in package manifests go through the merged view's symlinks
(``/lib`` → ``usr/lib`` on merged-/usr systems) before they are matched.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from torchslim.oci.flatten import MergedView

DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_D = "var/lib/dpkg/status.d/"
DPKG_INFO = "var/lib/dpkg/info/"
_DIST_INFO = re.compile(r"(^|/)([^/]+)\.dist-info/(RECORD|METADATA)$")
_CONDA_META = re.compile(r"(^|/)conda-meta/[^/]+\.json$")


def wants_capture(path: str) -> bool:
    """Metadata files whose content the classifiers need."""
    if path == DPKG_STATUS or path == "etc/passwd":
        return True
    if path.startswith(DPKG_STATUS_D):
        return not path.endswith(".md5sums")
    if path.startswith(DPKG_INFO):
        return path.endswith(".list")
    return bool(_DIST_INFO.search(path) or _CONDA_META.search(path))


@dataclass
class Package:
    kind: str  # python | debian | conda
    name: str
    version: str
    location: str = ""
    files: set[str] = field(default_factory=set)
    requires: list[str] = field(default_factory=list)
    installed_size: int = 0  # what the package manager claims (dpkg Installed-Size, KiB*1024)


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", "replace")


def _stanzas(text: str) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if cur:
                out.append(cur)
            cur, key = {}, ""
        elif line[0] in " \t" and key:
            cur[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            cur[key] = value.strip()
    if cur:
        out.append(cur)
    return out


def debian_packages(view: MergedView) -> dict[str, Package]:
    """Installed packages from dpkg ``status`` and distroless-style ``status.d/*``."""
    pkgs: dict[str, Package] = {}
    texts: list[str] = []
    status = view.nodes.get(DPKG_STATUS)
    if status is not None:
        texts.append(_text(status.data))
    texts += [_text(n.data) for p, n in view.nodes.items() if p.startswith(DPKG_STATUS_D)]
    for text in texts:
        for st in _stanzas(text):
            name = st.get("Package")
            if not name or ("Status" in st and "installed" not in st["Status"].split()):
                continue
            size = st.get("Installed-Size", "0")
            pkgs[name] = Package(
                "debian",
                name,
                st.get("Version", ""),
                installed_size=int(size) * 1024 if size.isdigit() else 0,
            )
    for path, node in view.nodes.items():
        if not (path.startswith(DPKG_INFO) and path.endswith(".list")):
            continue
        name = posixpath.basename(path)[: -len(".list")].split(":")[0]
        pkg = pkgs.setdefault(name, Package("debian", name, ""))
        for line in _text(node.data).splitlines():
            if line.strip() and line.strip() != "/.":
                pkg.files.add(line.strip().lstrip("/"))
    return pkgs


def _record_paths(data: bytes | None) -> list[str]:
    rows = csv.reader(io.StringIO(_text(data)))
    return [row[0] for row in rows if row and row[0]]


def _dist_name(dist_info: str) -> tuple[str, str]:
    base = posixpath.basename(dist_info)[: -len(".dist-info")]
    name, _, version = base.partition("-")
    return name, version


def python_packages(view: MergedView) -> dict[str, Package]:
    """Installed distributions by their dist-info RECORD; key: canonical name + location."""
    pkgs: dict[str, Package] = {}
    for path, node in view.nodes.items():
        m = _DIST_INFO.search(path)
        if not m or m.group(3) != "RECORD":
            continue
        dist_info = posixpath.dirname(path)
        site = posixpath.dirname(dist_info)
        name, version = _dist_name(dist_info)
        meta = view.nodes.get(dist_info + "/METADATA")
        meta_fields = _stanzas(_text(meta.data).split("\n\n", 1)[0]) if meta else []
        first = meta_fields[0] if meta_fields else {}
        requires: list[str] = []
        if meta is not None:
            for line in _text(meta.data).split("\n\n", 1)[0].splitlines():
                if line.startswith("Requires-Dist:"):
                    requires.append(line.partition(":")[2].strip())
        pkg = Package(
            "python",
            str(canonicalize_name(first.get("Name", name))),
            first.get("Version", version),
            location=site,
            requires=requires,
        )
        for rel in _record_paths(node.data):
            full = posixpath.normpath(posixpath.join(site, rel))
            if not full.startswith(".."):
                pkg.files.add(full)
        pkgs[f"{pkg.name}@{site}"] = pkg
    return pkgs


def conda_packages(view: MergedView) -> dict[str, Package]:
    pkgs: dict[str, Package] = {}
    for path, node in view.nodes.items():
        if not _CONDA_META.search(path):
            continue
        prefix = posixpath.dirname(posixpath.dirname(path))
        try:
            meta = json.loads(_text(node.data))
        except ValueError:
            continue
        if not isinstance(meta, dict):
            continue
        name = str(meta.get("name") or posixpath.basename(path))
        pkg = Package("conda", name, str(meta.get("version", "")), location=prefix)
        for rel in meta.get("files") or []:
            if isinstance(rel, str):
                pkg.files.add(posixpath.normpath(posixpath.join(prefix, rel)))
        pkgs[f"{name}@{prefix}"] = pkg
    return pkgs


def dev_only(pkgs: dict[str, Package], dev_roots: frozenset[str]) -> set[str]:
    """Names of Python dists that only dev tools need: dev roots plus everything reachable
    from them and not from any non-dev top-level distribution."""
    by_name = {p.name: p for p in pkgs.values()}

    def deps(p: Package) -> set[str]:
        out: set[str] = set()
        for spec in p.requires:
            try:
                req = Requirement(spec)
            except InvalidRequirement:
                continue
            if req.marker is not None and "extra" in str(req.marker):
                continue
            out.add(str(canonicalize_name(req.name)))
        return out

    graph = {name: deps(p) for name, p in by_name.items()}
    required = {d for ds in graph.values() for d in ds}
    roots = [n for n in by_name if n not in required and not is_dev_name(n, dev_roots)]
    keep: set[str] = set()
    stack = list(roots)
    while stack:
        n = stack.pop()
        if n in keep or is_dev_name(n, dev_roots):
            continue
        keep.add(n)
        stack.extend(graph.get(n, ()))
    dev: set[str] = set()
    stack = [n for n in by_name if is_dev_name(n, dev_roots)]
    while stack:
        n = stack.pop()
        if n in dev or n in keep or n not in by_name:
            continue
        dev.add(n)
        stack.extend(graph.get(n, ()))
    return dev


def is_dev_name(name: str, dev_roots: frozenset[str]) -> bool:
    return name in dev_roots or name.startswith(("pytest-", "flake8-", "types-", "jupyterlab-"))


def passwd_uids(view: MergedView) -> dict[str, int]:
    node = view.get("etc/passwd")
    out: dict[str, int] = {}
    if node is None:
        return out
    for line in _text(node.data).splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            out.setdefault(fields[0], int(fields[2]))
    return out
