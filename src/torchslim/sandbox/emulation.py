"""Running a foreign-architecture root: qemu-user, through binfmt_misc or bound in."""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

# OCI architecture → qemu-user's name for it.
QEMU_NAMES = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "arm": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "386": "i386",
}
_MACHINE_TO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


@dataclass(frozen=True)
class Emulation:
    """How a foreign-architecture root runs: transparently (binfmt ``F``) or explicitly."""

    qemu: str  # qemu's name for the arch, e.g. aarch64
    binary: str | None  # a static qemu to bind into the root; None when binfmt_misc handles it

    @property
    def method(self) -> str:
        return f"qemu-{self.qemu}"


def host_arch() -> str:
    machine = platform.machine()
    return _MACHINE_TO_ARCH.get(machine, machine)


def _is_static(path: str) -> bool:
    """An ELF without PT_INTERP: runs inside any root."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            return not any(seg["p_type"] == "PT_INTERP" for seg in ELFFile(f).iter_segments())
    except (OSError, ELFError):
        return False


def _binfmt_fixed(qemu: str, binfmt: Path) -> bool:
    """A binfmt_misc entry for ``qemu`` with the F flag (the kernel holds the interpreter open)."""
    for entry in (f"qemu-{qemu}", f"qemu-{qemu}-static"):
        try:
            text = (binfmt / entry).read_text()
        except OSError:
            continue
        flags = next(
            (ln.split(":", 1)[1] for ln in text.splitlines() if ln.startswith("flags")), ""
        )
        if text.startswith("enabled") and "F" in flags:
            return True
    return False


def emulation_for(
    arch: str, *, binfmt: Path = Path("/proc/sys/fs/binfmt_misc")
) -> Emulation | str | None:
    """None for the host's own arch; an Emulation; or why a root of ``arch`` cannot run here."""
    arch = arch.removeprefix("linux/").split("/")[0]
    if arch == host_arch():
        return None
    qemu = QEMU_NAMES.get(arch)
    if qemu is None:
        return f"no qemu-user emulator is known for architecture {arch}"
    if _binfmt_fixed(qemu, binfmt):
        return Emulation(qemu, None)
    for name in (f"qemu-{qemu}-static", f"qemu-{qemu}"):
        found = shutil.which(name)
        if found and _is_static(found):
            return Emulation(qemu, os.path.realpath(found))
    return (
        f"a linux/{arch} root needs qemu-user on this {host_arch()} host; install "
        f"qemu-user-static (apt) so qemu-{qemu}-static exists"
    )
