"""Paths inside an image's root directory, resolved as the image would see them
(``oci.unpack.resolve_in_root``).

Symlinks are followed with the root as ``/`` (an absolute link target never escapes
to the host), so ``cmd``'s executable can be checked on the image's PATH without
running anything.
"""

from __future__ import annotations

import posixpath
import stat
from pathlib import Path

from torchslim.oci.unpack import resolve_in_root


def _executable(host: Path) -> bool:
    try:
        st = host.stat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def which_in_root(root: Path, name: str, path_var: str, workdir: str = "/") -> str | None:
    """The image path ``name`` runs as (a PATH lookup for a bare name), or None."""
    if "/" in name:
        image_path = posixpath.normpath(posixpath.join(workdir or "/", name))
        found = resolve_in_root(root, image_path)
        return image_path if found is not None and _executable(found) else None
    for d in path_var.split(":"):
        image_path = posixpath.join(d or workdir or "/", name)
        found = resolve_in_root(root, image_path)
        if found is not None and _executable(found):
            return image_path
    return None


def _shebang(host: Path) -> list[str]:
    """The interpreters a script's ``#!`` line needs (``/usr/bin/env python3`` → both)."""
    try:
        with host.open("rb") as f:
            head = f.read(256)
    except OSError:
        return []
    if not head.startswith(b"#!"):
        return []
    words = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
    if len(words) > 1 and posixpath.basename(words[0]) == "env" and not words[1].startswith("-"):
        return words[:2]
    return words[:1]


def _similar(root: Path, name: str, path_var: str) -> list[str]:
    """Executables on PATH whose names start with ``name`` (python → python3, python3.11)."""
    base = posixpath.basename(name)
    found: set[str] = set()
    for d in path_var.split(":"):
        host = resolve_in_root(root, d or "/")
        if host is None or not host.is_dir():
            continue
        for entry in host.iterdir():
            if entry.name.startswith(base) and entry.name != base and _executable(entry):
                found.add(entry.name)
    return sorted(found, key=lambda n: (len(n), n))[:3]


def cmd_problem(root: Path, argv0: str, path_var: str, workdir: str) -> str | None:
    """One line when ``argv0`` cannot be executed in the image (missing, or its #! is); else None.

    ``cmd[0] 'python' is not on the image's PATH (/usr/local/bin:/usr/bin:/bin); the
    image has python3``.
    """
    image_path = which_in_root(root, argv0, path_var, workdir)
    if image_path is None:
        where = (
            "does not exist in the image"
            if "/" in argv0
            else (f"is not on the image's PATH ({path_var})")
        )
        base = posixpath.basename(argv0)
        on_path = which_in_root(root, base, path_var, workdir) if "/" in argv0 else None
        similar = _similar(root, argv0, path_var)
        hint = f"; the image has {', '.join(similar)}" if similar else ""
        if on_path is not None:  # /opt/venv/bin/uvicorn from a Dockerfile's venv
            hint = f"; the image has it on PATH as {on_path}: use {base!r}"
        return f"cmd[0] {argv0!r} {where}{hint}"
    host = resolve_in_root(root, image_path)
    for interpreter in _shebang(host) if host is not None else []:
        if which_in_root(root, interpreter, path_var, "/") is None:
            return f"cmd[0] {argv0!r} ({image_path}) needs {interpreter} (#!), which is missing"
    return None
