"""The project's ``pylock.toml``: uv's PEP 751 lock plus torchslim's own table.

The Python part is the lock step's output (uv's lock plus the dependency
graph in ``[tool.torchslim]``), kept verbatim. The build appends one
``[tool.torchslim.build]`` table (PEP 751 allows tool tables) holding the digest of the
inputs the lock was made from and the resolved Debian package set, so a warm
build needs no network at all and two builds from one lock are identical.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import tomli_w
from packaging.utils import canonicalize_name

from torchslim.errors import ConfigError

LOCK_NAME = "pylock.toml"
MARKER = "# --- torchslim: inputs and Debian packages (written by torchslim; do not edit) ---"


@dataclass
class ProjectLock:
    python_text: str  # uv's pylock content, verbatim
    inputs: str = ""  # digest of requirements + torch pin + target
    debian_key: str = ""  # digest of the Debian spec the package set was resolved for
    debian: list[dict[str, Any]] = field(default_factory=list)
    # A registry base pinned once resolved: {"ref": "python:3.11-slim", "digest": "sha256:…"}
    base: dict[str, str] = field(default_factory=dict)

    def render(self) -> str:
        table: dict[str, Any] = {"inputs": self.inputs}
        if self.debian:
            table["debian-key"] = self.debian_key
            table["debian"] = self.debian
        if self.base:
            table["base"] = self.base
        tool = tomli_w.dumps({"tool": {"torchslim": {"build": table}}})
        return self.python_text.rstrip("\n") + "\n\n" + MARKER + "\n" + tool

    def upload_epochs(self) -> dict[str, int]:
        """Per package, the newest ``upload-time`` of its locked files (0 when unknown)."""
        data = tomllib.loads(self.python_text)
        out: dict[str, int] = {}
        for pkg in data.get("packages", []):
            files = list(pkg.get("wheels", []))
            if "sdist" in pkg:
                files.append(pkg["sdist"])
            times = [
                int(f["upload-time"].timestamp())
                for f in files
                if isinstance(f.get("upload-time"), datetime)
            ]
            out[canonicalize_name(str(pkg.get("name", "")))] = max(times, default=0)
        return out

    def newest_upload_epoch(self) -> int:
        """Newest ``upload-time`` among locked files: a date fixed by the lock itself."""
        return max(self.upload_epochs().values(), default=0)


def read_project_lock(path: Path) -> ProjectLock | None:
    if not path.is_file():
        return None
    text = path.read_text()
    python_text, _, _ = text.partition(MARKER)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid TOML ({exc}); delete it and run the build again to re-lock"
        ) from None
    own = data.get("tool", {}).get("torchslim", {}).get("build")
    if own is None:
        raise ConfigError(
            f"{path}: was not written by torchslim; move it away or pass --relock to replace it"
        )
    return ProjectLock(
        python_text=python_text.rstrip("\n") + "\n",
        inputs=str(own.get("inputs", "")),
        debian_key=str(own.get("debian-key", "")),
        debian=list(own.get("debian", [])),
        base={str(k): str(v) for k, v in dict(own.get("base", {})).items()},
    )


def write_project_lock(path: Path, lock: ProjectLock) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(lock.render())
    os.replace(tmp, path)
