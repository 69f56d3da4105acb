"""A PEP 751 ``pylock.toml`` the project brought (``uv export``, ``pip lock``, PDM …).

torchslim writes its own ``pylock.toml`` too; that one carries a ``[tool.torchslim]``
table and is the build's output, never its input, so it is skipped here. Every
package of an input lock is prod: PEP 751 tools lock the groups chosen at export.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from torchslim.config import read_toml
from torchslim.errors import ConfigError
from torchslim.project.items import Artifact, RequirementItem


def is_torchslim_lock(data: Mapping[str, Any]) -> bool:
    return "torchslim" in data.get("tool", {})


def input_locks(root: Path) -> list[Path]:
    """``pylock.toml`` / ``pylock.<name>.toml`` files at ``root`` not written by torchslim."""
    found = sorted(root.glob("pylock.*toml"))
    return [p for p in found if p.is_file() and _named_lock(p) and not _ours(p)]


def _named_lock(path: Path) -> bool:
    parts = path.name.split(".")
    return path.name == "pylock.toml" or (len(parts) == 3 and parts[1] != "")


def _ours(path: Path) -> bool:
    try:
        return is_torchslim_lock(read_toml(path))
    except ConfigError:
        return False  # unreadable: read_pylock reports it when it is used


def _artifact(entry: Mapping[str, Any]) -> Artifact | None:
    hashes = entry.get("hashes", {})
    if "sha256" not in hashes:
        return None
    url = entry.get("url")
    name = entry.get("name") or PurePosixPath(str(url or entry.get("path", ""))).name
    return Artifact(str(name), f"sha256:{hashes['sha256']}", str(url) if url else None)


def read_pylock(path: Path, rel: str) -> list[RequirementItem]:
    data = read_toml(path)
    if is_torchslim_lock(data):
        raise ConfigError(
            f"{path}: is torchslim's own lock (the build's output), not an input; "
            "name the project's requirements in `requirements` instead"
        )
    if not str(data.get("lock-version", "")).startswith("1."):
        raise ConfigError(
            f"{path}: lock-version {data.get('lock-version')!r} is not PEP 751 1.x; "
            "regenerate it (e.g. `uv export --format pylock.toml`)"
        )
    out = []
    for pkg in data.get("packages", []):
        files = [*pkg.get("wheels", []), *(pkg[k] for k in ("sdist", "archive") if k in pkg)]
        artifacts = tuple(a for a in map(_artifact, files) if a is not None)
        version = pkg.get("version")
        url = None
        if "vcs" in pkg:
            vcs = pkg["vcs"]
            url = f"{vcs.get('type', 'git')}+{vcs.get('url')}@{vcs.get('commit-id', '')}"
        elif "directory" in pkg:
            url = str(pkg["directory"].get("path"))
        elif "archive" in pkg and "url" in pkg["archive"]:
            url = str(pkg["archive"]["url"])
        name = str(pkg["name"])
        out.append(
            RequirementItem(
                text=f"{name}=={version}" if version else name,
                source=rel,
                kind="pinned",
                version=str(version) if version else None,
                artifacts=artifacts,
                index=pkg.get("index"),
                url=url,
                marker=pkg.get("marker"),
            )
        )
    return out


__all__ = ["input_locks", "is_torchslim_lock", "read_pylock"]
