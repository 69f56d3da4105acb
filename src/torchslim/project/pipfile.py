"""Pipenv's ``Pipfile.lock`` (pinned, with hashes) and ``Pipfile`` (to resolve).

``[packages]`` / ``default`` is prod, ``[dev-packages]`` / ``develop`` is dev. The lock
is used only while it matches the Pipfile: pipenv stores the sha256 of the Pipfile's
content in ``_meta.hash`` and we compute it the same way (plette's
``Pipfile.get_hash``); a stale lock is reported and the Pipfile is resolved instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torchslim.config import read_toml
from torchslim.errors import ConfigError
from torchslim.project.items import Artifact, RequirementItem

PIPFILE = "Pipfile"
PIPFILE_LOCK = "Pipfile.lock"
_DEFAULT_SOURCE = [{"url": "https://pypi.org/simple", "verify_ssl": True, "name": "pypi"}]
_SECTIONS = {"source", "packages", "dev-packages", "requires", "scripts", "pipfile", "pipenv"}


def read_pipfile(path: Path) -> dict[str, Any]:
    return read_toml(path)


def pipfile_hash(data: Mapping[str, Any]) -> str:
    """The hash pipenv writes into ``Pipfile.lock``'s ``_meta.hash.sha256``."""
    content: dict[str, Any] = {
        "_meta": {
            "sources": data.get("source", _DEFAULT_SOURCE),
            "requires": data.get("requires", {}),
        },
        "default": data.get("packages", {}),
        "develop": data.get("dev-packages", {}),
    }
    for category, values in data.items():
        if category not in _SECTIONS and category not in ("default", "develop"):
            content[category] = values
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_pipfile_lock(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON lock ({exc}); run `pipenv lock`") from None
    if not isinstance(data, dict) or "default" not in data:
        raise ConfigError(f"{path}: has no `default` section; run `pipenv lock`")
    return data


def lock_is_fresh(lock: Mapping[str, Any], pipfile: Mapping[str, Any]) -> bool:
    return bool(lock.get("_meta", {}).get("hash", {}).get("sha256") == pipfile_hash(pipfile))


def lock_items(lock: Mapping[str, Any], section: str) -> list[RequirementItem]:
    """``default`` or ``develop`` entries, pinned with their hashes and index URL."""
    sources = {s.get("name"): s.get("url") for s in lock.get("_meta", {}).get("sources", [])}
    first = next(iter(sources.values()), None)
    where = f"{PIPFILE_LOCK} [{section}]"
    out = []
    for name, entry in sorted(lock.get(section, {}).items()):
        version = str(entry.get("version", "")).removeprefix("==")
        extras = "[" + ",".join(entry["extras"]) + "]" if entry.get("extras") else ""
        url = None
        if "git" in entry:
            url = f"git+{entry['git']}" + (f"@{entry['ref']}" if entry.get("ref") else "")
        elif "file" in entry or "path" in entry:
            url = str(entry.get("file") or entry.get("path"))
        text = f"{name}{extras} @ {url}" if url else f"{name}{extras}=={version}"
        out.append(
            RequirementItem(
                text=text,
                source=where,
                kind="pinned",
                version=version or None,
                artifacts=tuple(Artifact("", str(h)) for h in entry.get("hashes", [])),
                index=sources.get(entry.get("index"), first),
                url=url,
                marker=entry.get("markers"),
            )
        )
    return out


def pipfile_items(path: Path, data: Mapping[str, Any], section: str) -> list[RequirementItem]:
    """``[packages]`` or ``[dev-packages]`` as PEP 508 strings."""
    where = f"{PIPFILE} [{section}]"
    out = []
    for name, spec in data.get(section, {}).items():
        table = spec if isinstance(spec, dict) else {"version": spec}
        if "path" in table or table.get("editable"):
            raise ConfigError(
                f"{path}: [{section}] {name}: a local path cannot be installed into the image; "
                "publish it as a wheel or list it in `requirements`"
            )
        extras = "[" + ",".join(table["extras"]) + "]" if table.get("extras") else ""
        version = str(table.get("version", "*"))
        text = f"{name}{extras}{'' if version == '*' else version}"
        if "git" in table:
            ref = f"@{table['ref']}" if table.get("ref") else ""
            text = f"{name}{extras} @ git+{table['git']}{ref}"
        marker = table.get("markers")
        if marker:
            text += f" ; {marker}"
        out.append(RequirementItem(text, where))
    return out


__all__ = [
    "PIPFILE",
    "PIPFILE_LOCK",
    "lock_is_fresh",
    "lock_items",
    "pipfile_hash",
    "pipfile_items",
    "read_pipfile",
    "read_pipfile_lock",
]
