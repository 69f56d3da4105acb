"""The one merged view of an image's layers, as a container runtime would see the filesystem.

Layers are streamed once each (never extracted to disk). OCI whiteouts (``.wh.NAME``) and
opaque directories (``.wh..wh..opq``) apply to lower layers only; a file replacing a
directory hides its children; symlinks and hard links are followed inside the view.
Per-path history is kept, and every copy that a later entry overwrites or deletes is
recorded: those, and only those, are wasted bytes. Used by the base probe and ``analyze``.
"""

from __future__ import annotations

import posixpath
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from torchslim.oci.image import Image
from torchslim.oci.layer import Layer
from torchslim.oci.limits import Budget, LimitExceeded, Limits
from torchslim.oci.tarstream import LayerStats, Member, Peek, walk_layer

WH_PREFIX = ".wh."
WH_OPAQUE = ".wh..wh..opq"
MAX_LINK_HOPS = 40


@dataclass
class Node:
    path: str
    kind: str  # file | dir | symlink | hardlink | other
    size: int
    mode: int
    uid: int
    layer: int
    link: str = ""
    data: bytes | None = None  # captured content of small metadata files
    private_key: bool = False


@dataclass(frozen=True)
class Waste:
    path: str
    size: int
    layer: int  # the layer that holds the dead copy
    by_layer: int  # the layer that overwrote or deleted it
    how: str  # overwritten | deleted


@dataclass(frozen=True)
class Event:
    layer: int
    action: str  # added | overwritten | deleted


@dataclass
class UnsafeName:
    layer: int
    name: str
    why: str


@dataclass
class MergedView:
    nodes: dict[str, Node] = field(default_factory=dict)
    children: dict[str, set[str]] = field(default_factory=dict)
    history: dict[str, list[Event]] = field(default_factory=dict)
    waste: list[Waste] = field(default_factory=list)
    unsafe: list[UnsafeName] = field(default_factory=list)
    devices: list[UnsafeName] = field(default_factory=list)  # world-writable device nodes
    bad_whiteouts: list[UnsafeName] = field(default_factory=list)  # ignored, not applied

    # ---------------------------------------------------------------- building

    def _link_parent(self, path: str) -> None:
        while path:
            parent = posixpath.dirname(path)
            kids = self.children.setdefault(parent, set())
            if path in kids:
                return
            kids.add(path)
            path = parent

    def _record(self, path: str, layer: int, action: str) -> None:
        self.history.setdefault(path, []).append(Event(layer, action))

    def _drop(self, path: str, by_layer: int, how: str, *, below: int | None) -> None:
        """Remove ``path`` and its subtree, keeping nodes from layer >= ``below``.

        Children before parents, with an explicit stack: a layer decides how deep a
        tree is, so no recursion follows it.
        """
        order: list[str] = []
        stack = [path]
        while stack:
            here = stack.pop()
            order.append(here)
            stack.extend(sorted(self.children.get(here, ()), reverse=True))
        for here in reversed(order):  # every child before its parent
            self._drop_one(here, by_layer, how, below)

    def _drop_one(self, path: str, by_layer: int, how: str, below: int | None) -> None:
        node = self.nodes.get(path)
        if node is not None and (below is None or node.layer < below):
            if node.kind == "file" and node.size:
                self.waste.append(Waste(path, node.size, node.layer, by_layer, how))
            del self.nodes[path]
            self._record(path, by_layer, "deleted" if how == "deleted" else "overwritten")
        if path not in self.nodes and not self.children.get(path):
            self.children.pop(path, None)
            parent = posixpath.dirname(path)
            if path and parent in self.children:
                self.children[parent].discard(path)

    def add(self, node: Node) -> None:
        old = self.nodes.get(node.path)
        if old is not None:
            if old.kind == "dir" and node.kind == "dir":
                old.mode, old.uid, old.layer = node.mode, node.uid, node.layer
                return
            if old.kind == "dir":
                self._drop(node.path, node.layer, "overwritten", below=None)
            else:
                if old.kind == "file" and old.size:
                    self.waste.append(
                        Waste(node.path, old.size, old.layer, node.layer, "overwritten")
                    )
                self._record(node.path, node.layer, "overwritten")
                self.nodes[node.path] = node
                return
        self.nodes[node.path] = node
        self._link_parent(node.path)
        self._record(node.path, node.layer, "added")

    def whiteout(self, path: str, layer: int) -> None:
        self._drop(path, layer, "deleted", below=layer)

    def opaque(self, directory: str, layer: int) -> None:
        for child in list(self.children.get(directory, ())):
            self._drop(child, layer, "deleted", below=layer)

    # ---------------------------------------------------------------- reading

    def files(self) -> Iterator[Node]:
        return (n for n in self.nodes.values() if n.kind == "file")

    def resolve(self, path: str) -> str | None:
        """``path`` with symlinks in every component followed (bounded: loops give None)."""

        def link(rel: str, last: bool) -> str | None:
            node = self.nodes.get(rel)
            return node.link if node is not None and node.kind == "symlink" else None

        return follow_links(path, link)

    def get(self, path: str) -> Node | None:
        """The node at ``path`` after following symlinks and hard links."""
        real = self.resolve(path)
        if real is None:
            return None
        node = self.nodes.get(real)
        seen: set[str] = set()
        while node is not None and node.kind == "hardlink":
            if node.path in seen or len(seen) > MAX_LINK_HOPS:
                return None
            seen.add(node.path)
            node = self.nodes.get(node.link)
        return node


