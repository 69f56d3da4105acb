"""What every sink shares: the refuse-or-replace rule and writing through a temporary sibling."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from torchslim.cache import atomic_output, replace_path
from torchslim.errors import OutputExistsError


def refuse_existing(dest: Path, force: bool) -> None:
    if (dest.exists() or dest.is_symlink()) and not force:
        raise OutputExistsError(f"{dest} exists; pass --force to replace it")


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


@contextmanager
def atomic_dest(dest: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary sibling of ``dest``; on success it replaces ``dest``, on error it goes.

    An interrupted write therefore leaves ``dest`` as it was (absent or old).
    """
    refuse_existing(dest, force)
    tmp = atomic_output(dest)
    _remove(tmp)
    try:
        yield tmp
        if (
            dest.is_symlink()
            or (dest.exists() and not dest.is_dir())
            or (dest.is_dir() and not tmp.is_dir())
        ):
            _remove(dest)
        replace_path(tmp, dest)
    finally:
        _remove(tmp)
