"""An image's layers unpacked into one directory, as a container runtime lays them out.

For running the image's own files without a daemon (the build's proof). Each layer is
streamed once; whiteouts and opaque directories remove what lower layers put there;
every name is resolved with the directory as ``/`` (an absolute symlink never leads to
the host) and anything that would leave it is skipped. Device nodes and FIFOs are not
created; owners are not kept (the files belong to whoever unpacks).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
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


class _Unpacker:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir_modes: dict[Path, int] = {}

    def parent(self, rel: str) -> Path | None:
        """The host directory for ``rel``'s parent (made when missing), inside the root."""
        parent = posixpath.dirname(rel)
        host = self.root
        for part in [p for p in parent.split("/") if p]:
            found = resolve_in_root(self.root, posixpath.relpath(str(host / part), self.root))
            nxt = found if found is not None else host / part
            if found is None:
                if nxt.is_symlink():
                    return None  # a dangling link: nothing under it can be placed
                nxt.mkdir(mode=0o755)
            elif not found.is_dir():
                return None
            host = nxt
        return host

    def visit(self, m: Member, peek: Peek) -> None:
        rel, why = normalize(m.name)
        if rel is None or why or not rel:
            return  # a name that climbs out, or the root itself
        base = posixpath.basename(rel)
        parent = self.parent(rel)
        if parent is None:
            return
        target = parent / base
        if base == WH_OPAQUE:
            for child in list(parent.iterdir()):
                _remove(child)
            return
        if base.startswith(WH_PREFIX):
            hidden = base[len(WH_PREFIX) :]
            if not malformed_whiteout(hidden):  # ".wh.." would remove the parent itself
                _remove(parent / hidden)
            return
        if m.kind == "dir":
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                _remove(target)
            target.mkdir(exist_ok=True)
            self.dir_modes[target] = m.mode & 0o7777
            return
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


def unpack_image(image: Image, dest: Path, *, limits: Limits = Limits()) -> Path:  # noqa: B008
    """Unpack every layer of ``image`` into ``dest`` (created; must not exist)."""
    dest.mkdir(parents=True)
    unpacker = _Unpacker(dest)
    budget = Budget(limits)
    layers = image.layers()
    for i, layer in enumerate(layers):
        what = f"layer {i + 1}/{len(layers)} ({layer.digest[:19]})"
        with image.open_layer(layer) as blob:
            walk_layer(blob, budget, what, unpacker.visit, LayerStats())
    real_root = dest.resolve()
    for directory, mode in sorted(unpacker.dir_modes.items(), key=lambda x: -len(x[0].parts)):
        # A later layer may have replaced the directory (or a parent) by a symlink: chmod
        # would follow it out of the root. Only a real directory, reached without links.
        if directory.resolve() != real_root / directory.relative_to(dest):
            continue
        if not directory.is_dir() or directory.is_symlink():
            continue
        try:
            directory.chmod(mode | 0o700)  # the unpacker must still be able to clean up
        except OSError as exc:
            raise IntegrityError(f"cannot set the mode of {directory}: {exc}") from exc
    return dest
