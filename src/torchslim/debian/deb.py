"""Read a .deb (an ``ar`` archive) and unpack its ``data.tar.*`` in Python, safely.

No dpkg-deb: the host may not be Debian. Paths are confined to the destination (``..``,
absolute names and symlinked parents that leave it are refused); modes, symlinks and hard
links are kept; docs, man pages, info and locales are left out and recorded.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO, cast

import zstandard

from torchslim.debian.spec import SkippedFile
from torchslim.errors import BuildError, IntegrityError

AR_MAGIC = b"!<arch>\n"

# Top-level directories that are symlinks into /usr on a merged-/usr system (Debian ≥ 12).
USR_ALIASES = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

# Whole trees nobody reads at run time in a container.
SKIP_TREES = ("usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian")


def skip_reason(path: str) -> str | None:
    """Why ``path`` (relative, no leading ./) is left out, or ``None`` to keep it.

    ``usr/share/doc/<pkg>/copyright`` stays: licences must ship with the binaries, and SBOM
    scanners read them.
    """
    for tree in SKIP_TREES:
        if path == tree or path.startswith(tree + "/"):
            return tree
    parts = path.split("/")
    if parts[:3] == ["usr", "share", "doc"] and len(parts) > 4:
        if len(parts) == 5 and parts[4] == "copyright":
            return None
        return "usr/share/doc"
    return None


class _Bounded:
    """A read-only view of ``size`` bytes of an underlying file (one ar member)."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f = f
        self._left = size

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        if n < 0 or n > self._left:
            n = self._left
        data = self._f.read(n)
        self._left -= len(data)
        return data


def iter_ar(f: BinaryIO, what: str) -> Iterator[tuple[str, _Bounded]]:
    """Members of an ar archive as (name, reader); read each before asking for the next."""
    if f.read(8) != AR_MAGIC:
        raise IntegrityError(f"{what} is not a Debian package (no ar header); delete the cache")
    while True:
        header = f.read(60)
        if not header:
            return
        if len(header) != 60 or header[58:60] != b"`\n":
            raise IntegrityError(f"{what} has a corrupt ar header; delete the cache and retry")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        start = f.tell()
        yield name, _Bounded(f, size)
        f.seek(start + size + (size & 1))


@contextmanager
def _decompressed(name: str, raw: _Bounded) -> Iterator[IO[bytes]]:
    """The tar stream inside an ar member, by the member's suffix (dpkg supports these)."""
    src = cast(IO[bytes], raw)
    if name.endswith(".xz"):
        with lzma.open(src) as xz:
            yield xz
    elif name.endswith(".zst"):
        with zstandard.ZstdDecompressor().stream_reader(src, closefd=False) as zs:
            yield cast(IO[bytes], zs)
    elif name.endswith(".gz"):
        with gzip.open(src) as gz:
            yield cast(IO[bytes], gz)
    elif name.endswith(".bz2"):
        with bz2.open(src) as bz:
            yield bz
    elif name.endswith(".tar"):
        yield src
    else:
        raise IntegrityError(f"unsupported compression in {name}")


def _norm(name: str, what: str) -> list[str]:
    """Archive member name → safe relative parts, merged-/usr aliases rewritten."""
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        raise IntegrityError(f"{what} holds an unsafe path {name!r}; refusing to unpack it")
    parts = [x for x in p.parts if x not in (".", "")]
    if parts and parts[0] in USR_ALIASES:
        parts = [] if len(parts) == 1 else ["usr", *parts]
    return parts


