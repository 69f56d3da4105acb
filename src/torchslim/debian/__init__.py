"""Debian base: signed index → resolver → verified .debs → distroless-like rootfs.

Choices: indices come from ``<suite>`` and ``<suite>-updates`` on one mirror (both signed by
the archive keyring); ``debian-security`` is not read (point releases fold its fixes in).
Packages are unpacked in Python (no dpkg) into a merged-/usr tree; what maintainer scripts
would have produced (CA bundle, passwd, ld.so.cache, status.d) is written directly.
"""

from torchslim.debian.mirrors import host_mirrors
from torchslim.debian.resolver import resolve, resolve_signed
from torchslim.debian.rootfs import assemble
from torchslim.debian.spec import (
    DEFAULT_MIRROR,
    SCRIPT_ONLY,
    DebianSpec,
    DebPackage,
    RootfsInfo,
    SkippedFile,
    suite_for_python,
)
from torchslim.debian.version import compare_versions

__all__ = [
    "DEFAULT_MIRROR",
    "SCRIPT_ONLY",
    "DebPackage",
    "DebianSpec",
    "RootfsInfo",
    "SkippedFile",
    "assemble",
    "compare_versions",
    "host_mirrors",
    "resolve",
    "resolve_signed",
    "suite_for_python",
]
