"""A PEP 751 ``pylock.toml`` read for one target: which wheel of each package runs there.

``Target`` is the platform an image runs on (CPython, CPU, the base's glibc);
``read_lock`` / ``parse_lock`` pick the best wheel of every package whose marker
holds on that target, and check it has a sha256.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging import pylock, tags
from packaging.markers import Marker
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from torchslim.deps.http import url_filename
from torchslim.digests import is_digest
from torchslim.errors import ConfigError, ResolveError


def one_line(text: str) -> str:
    """A tool's message on one line (whitespace runs collapsed)."""
    return re.sub(r"\s+", " ", text).strip()


ARCHES = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}
# The manylinux_2_X minors uv's ``--python-platform`` accepts (uv >= 0.8 lists exactly these;
# tests/unit/deps/test_pylock.py asks the installed uv, so a uv that drops one is caught).
UV_MANYLINUX = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)
_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "x86_64": "x86_64", "aarch64": "aarch64"}


@dataclass(frozen=True)
class Target:
    """The platform the image runs on: CPython version, CPU and glibc of the base."""

    python: str = "3.11"
    arch: str = "x86_64"
    glibc: str = "2.36"

    def __post_init__(self) -> None:
        if self.arch not in ARCHES:
            raise ConfigError(f"unsupported target arch {self.arch!r}; use x86_64 or aarch64")
        if not re.fullmatch(r"3\.\d+", self.python):
            raise ConfigError(f"target python {self.python!r} must look like '3.11'")
        if not re.fullmatch(r"2\.\d+", self.glibc):
            raise ConfigError(f"target glibc {self.glibc!r} must look like '2.36'")

    @classmethod
    def from_platform(cls, platform: str, python: str = "3.11", glibc: str = "2.36") -> Target:
        """``linux/amd64`` / ``linux/arm64`` (OCI spelling) or a bare arch name."""
        arch = platform.removeprefix("linux/")
        if arch not in _ARCH_ALIASES:
            raise ConfigError(f"unsupported platform {platform!r}; use linux/amd64 or linux/arm64")
        return cls(python=python, arch=_ARCH_ALIASES[arch], glibc=glibc)

    @property
    def uv_platform(self) -> str:
        """The ``--python-platform`` value for uv: the newest manylinux tag uv knows that this
        glibc runs (uv accepts only ``UV_MANYLINUX`` minors; glibc 2.41 resolves as 2_40,
        which picks the same wheels: no PyPI wheel targets a glibc newer than 2.40 as yet)."""
        minor = int(self.glibc.split(".")[1])
        fits = [m for m in UV_MANYLINUX if m <= minor]
        if not fits:
            raise ConfigError(
                f"target glibc {self.glibc} is older than manylinux_2_{UV_MANYLINUX[0]}, the "
                "oldest platform uv resolves for: use a base with glibc 2.17 or newer"
            )
        return f"{self.arch}-manylinux_2_{max(fits)}"

    @property
    def platform(self) -> str:
        return ARCHES[self.arch]

    @property
    def cp(self) -> str:
        return "cp" + self.python.replace(".", "")

    def describe(self) -> str:
        return f"{self.platform} {self.cp} glibc {self.glibc}"

    def platform_tags(self) -> list[str]:
        """manylinux tags this glibc accepts, best first (incl. the legacy aliases)."""
        minor = int(self.glibc.split(".")[1])
        lowest = 17 if self.arch == "aarch64" else 5
        out: list[str] = []
        for m in range(minor, lowest - 1, -1):
            out.append(f"manylinux_2_{m}_{self.arch}")
            legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}.get(m)
            if legacy and (self.arch == "x86_64" or m == 17):
                out.append(f"{legacy}_{self.arch}")
        return out

    def tags(self) -> list[tags.Tag]:
        """Every wheel tag an interpreter on the target accepts, most specific first."""
        version = tuple(int(x) for x in self.python.split("."))
        plats = self.platform_tags()
        return [
            *tags.cpython_tags(version, platforms=plats),
            *tags.compatible_tags(version, interpreter=self.cp, platforms=plats),
        ]

    def marker_env(self) -> dict[str, str]:
        return {
            "python_version": self.python,
            "python_full_version": self.python + ".0",
            "sys_platform": "linux",
            "platform_system": "Linux",
            "platform_machine": self.arch,
            "os_name": "posix",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
        }


