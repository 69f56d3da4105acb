"""An image's layers unpacked into one directory, as a container runtime lays them out.

For running the image's own files without a daemon (the build's proof). Two ways:

- ``unpack_image``: every layer streamed once into one directory;
- ``unpack_layer`` + ``merge_trees``: each layer unpacked once into a tree of its own
  (kept, whiteout markers and all), and a root made of hard links to those trees in
  layer order, in about a second: the build keeps the tree each layer was made from,
  so a rebuilt app layer does not mean unpacking torch again.

Either way whiteouts and opaque directories remove what lower layers put there; every
name is resolved with the directory as ``/`` (an absolute symlink never leads to the
host) and anything that would leave it is skipped. Device nodes and FIFOs are not
created; owners are not kept (the files belong to whoever unpacks).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import subprocess
from pathlib import Path

from torchslim.errors import IntegrityError
from torchslim.oci.flatten import (
    WH_OPAQUE,
    WH_PREFIX,
    follow_links,
    malformed_whiteout,
    normalize,
)
from torchslim.oci.image import Image
from torchslim.oci.layer import Layer
from torchslim.oci.limits import Budget, Limits
from torchslim.oci.tarstream import LayerStats, Member, MemberContent, Peek, walk_layer


def resolve_in_root(root: Path, path: str, *, last: bool = True) -> Path | None:
    """The host path of image path ``path`` with symlinks followed inside ``root``.

    None when a component is missing or links loop. ``last=False`` keeps a final symlink
    as it is (for replacing or removing the link itself).
    """

    def link(rel: str, is_last: bool) -> str | None:
        host = root / rel
        try:
            st = host.lstat()
        except OSError:
            raise LookupError(rel) from None
        if stat.S_ISLNK(st.st_mode) and (last or not is_last):
            return os.readlink(host)
        return None

    rel = follow_links(path, link)
    return None if rel is None else root.joinpath(*[p for p in rel.split("/") if p])


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class _Placer:
    """Places entries into a root: the one confinement for tar members and tree entries.

    ``raw``: a layer's own tree, whiteout markers kept as empty files (applied at merge).
    """

    def __init__(self, root: Path, *, raw: bool = False) -> None:
        self.root = root
        self.raw = raw
        self.dir_modes: dict[Path, int] = {}
        self._dirs: dict[str, Path] = {}  # image dir → its place (``parent``)

    def parent(self, rel: str) -> Path | None:
        """The host directory for ``rel``'s parent (made when missing), inside the root."""
        parts = [p for p in posixpath.dirname(rel).split("/") if p]
        # Start from the longest ancestor placed before (a layer is 10,000 files in a few
        # hundred directories); ``forget`` drops them all when anything is replaced.
        known = len(parts)
        while known and "/".join(parts[:known]) not in self._dirs:
            known -= 1
        host = self._dirs["/".join(parts[:known])] if known else self.root
        for i in range(known, len(parts)):
            part = parts[i]
            found = resolve_in_root(self.root, posixpath.relpath(str(host / part), self.root))
            nxt = found if found is not None else host / part
            if found is None:
                if nxt.is_symlink():
                    return None  # a dangling link: nothing under it can be placed
                nxt.mkdir(mode=0o755)
            elif not found.is_dir():
                return None
            host = nxt
            self._dirs["/".join(parts[: i + 1])] = host
        return host

    def forget(self) -> None:
        """Something in the root was replaced or removed: no directory place is known."""
        self._dirs.clear()

    def target(self, name: str) -> Path | None:
        """Where ``name`` goes, after applying it when it is a whiteout (then None)."""
        rel, why = normalize(name)
        if rel is None or why or not rel:
            return None  # a name that climbs out, or the root itself
        base = posixpath.basename(rel)
        parent = self.parent(rel)
        if parent is None:
            return None
        if not self.raw and base == WH_OPAQUE:
            self.forget()
            for child in list(parent.iterdir()):
                _remove(child)
            return None
        if not self.raw and base.startswith(WH_PREFIX):
            hidden = base[len(WH_PREFIX) :]
            if not malformed_whiteout(hidden):  # ".wh.." would remove the parent itself
                self.forget()
                _remove(parent / hidden)
            return None
        return parent / base

    def directory(self, target: Path, mode: int) -> None:
        """A directory at ``target``; a symlink there to a directory inside the root is kept
        (the entries go through it, as merged-/usr's ``/bin -> usr/bin`` expects)."""
        if target.is_symlink():
            rel = posixpath.relpath(str(target), self.root)
            real = resolve_in_root(self.root, rel)
            if real is not None and real.is_dir():
                return
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            self.forget()
            _remove(target)
        target.mkdir(exist_ok=True)
        self.dir_modes[target] = mode & 0o7777

    def visit(self, m: Member, peek: Peek) -> None:
        target = self.target(m.name)
        if target is None:
            return
        if m.kind == "dir":
            self.directory(target, m.mode)
            return
        if os.path.lexists(target):
            self.forget()
            _remove(target)
        if m.kind == "file":
            with target.open("xb") as out:  # streamed: a big member is never held whole
                if isinstance(peek, MemberContent):
                    peek.copy_to(out)
                else:
                    out.write(peek(m.size))
            target.chmod(m.mode & 0o777)
        elif m.kind == "symlink":
            target.symlink_to(m.linkname)
        elif m.kind == "hardlink":
            source = resolve_in_root(self.root, m.linkname)
            if source is not None and source.is_file():
                os.link(source, target)

    def merge(self, tree: Path) -> None:
        """Lay ``tree`` (a layer's own tree) over the root: files as hard links to it.

        Each directory's place in the root is resolved once, not once per entry: a layer of
        torch is some 10,000 files.
        """
        # A directory's place is its parent's place plus its name, unless that name is a
        # symlink in the root (merged /usr's /lib): only then is it resolved from the top.
        placed: dict[str, Path] = {"": self.root}
        for dirpath, dirnames, filenames in os.walk(tree):
            base = Path(dirpath)
            rel_dir = base.relative_to(tree).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir
            parent = placed.get(rel_dir) or self.parent(f"{rel_dir}/x")
            if parent is None:
                dirnames[:] = []
                continue
            names = sorted(filenames)
            opaque = WH_OPAQUE in names
            if opaque:
                self.forget()
                for child in list(parent.iterdir()):
                    _remove(child)
            for name in sorted(dirnames):
                src = base / name
                if src.is_symlink():
                    self._link(parent / name, os.readlink(src))
                    continue
                self.directory(parent / name, src.lstat().st_mode)
                if not (parent / name).is_symlink():
                    placed[f"{rel_dir}/{name}" if rel_dir else name] = parent / name
            for name in names:
                if name == WH_OPAQUE:
                    continue
                if name.startswith(WH_PREFIX):
                    hidden = name[len(WH_PREFIX) :]
                    if not malformed_whiteout(hidden) and "/" not in hidden:
                        self.forget()
                        _remove(parent / hidden)
                        placed.pop(f"{rel_dir}/{hidden}" if rel_dir else hidden, None)
                    continue
                src = base / name
                if src.is_symlink():
                    self._link(parent / name, os.readlink(src))
                    continue
                try:
                    os.link(src, parent / name)
                except FileExistsError:
                    self.forget()
                    _remove(parent / name)
                    os.link(src, parent / name)
            dirnames[:] = sorted(d for d in dirnames if not (base / d).is_symlink())

    def _link(self, target: Path, to: str) -> None:
        try:
            target.symlink_to(to)
        except FileExistsError:
            self.forget()
            _remove(target)
            target.symlink_to(to)

    def finish(self) -> None:
        """Directory modes last (a read-only directory must not stop its own filling)."""
        real_root = self.root.resolve()
        for directory, mode in sorted(self.dir_modes.items(), key=lambda x: -len(x[0].parts)):
            # A later layer may have replaced the directory (or a parent) by a symlink:
            # chmod would follow it out of the root. Only a real directory, reached directly.
            if directory.resolve() != real_root / directory.relative_to(self.root):
                continue
            if not directory.is_dir() or directory.is_symlink():
                continue
            try:
                directory.chmod(mode | 0o700)  # the unpacker must still be able to clean up
            except OSError as exc:
                raise IntegrityError(f"cannot set the mode of {directory}: {exc}") from exc


