"""The few files an SBOM is made from, read from a rootfs directory or from an image's layers.

Only package metadata is kept in memory: ``/etc/os-release``, dpkg's status (``status``
or distroless ``status.d/``), ``/usr/share/doc/*/copyright``, every ``*.dist-info``'s
METADATA and RECORD, and pip's ``_vendor/vendor.txt``; plus every symlink, so
``/usr/share/doc/libgcc-s1 -> gcc-12-base`` resolves. Layers are read in order with their
whiteouts applied, so the tree is what a container would see, which is what scanners read.
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, cast

import zstandard

from torchslim.errors import IntegrityError
from torchslim.oci.image import Image

MAX_FILE = 64 << 20  # a metadata file bigger than this is not metadata
_ZSTD = b"\x28\xb5\x2f\xfd"
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def wanted(path: str) -> bool:
    """Is ``path`` (relative to ``/``) one of the files an SBOM reads?"""
    if path in ("etc/os-release", "usr/lib/os-release", "var/lib/dpkg/status"):
        return True
    if path.startswith("var/lib/dpkg/status.d/"):
        return True
    parts = path.split("/")
    if len(parts) == 5 and parts[:3] == ["usr", "share", "doc"] and parts[4] == "copyright":
        return True
    if len(parts) >= 2 and parts[-2].endswith(".dist-info"):
        return parts[-1] in ("METADATA", "RECORD")
    return path.endswith("/_vendor/vendor.txt")


@dataclass
class MetaTree:
    """Metadata files (path → bytes) and symlinks (path → target), paths without a leading /."""

    files: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)

    def resolve(self, path: str) -> str:
        """``path`` with every symlink in it followed (absolute targets from the root)."""
        parts = [p for p in path.strip("/").split("/") if p not in ("", ".")]
        real: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if real:
                    real.pop()
                continue
            here = "/".join([*real, part])
            target = self.links.get(here)
            if target is None:
                real.append(part)
                continue
            hops += 1
            if hops > 40:
                return here  # a loop: leave it unresolved, the read then finds nothing
            if target.startswith("/"):
                real = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
        return "/".join(real)

    def read(self, path: str) -> bytes | None:
        return self.files.get(self.resolve(path))

    def read_text(self, path: str) -> str | None:
        data = self.read(path)
        return None if data is None else data.decode("utf-8", "replace")

    def under(self, prefix: str) -> list[str]:
        """Captured file paths below ``prefix`` (a directory, no trailing slash), sorted."""
        start = prefix.strip("/") + "/"
        return sorted(p for p in self.files if p.startswith(start))

    def remove(self, path: str) -> None:
        """Drop ``path`` and everything below it (a whiteout)."""
        for table in (self.files, self.links):
            table.pop(path, None)
            for p in [p for p in table if p.startswith(path + "/")]:
                del table[p]


def tree_from_dir(root: Path) -> MetaTree:
    """The metadata files of an unpacked root filesystem."""
    tree = MetaTree()
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        for name in [*filenames, *dirnames]:
            full = os.path.join(dirpath, name)
            rel = prefix + name
            if os.path.islink(full):
                tree.links[rel] = os.readlink(full)
            elif name in filenames and wanted(rel) and os.path.getsize(full) <= MAX_FILE:
                tree.files[rel] = Path(full).read_bytes()
    return tree


@contextmanager
def _tar_stream(blob: BinaryIO) -> Iterator[tarfile.TarFile]:
    buffered = io.BufferedReader(cast(io.RawIOBase, blob), buffer_size=1 << 20)
    if buffered.peek(4)[:4] == _ZSTD:
        dctx = zstandard.ZstdDecompressor()
        with (
            dctx.stream_reader(buffered, read_across_frames=True, closefd=False) as plain,
            tarfile.open(fileobj=cast(IO[bytes], plain), mode="r|") as tar,
        ):
            yield tar
    else:
        with tarfile.open(fileobj=buffered, mode="r|*") as tar:
            yield tar
    # To the end of the blob, so a verifying stream checks its digest.
    while buffered.read(1 << 20):
        pass


def _norm(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def _apply_layer(tree: MetaTree, tar: tarfile.TarFile) -> None:
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    hardlinks: dict[str, str] = {}
    gone: list[str] = []
    for m in tar:
        path = _norm(m.name)
        parent, _, base = path.rpartition("/")
        if base == OPAQUE:
            gone += [p for p in [*tree.files, *tree.links] if p.startswith(parent + "/")]
            continue
        if base.startswith(WHITEOUT):
            gone.append(f"{parent}/{base[len(WHITEOUT) :]}".lstrip("/"))
            continue
        if m.issym():
            links[path] = m.linkname
        elif m.islnk():
            hardlinks[path] = _norm(m.linkname)
        elif m.isfile() and wanted(path) and m.size <= MAX_FILE:
            f = tar.extractfile(m)
            if f is not None:
                files[path] = f.read()
        elif path in tree.links or path in tree.files:
            gone.append(path)  # a directory or other file replaces what lower layers had
    for path in gone:
        tree.remove(path)
    for path in [*files, *links]:
        tree.remove(path)
    tree.files.update(files)
    tree.links.update(links)
    for path, target in hardlinks.items():
        if wanted(path) and target in tree.files:
            tree.files[path] = tree.files[target]


def tree_from_image(image: Image) -> MetaTree:
    """The metadata files of ``image``: its layers in order, whiteouts applied."""
    tree = MetaTree()
    for layer in image.layers():
        with image.open_layer(layer) as blob:
            try:
                with _tar_stream(blob) as tar:
                    _apply_layer(tree, tar)
            except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as exc:
                raise IntegrityError(
                    f"layer {layer.digest} cannot be read as a tar ({exc}); the image is "
                    "corrupt, rebuild it"
                ) from exc
    return tree