@dataclass(frozen=True)
class LockedWheel:
    name: str  # normalized project name
    version: str
    filename: str
    url: str
    sha256: str  # hex, without the "sha256:" prefix
    size: int | None

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha256


@dataclass(frozen=True)
class Lock:
    packages: tuple[LockedWheel, ...]
    parents: dict[str, tuple[str, ...]] = field(default_factory=dict)
    target: Target = field(default_factory=Target)

    def get(self, name: str) -> LockedWheel | None:
        norm = canonicalize_name(name)
        return next((p for p in self.packages if p.name == norm), None)


def wheel_filename(w: Mapping[str, Any]) -> str:
    if w.get("name"):
        return str(w["name"])
    return url_filename(str(w.get("url") or w.get("path") or ""))


def best_wheel(wheels: Sequence[Mapping[str, Any]], target: Target) -> Mapping[str, Any] | None:
    """The wheel entry whose tags rank best for ``target``; None if none fits."""
    rank = {t: i for i, t in enumerate(target.tags())}
    best: tuple[int, Mapping[str, Any]] | None = None
    for w in wheels:
        try:
            wtags = parse_wheel_filename(wheel_filename(w))[3]
        except InvalidWheelFilename:
            continue
        score = min((rank[t] for t in wtags if t in rank), default=None)
        if score is not None and (best is None or score < best[0]):
            best = (score, w)
    return best[1] if best else None


def read_lock(path: Path, target: Target | None = None) -> Lock:
    """Read a ``pylock.toml`` (ours or any PEP 751 lock) and pick one wheel per package."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"lock file {path} does not exist; run the lock step first") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable pylock.toml ({one_line(str(exc))})") from None
    return parse_lock(text, path, target)


def parse_lock(text: str, path: Path, target: Target | None = None) -> Lock:
    """A ``pylock.toml``'s text (read from ``path``: relative wheel paths are against it)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not a readable pylock.toml ({one_line(str(exc))})") from None
    try:
        pylock.Pylock.from_dict(data)
    except Exception as exc:  # PylockValidationError and friends; message is enough
        raise ConfigError(f"{path}: invalid pylock.toml ({one_line(str(exc))})") from None

    mine = data.get("tool", {}).get("torchslim", {})
    recorded = Target(**mine["target"]) if "target" in mine else None
    if target is not None and recorded is not None and target != recorded:
        raise ResolveError(
            f"{path} was locked for {recorded.describe()}, not {target.describe()}; "
            "lock again for this target"
        )
    tgt = target or recorded or Target()
    env = tgt.marker_env()

    wheels: list[LockedWheel] = []
    for pkg in data.get("packages", []):
        marker = pkg.get("marker")
        if marker and not Marker(marker).evaluate(env):
            continue
        name, version = canonicalize_name(pkg["name"]), str(pkg.get("version", ""))
        w = best_wheel(pkg.get("wheels", []), tgt)
        if w is None:
            raise ResolveError(
                f"{path}: {name} {version} has no wheel for {tgt.describe()}; lock again "
                "for this target"
            )
        sha = dict(w.get("hashes", {})).get("sha256")
        if not sha:
            raise ConfigError(f"{path}: wheel {wheel_filename(w)} has no sha256; lock again")
        if not is_digest(f"sha256:{sha}"):  # it names a cache file: 64 lowercase hex only
            raise ConfigError(
                f"{path}: wheel {wheel_filename(w)} has an invalid sha256; lock again"
            )
        url = w.get("url") or (path.parent / str(w["path"])).resolve().as_uri()
        wheels.append(
            LockedWheel(name, version, wheel_filename(w), str(url), str(sha), w.get("size"))
        )
    parents = {k: tuple(v) for k, v in mine.get("parents", {}).items()}
    return Lock(packages=tuple(sorted(wheels, key=lambda x: x.name)), parents=parents, target=tgt)
