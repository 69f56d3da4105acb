"""Requirements a ``pyproject.toml`` declares: PEP 621, PEP 735 groups and Poetry's tables.

Prod is ``[project].dependencies`` plus the extras the config names (or, for Poetry
1.x projects, ``[tool.poetry.dependencies]``). Dev is every group or extra whose
name says it is for development (:data:`DEV_GROUPS`): PEP 735
``[dependency-groups]``, ``[project.optional-dependencies]`` and Poetry groups.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from torchslim.config import read_toml
from torchslim.errors import ConfigError
from torchslim.project.items import RequirementItem

PYPROJECT = "pyproject.toml"

# Group / extra names that mean "not for the service": never installed, used by the audit.
DEV_GROUPS = frozenset(
    {"dev", "develop", "development", "test", "tests", "testing", "lint", "linting"}
    | {"docs", "doc", "typing", "types"}
)


def read_pyproject(root: Path) -> dict[str, Any] | None:
    path = root / PYPROJECT
    return read_toml(path) if path.is_file() else None


def project_name(data: Mapping[str, Any]) -> str | None:
    name = data.get("project", {}).get("name") or data.get("tool", {}).get("poetry", {}).get("name")
    return str(name) if name else None


def _items(values: Any, where: str, file: Path) -> list[RequirementItem]:
    if not isinstance(values, list):
        raise ConfigError(f"{file}: {where} must be a list of requirement strings")
    out = []
    for value in values:
        try:
            Requirement(str(value))
        except InvalidRequirement as exc:
            detail = str(exc).splitlines()[0]
            raise ConfigError(f"{file}: {where}: invalid requirement {value!r}: {detail}") from None
        out.append(RequirementItem(str(value), f"{PYPROJECT} {where}"))
    return out


def declares_dependencies(data: Mapping[str, Any]) -> bool:
    project = data.get("project", {})
    return bool(project.get("dependencies")) and "dependencies" not in project.get("dynamic", [])


def pep621_prod(
    root: Path, data: Mapping[str, Any], extras: Sequence[str], groups: Sequence[str] = ()
) -> list[RequirementItem]:
    """``[project].dependencies`` plus the named extras (an extra may name the project) and
    dependency groups."""
    file = root / PYPROJECT
    project = data.get("project", {})
    optional = project.get("optional-dependencies", {})
    own = canonicalize_name(str(project.get("name", "")))
    out = _items(project.get("dependencies", []), "[project].dependencies", file)
    seen: set[str] = set()
    todo = list(extras)
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        if extra not in optional:
            known = ", ".join(sorted(optional)) or "none"
            raise ConfigError(
                f"key `extras`: {extra!r} is not an extra of {file} (its extras: {known})"
            )
        for item in _items(optional[extra], f"[project.optional-dependencies].{extra}", file):
            req = Requirement(item.text)
            if own and canonicalize_name(req.name) == own:
                todo.extend(sorted(req.extras))  # "svc[serve]" inside an extra: expand it
            else:
                out.append(item)
    return out + group_items(root, data, groups)


def group_items(
    root: Path, data: Mapping[str, Any], groups: Sequence[str]
) -> list[RequirementItem]:
    """The named PEP 735 groups of pyproject.toml (``groups`` in the config)."""
    file = root / PYPROJECT
    known = data.get("dependency-groups", {})
    out: list[RequirementItem] = []
    for name in groups:
        if name not in known:
            names = ", ".join(sorted(known)) or "none"
            raise ConfigError(
                f"key `groups`: {name!r} is not a [dependency-groups] group of {file} "
                f"(its groups: {names})"
            )
        out += _group(known, name, file)
    return out


def _group(
    groups: Mapping[str, Any], name: str, file: Path, stack: tuple[str, ...] = ()
) -> list[RequirementItem]:
    """One PEP 735 group with its ``{include-group = "..."}`` entries expanded."""
    if name in stack:
        raise ConfigError(f"{file}: [dependency-groups] include each other: {' -> '.join(stack)}")
    if name not in groups:
        raise ConfigError(f"{file}: [dependency-groups] includes unknown group {name!r}")
    out: list[RequirementItem] = []
    for entry in groups[name]:
        if isinstance(entry, dict) and "include-group" in entry:
            out += _group(groups, str(entry["include-group"]), file, (*stack, name))
        else:
            out += _items([entry], f"[dependency-groups].{name}", file)
    return out


def dev_items(
    root: Path, data: Mapping[str, Any], prod_groups: Sequence[str] = ()
) -> list[RequirementItem]:
    """Dev groups of every kind a pyproject.toml can hold (less the ones prod installs)."""
    file = root / PYPROJECT
    out: list[RequirementItem] = []
    groups = data.get("dependency-groups", {})
    for name in groups:
        if name in DEV_GROUPS and name not in prod_groups:
            out += _group(groups, name, file)
    for name, values in data.get("project", {}).get("optional-dependencies", {}).items():
        if name in DEV_GROUPS:
            out += _items(values, f"[project.optional-dependencies].{name}", file)
    poetry = data.get("tool", {}).get("poetry", {})
    tables = {n: g.get("dependencies", {}) for n, g in poetry.get("group", {}).items()}
    tables["dev"] = {**poetry.get("dev-dependencies", {}), **tables.get("dev", {})}
    for name, table in tables.items():
        if name in DEV_GROUPS:
            where = f"[tool.poetry.group.{name}.dependencies]"
            out += [_poetry_item(n, spec, where, file) for n, spec in table.items()]
    return out


# ------------------------------------------------------------------ Poetry 1.x tables


def poetry_prod(root: Path, data: Mapping[str, Any]) -> list[RequirementItem]:
    """``[tool.poetry.dependencies]`` (less ``python``) as PEP 508 strings."""
    poetry = data.get("tool", {}).get("poetry", {})
    table, where = poetry.get("dependencies", {}), "[tool.poetry.dependencies]"
    sources = poetry.get("source", [])
    indexes = {str(s.get("name")): str(s.get("url")) for s in sources if isinstance(s, dict)}
    return [
        _poetry_item(name, spec, where, root / PYPROJECT, indexes)
        for name, spec in table.items()
        if name.lower() != "python" and not (isinstance(spec, dict) and spec.get("optional"))
    ]


def _poetry_item(
    name: str, spec: Any, where: str, file: Path, indexes: Mapping[str, str] | None = None
) -> RequirementItem:
    def bad(why: str) -> ConfigError:
        return ConfigError(
            f"{file}: {where} {name}: {why}; run `poetry lock` so torchslim reads poetry.lock, "
            "or list the requirement in `requirements`"
        )

    extras, marker, url, index = "", "", "", None
    if isinstance(spec, dict):
        if spec.get("source") not in (None, "pypi", "PyPI"):  # `source = "pytorch"`
            index = (indexes or {}).get(str(spec["source"]))
            if index is None:
                raise bad(f"source {spec['source']!r} is not a [[tool.poetry.source]] name")
        if spec.get("extras"):
            extras = "[" + ",".join(spec["extras"]) + "]"
        marker = str(spec.get("markers", ""))
        if "git" in spec:
            rev = spec.get("rev") or spec.get("tag") or spec.get("branch")
            url = f"git+{spec['git']}" + (f"@{rev}" if rev else "")
        elif "url" in spec:
            url = str(spec["url"])
        elif "path" in spec:
            raise bad("a local path dependency cannot be resolved for the image")
        spec = spec.get("version", "*")
    elif isinstance(spec, list):
        raise bad("multiple constraints per platform are not supported here")
    try:
        version = "" if url else poetry_specifier(str(spec))
    except ValueError as exc:
        raise bad(str(exc)) from None
    text = f"{name}{extras} @ {url}" if url else f"{name}{extras}{version}"
    if marker:
        text += f" ; {marker}"
    return RequirementItem(text, f"{PYPROJECT} {where}", index=index)


_BARE = re.compile(r"^\d+(\.\d+)*(\.\*)?$")


def _bump(parts: list[int], index: int) -> str:
    upper = parts[: index + 1]
    upper[index] += 1
    return ".".join(str(p) for p in upper + [0] * (len(parts) - index - 1))


def poetry_specifier(spec: str) -> str:
    """Poetry's constraint syntax (``^1.2``, ``~1.2.3``, ``1.2.*``, ``*``) as PEP 440."""
    spec = spec.strip()
    if spec in ("", "*"):
        return ""
    if "||" in spec:
        raise ValueError(f"constraint {spec!r} uses `||`, which PEP 440 cannot express")
    out = []
    for part in re.split(r"\s*,\s*|\s+(?=[<>=!~^])", spec):
        if part.startswith(("^", "~")) and not part.startswith("~="):
            version = part[1:].strip()
            nums = [int(p) for p in version.split(".")]
            if part[0] == "^":
                index = next((i for i, p in enumerate(nums) if p != 0), len(nums) - 1)
            else:
                index = 1 if len(nums) > 1 else 0
            index = min(index, len(nums) - 1)
            out.append(f">={version},<{_bump(nums, index)}")
        elif _BARE.match(part):
            out.append(f"=={part}")
        else:
            out.append(part.replace(" ", ""))
    return ",".join(out)


