"""The one atomic write: a temporary sibling that is renamed onto its destination.

An interrupted write leaves the destination as it was (absent or old), never half
written. Used for reports, locks, cache entries, generated files and image outputs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from torchslim.errors import BuildError, OutputExistsError


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def temporary_sibling(dest: Path) -> Path:
    """A path next to ``dest`` (same file system, so the rename is atomic)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest.parent / f".{dest.name}.torchslim-tmp-{os.getpid()}"


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``dest`` to fill (a file or a directory).

    On success it replaces ``dest``; on error it is removed and ``dest`` is untouched.
    """
    tmp = temporary_sibling(dest)
    _remove(tmp)
    try:
        yield tmp
        if (
            dest.is_symlink()
            or (dest.exists() and not dest.is_dir())
            or (dest.is_dir() and not tmp.is_dir())
        ):
            _remove(dest)
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        _remove(tmp)


def refuse_existing(dest: Path, force: bool) -> None:
    """Nothing the user has is replaced without ``--force``."""
    try:
        taken = dest.exists() or dest.is_symlink()
    except OSError as exc:  # a name too long, a symlink loop
        raise BuildError(f"cannot write {dest}: {exc.strerror}; choose another output") from None
    if taken and not force:
        raise OutputExistsError(
            f"{dest}: already exists; pass --force to replace it or choose another output"
        )


@contextmanager
def atomic_output(dest: Path, *, force: bool) -> Iterator[Path]:
    """:func:`atomic_path` for a user-named output: refused when it exists, unless ``force``."""
    refuse_existing(dest, force)
    with atomic_path(dest) as tmp:
        yield tmp


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary sibling; a BuildError if it cannot be."""
    try:
        with atomic_path(path) as tmp:
            if isinstance(data, str):
                tmp.write_text(data)
            else:
                tmp.write_bytes(data)
    except OSError as exc:
        raise BuildError(
            f"cannot write {path}: {exc.strerror or exc}; choose another path"
        ) from None
