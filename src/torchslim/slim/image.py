"""An image filesystem as the dynamic loader sees it: the union of staging trees.

``trees`` are (host directory, image prefix) pairs, e.g. ``(rootfs, "/")`` and
``(site_stage, "/usr/local/lib/python3.11/site-packages")``; a later tree's file shadows
an earlier one's. Symlinks are names, followed inside the image (absolute targets are
image paths). ``virtual`` paths exist without contents (a removed file, in the view of
the tree before slimming, or an empty stub of a base library).
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
from collections.abc import Iterable, Sequence
from pathlib import Path

MAX_LINKS = 16


class ImageView:
    """Image path -> host path (None: exists, contents unknown), with symlinks resolved."""

    def __init__(self, trees: Sequence[tuple[Path, str]], virtual: Iterable[str] = ()) -> None:
        self.paths: dict[str, Path | None] = {}
        for path in virtual:
            self.paths[posixpath.normpath("/" + path.lstrip("/"))] = None
        for host_root, prefix in trees:
            prefix = "/" + prefix.strip("/")
            for dirpath, dirnames, filenames in os.walk(host_root):
                rel = Path(dirpath).relative_to(host_root).as_posix()
                image_dir = prefix if rel == "." else posixpath.join(prefix, rel)
                for name in filenames + [d for d in dirnames if Path(dirpath, d).is_symlink()]:
                    self.paths[posixpath.join(image_dir, name)] = Path(dirpath, name)

    def host(self, image_path: str) -> Path | None:
        """The host file behind a resolved image path (None for virtual files)."""
        return self.paths.get(image_path)

    def resolve(self, image_path: str, depth: int = 0) -> str | None:
        """The image path of the file ``image_path`` names after symlinks; None if none."""
        image_path = posixpath.normpath(image_path)
        if image_path not in self.paths:
            return self._via_dir_link(image_path, depth)
        host = self.paths[image_path]
        if host is None or not host.is_symlink():
            return image_path
        if depth > MAX_LINKS:
            return None
        return self.resolve(self._target(image_path, host), depth + 1)

    def exists(self, image_path: str) -> bool:
        """True when ``image_path`` names a file in the image."""
        return self.resolve(image_path) is not None

    def read_bytes(self, image_path: str) -> bytes | None:
        """Contents of the file ``image_path`` names; None when absent or virtual."""
        resolved = self.resolve(image_path)
        host = self.paths.get(resolved) if resolved else None
        if host is None:
            return None
        try:
            return host.read_bytes()
        except OSError:
            return None

    def glob(self, pattern: str) -> list[str]:
        """Image paths matching an absolute glob (``*`` does not cross ``/``)."""
        depth = pattern.count("/")
        return sorted(
            p
            for p in self.paths
            if p.count("/") == depth and fnmatch.fnmatchcase(p, pattern) and self.exists(p)
        )

    @staticmethod
    def _target(image_path: str, host: Path) -> str:
        target = os.readlink(host)
        if target.startswith("/"):
            return target
        return posixpath.join(posixpath.dirname(image_path), target)

    def _via_dir_link(self, image_path: str, depth: int) -> str | None:
        """Follow a symlinked parent directory (``/lib`` -> ``usr/lib`` in merged-/usr)."""
        parts = image_path.strip("/").split("/")
        for i in range(len(parts) - 1, 0, -1):
            parent = "/" + "/".join(parts[:i])
            host = self.paths.get(parent)
            if host is not None and host.is_symlink() and depth <= MAX_LINKS:
                target = self._target(parent, host)
                return self.resolve(posixpath.join(target, *parts[i:]), depth + 1)
        return None
