"""The image's own library index: ``/etc/ld.so.cache`` and the ``ld.so.conf`` directories.

``ld.so`` consults ``/etc/ld.so.cache`` (written by ``ldconfig``) after RPATH/RUNPATH and
before its trusted directories. The cache is read in glibc's ``glibc-ld.so.cache1.1``
format (alone, or after the old ``ld.so-1.7.0`` table in the compat layout); entries for
other machines (flags) are ignored. ``ld.so.conf`` (with its ``include`` globs) names the
directories ``ldconfig`` indexes; they count too, since the NVIDIA container toolkit runs
``ldconfig`` again when a container starts.
"""

from __future__ import annotations

import logging
import posixpath
import struct
from collections.abc import Callable

log = logging.getLogger(__name__)

MAGIC_NEW = b"glibc-ld.so.cache1.1"
MAGIC_OLD = b"ld.so-1.7.0"
_HEADER_NEW = struct.Struct("<20sII4xI12x")  # magic+version, nlibs, len_strings, ext offset
_ENTRY_NEW = struct.Struct("<iIIIQ")  # flags, key, value, osversion, hwcap
_ENTRY_OLD_SIZE = 12

FLAG_ELF_LIBC6 = 0x0003
# ldconfig's machine flags (sysdeps/generic/ldconfig.h)
MACHINE_FLAGS: dict[str, int] = {
    "EM_X86_64": FLAG_ELF_LIBC6 | 0x0300,  # FLAG_X8664_LIB64
    "EM_AARCH64": FLAG_ELF_LIBC6 | 0x0A00,  # FLAG_AARCH64_LIB64
}


def parse_ld_cache(data: bytes, machine: str = "EM_X86_64") -> dict[str, list[str]]:
    """Soname -> library paths of ``machine`` from an ``ld.so.cache`` file's bytes.

    An unknown or truncated file yields what could be read (possibly nothing).
    """
    base = 0
    if data.startswith(MAGIC_OLD):
        (nlibs,) = struct.unpack_from("<I", data, 12)
        base = 16 + nlibs * _ENTRY_OLD_SIZE
        base = (base + 7) & ~7  # the new table follows, 8-byte aligned
    if data[base : base + len(MAGIC_NEW)] != MAGIC_NEW:
        return {}
    want = MACHINE_FLAGS.get(machine)
    out: dict[str, list[str]] = {}
    try:
        _, nlibs, _, _ = _HEADER_NEW.unpack_from(data, base)
        for i in range(nlibs):
            flags, key, value, _, _ = _ENTRY_NEW.unpack_from(
                data, base + _HEADER_NEW.size + i * _ENTRY_NEW.size
            )
            if want is not None and flags != want:
                continue
            name, path = _cstr(data, base + key), _cstr(data, base + value)
            out.setdefault(name, []).append(path)
    except (struct.error, UnicodeDecodeError) as exc:
        log.warning("ld.so.cache: unreadable after %d entries (%s)", len(out), exc)
    return out


def _cstr(data: bytes, offset: int) -> str:
    end = data.index(b"\0", offset)
    return data[offset:end].decode("utf-8")


def ld_conf_dirs(
    read_text: Callable[[str], str | None],
    glob: Callable[[str], list[str]],
    conf: str = "/etc/ld.so.conf",
    depth: int = 0,
) -> list[str]:
    """Directories listed by ``conf`` and the files it ``include``s, in order."""
    text = read_text(conf)
    if text is None or depth > 8:
        return []
    dirs: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("hwcap "):
            continue
        if line.startswith("include "):
            for pattern in line.split()[1:]:
                if not pattern.startswith("/"):
                    pattern = posixpath.join(posixpath.dirname(conf), pattern)
                for path in glob(pattern):
                    dirs += ld_conf_dirs(read_text, glob, path, depth + 1)
            continue
        for d in line.replace(",", " ").replace(":", " ").split():
            d = posixpath.normpath(d.split("=", 1)[0])  # old "dir=TYPE" syntax
            if d.startswith("/") and d not in dirs:
                dirs.append(d)
    return dirs