class PathView:
    """Absolute-path questions over a merged view (which keys paths without the ``/``),
    with the content of the files a reader captured (keyed by absolute path)."""

    def __init__(self, view: MergedView, data: Mapping[str, bytes]) -> None:
        self.view = view
        self.data = data

    def resolve(self, path: str) -> str | None:
        """``path`` with every symlink followed; None when it does not exist (or loops)."""
        real = self.view.resolve(path)
        if real is None or (real and real not in self.view.nodes):
            return None
        return "/" + real

    def entry(self, path: str) -> Node | None:
        real = self.view.resolve(path)
        if real is None:
            return None
        if real == "":
            return Node("", "dir", 0, 0o755, 0, 0)
        return self.view.get(real)

    def is_file(self, path: str) -> bool:
        e = self.entry(path)
        return e is not None and e.kind == "file"

    def is_dir(self, path: str) -> bool:
        e = self.entry(path)
        return e is not None and e.kind == "dir"

    def read(self, path: str) -> bytes | None:
        e = self.entry(path)
        return self.data.get("/" + e.path) if e is not None else None

    def text(self, path: str) -> str | None:
        raw = self.read(path)
        return raw.decode("utf-8", "replace") if raw is not None else None

    def listdir(self, path: str) -> list[str]:
        real = self.view.resolve(path)
        if real is None:
            return []
        return sorted(posixpath.basename(c) for c in self.view.children.get(real, ()))


def normalize(name: str) -> tuple[str | None, str]:
    """A member name as a clean relative path, or (None, why) when it is hostile."""
    raw = name.replace("\\", "/") if "\\" in name and "/" not in name else name
    why = ""
    if raw.startswith("/"):
        why = "absolute path"
    parts: list[str] = []
    for p in raw.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not parts:
                return None, "climbs out of the root with '..'"
            parts.pop()
            why = why or "contains '..'"
            continue
        parts.append(p)
    return "/".join(parts), why


# Given a path (relative to the root, "/"-joined) and whether it is the last component:
# the symlink target there, None when it is no link; raises LookupError when it is missing.
ReadLink = Callable[[str, bool], str | None]


def follow_links(path: str, readlink: ReadLink) -> str | None:
    """``path`` with every symlink followed with the root as ``/`` (an absolute target never
    leads out): the one walk for the merged view and for unpacked trees. None on a loop or
    when ``readlink`` raises LookupError (a missing component)."""
    parts = deque(p for p in path.split("/") if p)  # popped from the left: no quadratic walk
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.popleft()
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        try:
            target = readlink("/".join([*done, part]), not parts)
        except LookupError:
            return None
        if target is not None:
            hops += 1
            if hops > MAX_LINK_HOPS:
                return None
            if target.startswith("/"):
                done = []
            parts.extendleft(reversed([p for p in target.split("/") if p]))
            continue
        done.append(part)
    return "/".join(done)


