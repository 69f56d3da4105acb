"""The few files an SBOM is made from, read from a rootfs directory or from an image's layers.

Only package metadata is kept in memory: ``/etc/os-release``, dpkg's status (``status``
or distroless ``status.d/``), ``/usr/share/doc/*/copyright``, every ``*.dist-info``'s
METADATA and RECORD, and pip's ``_vendor/vendor.txt``; plus every symlink, so
``/usr/share/doc/libgcc-s1 -> gcc-12-base`` resolves. Layers are read in order with their
whiteouts applied, so the tree is what a container would see, which is what scanners read.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from torchslim.oci.flatten import follow_links
from torchslim.oci.image import Image
from torchslim.oci.layer import Layer
from torchslim.oci.limits import Budget, Limits
from torchslim.oci.tarstream import LayerStats, Member, Peek, walk_layer

MAX_FILE = 64 << 20  # a metadata file bigger than this is not metadata
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
        """``path`` with every symlink in it followed (absolute targets from the root); a
        loop leaves it unresolved, so a read finds nothing."""
        real = follow_links(path, lambda rel, last: self.links.get(rel))
        return path.strip("/") if real is None else real

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


def _norm(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


@dataclass
class LayerMeta:
    """What one layer does to the metadata view: the files and links it adds, what it hides.

    Read once per layer (with ``oci.tarstream``) and applied in layer order
    (``apply_layer_meta``); a build keeps it per layer digest, so a warm build's SBOM reads
    no layer again.
    """

    files: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    hardlinks: dict[str, str] = field(default_factory=dict)
    whiteouts: list[str] = field(default_factory=list)
    opaque: list[str] = field(default_factory=list)  # directories hiding what lower layers had
    others: list[str] = field(default_factory=list)  # every other entry: replaces a lower one


class _MetaReader:
    """Collects one layer's ``LayerMeta`` from its members as they stream by."""

    def __init__(self) -> None:
        self.meta = LayerMeta()

    def visit(self, m: Member, peek: Peek) -> None:
        path = _norm(m.name)
        parent, _, base = path.rpartition("/")
        meta = self.meta
        if base == OPAQUE:
            meta.opaque.append(parent)
        elif base.startswith(WHITEOUT):
            meta.whiteouts.append(f"{parent}/{base[len(WHITEOUT) :]}".lstrip("/"))
        elif m.kind == "symlink":
            meta.links[path] = m.linkname
        elif m.kind == "hardlink":
            meta.hardlinks[path] = _norm(m.linkname)
        elif m.kind == "file" and wanted(path) and m.size <= MAX_FILE:
            meta.files[path] = peek(m.size)
        else:
            meta.others.append(path)


def apply_layer_meta(tree: MetaTree, meta: LayerMeta) -> None:
    """``meta`` over ``tree`` (the lower layers), as a container's overlay would."""
    gone = [p for d in meta.opaque for p in [*tree.files, *tree.links] if p.startswith(d + "/")]
    gone += meta.whiteouts
    # A directory or other file replaces what lower layers had at its path.
    gone += [p for p in meta.others if p in tree.links or p in tree.files]
    for path in gone:
        tree.remove(path)
    for path in [*meta.files, *meta.links]:
        tree.remove(path)
    tree.files.update(meta.files)
    tree.links.update(meta.links)
    for path, target in meta.hardlinks.items():
        if wanted(path) and target in tree.files:
            tree.files[path] = tree.files[target]


class LayerMetaStore(Protocol):
    """Where a build keeps each layer's ``LayerMeta`` by layer digest."""

    def get(self, digest: str) -> LayerMeta | None: ...
    def put(self, digest: str, meta: LayerMeta) -> None: ...


def _layer_meta(image: Image, layer: Layer) -> LayerMeta:
    """One layer read with the one layer reader (``oci.tarstream``: bounded, hostile-safe)."""
    with image.open_layer(layer) as blob:
        return read_layer_meta(blob, f"layer {layer.digest}", LayerStats())


def read_layer_meta(blob: BinaryIO, what: str, stats: LayerStats) -> LayerMeta:
    """The ``LayerMeta`` of an opened layer blob (``stats`` filled as it streams by)."""
    reader = _MetaReader()
    walk_layer(blob, Budget(Limits()), what, reader.visit, stats)
    return reader.meta


def layer_meta(image: Image, layer: Layer, store: LayerMetaStore | None = None) -> LayerMeta:
    """One layer's metadata: from ``store`` when it was read before, else read (and kept)."""
    meta = store.get(layer.digest) if store is not None else None
    if meta is None:
        meta = _layer_meta(image, layer)
        if store is not None:
            store.put(layer.digest, meta)
    return meta


def tree_from_image(image: Image, store: LayerMetaStore | None = None) -> MetaTree:
    """The metadata files of ``image``: its layers in order, whiteouts applied.

    With ``store``, a layer read before is not read again."""
    tree = MetaTree()
    for layer in image.layers():
        apply_layer_meta(tree, layer_meta(image, layer, store))
    return tree