def _walk(image: Image, layer: Layer, index: int, placer: _Placer, budget: Budget) -> None:
    what = f"layer {index + 1}/{len(image.layers())} ({layer.digest[:19]})"
    with image.open_layer(layer) as blob:
        walk_layer(blob, budget, what, placer.visit, LayerStats())


def unpack_image(image: Image, dest: Path, *, limits: Limits = Limits()) -> Path:  # noqa: B008
    """Unpack every layer of ``image`` into ``dest`` (created; must not exist)."""
    dest.mkdir(parents=True)
    placer = _Placer(dest)
    budget = Budget(limits)
    for i, layer in enumerate(image.layers()):
        _walk(image, layer, i, placer, budget)
    placer.finish()
    return dest


def unpack_layer(
    image: Image,
    layer: Layer,
    dest: Path,
    *,
    limits: Limits = Limits(),  # noqa: B008
) -> Path:
    """One layer of ``image`` as its own tree at ``dest``, whiteout markers kept."""
    dest.mkdir(parents=True)
    placer = _Placer(dest, raw=True)
    _walk(image, layer, image.layers().index(layer), placer, Budget(limits))
    placer.finish()
    return dest


def merge_trees(trees: list[Path], dest: Path, *, onto: Path | None = None) -> Path:
    """Layer trees (lowest first) as one root at ``dest`` (created), made of hard links.

    ``onto``: a root merged earlier from the layers below ``trees``, copied first as hard
    links by ``cp -al`` (C, not a Python loop: a torch image is 13,000 files).
    """
    if onto is None:
        dest.mkdir(parents=True)
    else:
        subprocess.run(["cp", "-a", "-l", str(onto), str(dest)], check=True, capture_output=True)
    return lay_trees(trees, dest)


def lay_trees(trees: list[Path], root: Path) -> Path:
    """Layer trees (lowest first) laid over the existing ``root``, as hard links."""
    placer = _Placer(root)
    for tree in trees:
        placer.merge(tree)
    placer.finish()
    return root