class Root:
    """A destination directory that paths cannot escape, even through symlinks inside it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def walk(self, parts: list[str], create: bool, hops: int = 0) -> list[str]:
        """Resolve ``parts`` to real components (no symlinks), following links inside the root
        (absolute targets are taken from the root, ``..`` stops at the root)."""
        real: list[str] = []
        for i, part in enumerate(parts):
            here = self.path.joinpath(*real, part)
            if here.is_symlink():
                if hops > 40:
                    raise IntegrityError(f"symlink loop at /{'/'.join(real + [part])}")
                target = os.readlink(here)
                base = [] if target.startswith("/") else real
                joined: list[str] = []
                for t in [*base, *PurePosixPath(target).parts, *parts[i + 1 :]]:
                    if t in ("/", ".", ""):
                        continue
                    if t == "..":
                        if joined:
                            joined.pop()
                        continue
                    joined.append(t)
                return self.walk(joined, create, hops + 1)
            if here.is_dir():
                real.append(part)
            elif not here.exists() and create:
                here.mkdir(mode=0o755)
                real.append(part)
            elif i == len(parts) - 1:
                real.append(part)  # the leaf may be a file (or absent)
            else:
                raise BuildError(
                    f"cannot unpack under /{'/'.join(real + [part])}: it is not a directory"
                )
        return real


@dataclass
class Unpacked:
    md5sums: dict[str, str] = field(default_factory=dict)  # path (as in the package) → md5
    skipped: list[SkippedFile] = field(default_factory=list)


def _read_md5sums(raw: _Bounded, name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    with _decompressed(name, raw) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for m in tar:
            if m.isfile() and m.name.lstrip("./") == "md5sums":
                ex = tar.extractfile(m)
                if ex is None:
                    continue
                for line in ex.read().decode("utf-8", "replace").splitlines():
                    digest, _, path = line.partition("  ")
                    if path:
                        out[path.strip()] = digest.strip()
    return out


def _replace(target: Path) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        raise BuildError(f"two packages disagree on {target}: a directory and a file")


def unpack_deb(deb: Path, dest: Path, package: str) -> Unpacked:
    """Unpack ``deb`` (already verified) into ``dest``; return its md5sums and skipped files."""
    root = Root(dest)
    result = Unpacked()
    what = f"{package} ({deb.name})"
    found_data = False
    with deb.open("rb") as f:
        for name, raw in iter_ar(f, what):
            if name.startswith("control.tar"):
                result.md5sums = _read_md5sums(raw, name)
            elif name.startswith("data.tar"):
                found_data = True
                with _decompressed(name, raw) as data, tarfile.open(fileobj=data, mode="r|") as t:
                    for m in t:
                        _unpack_member(t, m, root, what, package, result)
    if not found_data:
        raise IntegrityError(f"{what} has no data.tar member; delete the cache and retry")
    return result


def _unpack_member(
    tar: tarfile.TarFile, m: tarfile.TarInfo, root: Root, what: str, pkg: str, res: Unpacked
) -> None:
    parts = _norm(m.name, what)
    if not parts:
        return
    rel = "/".join(parts)
    reason = skip_reason(rel)
    if reason is not None:
        if not m.isdir():
            res.skipped.append(SkippedFile(pkg, "/" + rel, m.size if m.isfile() else 0))
        return
    parent = root.walk(parts[:-1], create=True)
    target = root.path.joinpath(*parent, parts[-1])
    mode = stat.S_IMODE(m.mode)
    if m.isdir():
        if target.is_symlink():
            return  # dpkg keeps an existing symlink to a directory
        if not target.exists():
            target.mkdir(mode=0o755)
        elif not target.is_dir():
            raise BuildError(f"two packages disagree on /{rel}: a file and a directory")
        os.chmod(target, mode)
    elif m.isreg():
        _replace(target)
        src = tar.extractfile(m)
        assert src is not None
        with open(target, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.chmod(target, mode)
        os.utime(target, (m.mtime, m.mtime))
    elif m.issym():
        _replace(target)
        os.symlink(m.linkname, target)
        os.utime(target, (m.mtime, m.mtime), follow_symlinks=False)
    elif m.islnk():
        lparts = _norm(m.linkname, what)
        if skip_reason("/".join(lparts)) is not None:
            res.skipped.append(SkippedFile(pkg, "/" + rel, m.size))
            return
        source = root.path.joinpath(*root.walk(lparts, create=False))
        if not source.is_file():
            raise IntegrityError(f"{what}: hard link /{rel} points at missing /{m.linkname}")
        _replace(target)
        os.link(source, target)
    # Devices and FIFOs are never shipped by the packages we install; ignore them.
