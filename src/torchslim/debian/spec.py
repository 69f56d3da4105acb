"""What to build (DebianSpec), what was resolved (DebPackage) and what came out (RootfsInfo)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torchslim.errors import ConfigError

DEFAULT_MIRROR = "http://deb.debian.org/debian"

# Python version → Debian suite whose default python3 it is.
PYTHON_SUITES: dict[str, str] = {"3.11": "bookworm", "3.13": "trixie"}

# Dependencies that exist only for maintainer scripts (never run here); treated as satisfied.
SCRIPT_ONLY: dict[str, str] = {
    "debconf": "tzdata/ca-certificates ask configuration questions in postinst; no runtime use",
    "debconf-2.0": "virtual package provided by debconf/cdebconf, same reason as debconf",
    "perl-base": "only debconf and maintainer scripts run perl",
    "dpkg": "maintainer scripts call dpkg-trigger/dpkg-maintscript-helper; no package manager",
    "openssl": "ca-certificates needs it only for `openssl rehash` in update-ca-certificates; "
    "we build the bundle in Python",
    "awk": "virtual; base-files' postinst uses awk, nothing at run time does",
    "install-info": "readline-common's alternative to dpkg; registers info pages we skip",
}

# Essential-ish packages the root set names directly, before the Python runtime.
BASE_PACKAGES: tuple[str, ...] = (
    "base-files",
    "netbase",
    "tzdata",
    "ca-certificates",
    "libc6",
    "libgomp1",
    "libstdc++6",
)


def suite_for_python(python: str) -> str:
    """3.11 → bookworm, 3.13 → trixie; anything else is a config error on field ``python``."""
    suite = PYTHON_SUITES.get(python)
    if suite is None:
        supported = ", ".join(f'"{v}" ({s})' for v, s in PYTHON_SUITES.items())
        raise ConfigError(
            f'field `python` = "{python}" has no Debian base: set `python` to one of '
            f"{supported}, or use a registry base"
        )
    return suite


@dataclass(frozen=True)
class DebianSpec:
    """Inputs of the Debian base: suite, arch, mirror, Python and extra packages, app user."""

    suite: str
    arch: str = "amd64"
    mirror: str = DEFAULT_MIRROR
    python: str = "3.11"
    extra: tuple[str, ...] = ()
    uid: int = 1000
    user: str = "app"
    home: str = "/home/app"

    def roots(self) -> list[str]:
        """Packages asked for by name (deduplicated, order kept: it drives the resolver)."""
        py = f"python{self.python}"
        names = [*BASE_PACKAGES, f"{py}-minimal", f"libpython{self.python}-stdlib", py]
        names += list(self.extra)
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class DebPackage:
    """One resolved .deb: where it lives in the pool, its signed hash, and its control stanza."""

    name: str
    version: str
    arch: str
    filename: str
    sha256: str  # "sha256:<hex>", the form BlobStore uses
    size: int
    control: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "arch": self.arch,
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "control": dict(self.control),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DebPackage:
        return cls(
            name=str(d["name"]),
            version=str(d["version"]),
            arch=str(d["arch"]),
            filename=str(d["filename"]),
            sha256=str(d["sha256"]),
            size=int(d["size"]),
            control={str(k): str(v) for k, v in dict(d.get("control", {})).items()},
        )


@dataclass(frozen=True)
class SkippedFile:
    """A file of a package left out of the rootfs (docs, man pages, locales)."""

    package: str
    path: str
    size: int


@dataclass(frozen=True)
class RootfsInfo:
    """What the assembled rootfs holds, probed from its files, for the rest of the build."""

    python_exe: str
    python_version: str
    site_packages: str
    glibc: str
    packages: list[DebPackage]
    # Paths (absolute in the image) the layer writer must give to the app user: {path: (uid, gid)}.
    owners: dict[str, tuple[int, int]] = field(default_factory=dict)
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def skipped_bytes(self) -> int:
        return sum(s.size for s in self.skipped)