# Import names that differ from the distribution's (the rest: the name itself, normalised).
IMPORT_DISTRIBUTIONS = {
    "PIL": ("pillow",), "sklearn": ("scikit-learn",), "skimage": ("scikit-image",),
    "cv2": ("opencv-python", "opencv-python-headless", "opencv-contrib-python"),
    "yaml": ("pyyaml",), "bs4": ("beautifulsoup4",), "dotenv": ("python-dotenv",),
    "multipart": ("python-multipart",), "jose": ("python-jose",), "lightning": ("lightning",),
    "google": ("protobuf",), "attr": ("attrs",), "dateutil": ("python-dateutil",),
}  # fmt: skip


def _distributions_of(imports: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Canonical distribution name → (import name, "file:line")."""
    out: dict[str, tuple[str, str]] = {}
    for top, where in imports.items():
        for dist in IMPORT_DISTRIBUTIONS.get(top, (top,)):
            out.setdefault(canonicalize_name(dist), (top, where))
    return out


def _names(values: Any) -> set[str]:
    names: set[str] = set()
    for value in values if isinstance(values, list) else []:
        try:
            names.add(canonicalize_name(Requirement(str(value)).name))
        except InvalidRequirement:
            continue
    return names


def optional_holding(
    data: Mapping[str, Any], imports: Mapping[str, str]
) -> list[tuple[str, str, str, str]]:
    """The extras and dependency groups (not dev ones) that hold a package ``imports``
    names and ``[project].dependencies`` lacks: (table, name, package, "file:line"), where
    table is ``[project.optional-dependencies]`` or ``[dependency-groups]``."""
    project = data.get("project", {})
    wanted = _distributions_of(imports)
    base = _names(project.get("dependencies", []))
    tables = (
        ("[project.optional-dependencies]", project.get("optional-dependencies", {})),
        ("[dependency-groups]", data.get("dependency-groups", {})),
    )
    found: list[tuple[str, str, str, str]] = []
    for table, entries in tables:
        for name, values in entries.items() if isinstance(entries, Mapping) else []:
            if name in DEV_GROUPS:
                continue
            for dist in sorted(_names(values) & set(wanted) - base):
                found.append((table, str(name), dist, wanted[dist][1]))
    return found


_OBJECT_REF = re.compile(
    r"^\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*:\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)"
)


def script_command(data: Mapping[str, Any], name: str) -> list[str] | None:
    """``[project.scripts]`` (or Poetry's ``[tool.poetry.scripts]``) ``name``, as the command
    that runs it without the wrapper ``pip install .`` would write: torchslim ships the
    project's files, not a wheel of the project, so the console script is not on PATH."""
    tables = (
        data.get("project", {}).get("scripts"),
        data.get("tool", {}).get("poetry", {}).get("scripts"),
    )
    for table in tables:
        ref = table.get(name) if isinstance(table, Mapping) else None
        if isinstance(ref, Mapping):  # Poetry's { reference = "pkg.mod:func", type = … }
            ref = ref.get("reference") if ref.get("type", "console") == "console" else None
        m = _OBJECT_REF.match(ref) if isinstance(ref, str) else None
        if m is not None:
            module, attr = m.groups()
            top = attr.split(".")[0]
            code = f"import sys; from {module} import {top}; sys.exit({attr}())"
            return ["python3", "-c", code]
    return None


__all__ = [
    "DEV_GROUPS",
    "PYPROJECT",
    "declares_dependencies",
    "dev_items",
    "pep621_prod",
    "poetry_prod",
    "poetry_specifier",
    "project_name",
    "read_pyproject",
    "script_command",
    "IMPORT_DISTRIBUTIONS",
    "optional_holding",
]