def display(path: str) -> str:
    """A path safe to print and put in JSON: undecodable bytes as ``\\xNN``."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def malformed_whiteout(target: str) -> str:
    """Why a whiteout of ``target`` (the name after ``.wh.``) is malformed, or ""."""
    if target in ("", ".", ".."):
        return "a whiteout of no name, '.' or '..' (it would delete the directory or its parent)"
    if target.startswith(WH_PREFIX):
        return "a '.wh..wh.' name other than the opaque marker .wh..wh..opq (aufs metadata)"
    return ""


# Called for each regular file as it streams by: may read its head or capture it whole.
FileHook = Callable[[Node, Peek], None]
LayerHook = Callable[[int, Layer, LayerStats], None]


class LayerCollector:
    """Feeds one layer's tar members after another into a merged view."""

    def __init__(self, view: MergedView, on_file: FileHook | None = None) -> None:
        self.view = view
        self.on_file = on_file
        self.layer = 0

    def visit(self, m: Member, peek: Peek) -> None:
        path, why = normalize(m.name)
        if path is None or why:
            self.view.unsafe.append(UnsafeName(self.layer, display(m.name), why))
            if path is None:
                return
        if not path:
            return
        base, parent = posixpath.basename(path), posixpath.dirname(path)
        if base == WH_OPAQUE:
            self.view.opaque(parent, self.layer)
            return
        if base.startswith(WH_PREFIX):
            hidden = base[len(WH_PREFIX) :]
            why = malformed_whiteout(hidden)
            if why:
                self.view.bad_whiteouts.append(UnsafeName(self.layer, display(m.name), why))
            else:
                self.view.whiteout(posixpath.join(parent, hidden), self.layer)
            return
        if m.device and m.mode & 0o002:
            why = f"{m.device} device, mode {m.mode & 0o7777:04o}: any user can open it"
            self.view.devices.append(UnsafeName(self.layer, display(m.name), why))
        kind, link = m.kind, m.linkname
        if kind == "hardlink":
            target, twhy = normalize(link)
            if target is None or twhy:
                self.view.unsafe.append(
                    UnsafeName(
                        self.layer,
                        display(f"{m.name} -> {link}"),
                        twhy or "hard link leaves the root",
                    )
                )
            if not target:
                kind, link = "other", ""
            else:
                link = target
        node = Node(path, kind, m.size, m.mode, m.uid, self.layer, link)
        if kind == "file" and self.on_file is not None:
            self.on_file(node, peek)
        self.view.add(node)


def flatten(
    image: Image,
    *,
    limits: Limits = Limits(),  # noqa: B008 - frozen
    on_file: FileHook | None = None,
    on_layer: LayerHook | None = None,
    budget: Budget | None = None,
) -> MergedView:
    """Stream every layer of ``image`` once into one merged view.

    Every layer blob is read to its end, so its digest is checked; a corrupt,
    truncated or oversized layer is a one-line IntegrityError naming it.
    """
    layers = image.layers()
    budget = budget or Budget(limits)
    view = MergedView()
    collector = LayerCollector(view, on_file)
    for i, layer in enumerate(layers):
        d = layer.descriptor
        what = f"layer {i + 1}/{len(layers)} ({d.digest[:19]})"
        claimed = max(d.size, layer.uncompressed_size)
        if claimed > limits.max_uncompressed:
            raise LimitExceeded(
                f"{what}: claims {claimed} bytes, over the {limits.max_uncompressed} byte limit; "
                "the manifest is corrupt or hostile"
            )
        collector.layer = i
        stats = LayerStats()
        with image.open_layer(layer) as blob:
            walk_layer(blob, budget, what, collector.visit, stats)
        if on_layer is not None:
            on_layer(i, layer, stats)
    return view
