"""Paths that cannot leave their root: project paths from a config, and staged writes.

``confine`` checks a path a config names (``app``, ``requirements``, ``model`` …): it
must be relative, stay inside the project when read as written (``a/../..``) and when
every symlink is followed. ``follow`` checks a path a project file names (``-r`` in a
requirements file, ``pip install -r`` in a Dockerfile): it must stay inside the build
context (the project folder, or the git work tree holding it) the same two ways, and
is refused before it is opened, so nothing outside is ever read or quoted.
``ConfinedRoot`` is the one writer for trees the build stages from user-controlled
names: it refuses ``..``, absolute names and symlinks on the way, so a write lands
under its root or not at all.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from pathlib import Path, PurePosixPath
from typing import Protocol

from torchslim.errors import BuildError, ConfigError
from torchslim.redact import quote


class ProjectFiles(Protocol):
    """What ``confine`` needs of a config: where it was read from (``ProjectConfig``)."""

    @property
    def root(self) -> Path: ...

    @property
    def file(self) -> Path: ...


def _lexical(rel: str) -> str | None:
    """``rel`` normalized as written (``a/./b`` → ``a/b``); None when it is absolute or climbs."""
    if not rel or "\0" in rel or rel.startswith(("/", "~")):
        return None
    norm = posixpath.normpath(rel)
    if norm == ".." or norm.startswith("../"):
        return None
    return norm


def escape_problem(root: Path, key: str, rel: str) -> str | None:
    """Why ``rel`` (config key ``key``) is not a path inside the project at ``root``, as
    one ``key `…`: …`` phrase; None when it is inside (or absent, for the caller to say).

    Refused: an absolute path, ``..`` that climbs out as written, a symlink that leads out
    once followed, and a path that cannot even be looked up (too long, a loop).
    """
    where = f"key `{key}`"
    root = root.resolve()
    if _lexical(rel) is None:
        what = "is empty" if not rel else "is an absolute path or climbs out of the project"
        return f"{where}: {quote(rel)} {what}; write a path relative to the project folder {root}"
    try:
        real = (root / rel).resolve()
        real.stat()
    except FileNotFoundError:
        pass  # the caller says what is missing
    except (OSError, RuntimeError) as exc:  # too long, a symlink loop, no permission
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return f"{where}: {quote(rel)} cannot be read ({why}); fix the path"
    if not real.is_relative_to(root):
        return (
            f"{where}: {quote(rel)} leads outside the project (to {real}); keep what the "
            f"image needs inside {root}, or copy it there"
        )
    return None


def confine(cfg: ProjectFiles, key: str, rel: str) -> Path:
    """The real path of ``rel`` (config key ``key``), which must lie inside the project;
    a ConfigError naming the file and the key otherwise (see ``escape_problem``)."""
    why = escape_problem(cfg.root, key, rel)
    if why is not None:
        raise ConfigError(f"{cfg.file}: {why}")
    return (cfg.root.resolve() / rel).resolve()


def exists(path: Path, what: str) -> bool:
    """Whether ``path`` exists; a ConfigError when it cannot even be looked up (too long,
    a symlink loop, no permission), naming ``what`` the path is."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise ConfigError(f"{what} {quote(str(path))}: {exc.strerror}; fix the path") from None
    except ValueError:  # a NUL byte
        raise ConfigError(f"{what} {quote(str(path))}: not a valid path") from None
    return True


def build_context(root: Path) -> Path:
    """What a project's files may name: the git work tree that holds ``root`` (a monorepo's
    ``-r ../shared/base.txt``), else ``root`` itself; real paths, symlinks followed."""
    root = root.resolve()
    for folder in (root, *root.parents):
        # .git is a folder, or a file in a linked work tree or a submodule
        if os.path.lexists(folder / ".git"):
            return folder
    return root


def outside(context: Path, base: Path, value: str) -> str | None:
    """Why the path ``value`` (absolute, or relative to the folder ``base``) is not inside
    ``context``, as a phrase to follow the quoted path; None when it is inside.

    Checked as written (``../../x``, ``/etc/shadow``) and with every symlink followed,
    without opening anything: a refused path is never read.
    """
    context = context.resolve()
    if not value or "\0" in value:
        return "is not a valid path"
    written = Path(os.path.normpath(os.path.join(base, os.path.expanduser(value))))
    if not written.is_relative_to(context):
        return f"is outside the build context {context}"
    try:
        real = written.resolve()
    except (OSError, RuntimeError) as exc:  # too long, a symlink loop
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "a symlink loop"
        return f"cannot be looked up ({why})"
    if not real.is_relative_to(context):
        return f"is a symlink that leads outside the build context {context}"
    return None


def follow(
    context: Path, base: Path, value: str, where: str, what: str = "path", shown: str = ""
) -> Path:
    """The real path of ``value`` that the project file line ``where`` names, relative to
    ``base``; a ConfigError naming ``where`` and the path when it leaves ``context``.

    Call it before opening: the message never holds the file's text. ``shown`` is the
    text as the user wrote it when ``value`` is an expansion of it (``${VAR}``), so no
    expanded value is ever printed.
    """
    why = outside(context, base, value)
    if why is not None:
        raise ConfigError(
            f"{where}: {what} {quote(shown or value)} {why}; keep the files a build reads inside it"
        )
    return Path(os.path.normpath(os.path.join(base, os.path.expanduser(value)))).resolve()


def image_path(rel: str) -> str:
    """``rel`` as a clean relative path for the image (``./model//a.pt`` → ``model/a.pt``)."""
    norm = _lexical(rel)
    if norm is None:
        raise BuildError(f"{quote(rel)} is not a relative path inside the project")
    return norm


class ConfinedRoot:
    """A directory that writes cannot leave: every path is checked part by part."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _parts(self, rel: str | PurePosixPath) -> list[str]:
        text = str(rel)
        parts = [p for p in PurePosixPath(text).parts if p not in ("", ".")]
        if not parts or "\0" in text or text.startswith("/") or ".." in parts:
            raise BuildError(
                f"refusing to write {quote(text)} under {self.root}: "
                "only relative paths without '..' stay inside it"
            )
        return parts

    def _dir(self, parts: list[str], create: bool) -> Path:
        """The directory ``parts`` under the root, made when ``create``; no symlink followed."""
        here = self.root
        for part in parts:
            here = here / part
            if here.is_symlink():
                raise BuildError(
                    f"refusing to write through the symlink {here}: it could lead outside "
                    f"{self.root}"
                )
            if not here.exists() and create:
                here.mkdir(mode=0o755)
            elif not here.is_dir():
                raise BuildError(f"cannot write under {here}: it is not a directory")
        return here

    def path(self, rel: str | PurePosixPath) -> Path:
        """Where ``rel`` is under the root; its parents must be real directories."""
        parts = self._parts(rel)
        target = self._dir(parts[:-1], create=False) / parts[-1]
        if target.is_symlink():
            raise BuildError(f"refusing to write through the symlink {target}")
        return target

    def mkdir(self, rel: str | PurePosixPath) -> Path:
        """``rel`` and its parents as directories (mode 0755)."""
        return self._dir(self._parts(rel), create=True)

    def _open(self, rel: str | PurePosixPath, mode: int) -> tuple[Path, int]:
        parts = self._parts(rel)
        target = self._dir(parts[:-1], create=True) / parts[-1]
        if target.is_symlink():
            raise BuildError(f"refusing to write through the symlink {target}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(target, flags, mode)
        except OSError as exc:
            raise BuildError(f"cannot write {target}: {exc.strerror}") from None
        return target, fd

    def write_bytes(self, rel: str | PurePosixPath, data: bytes, mode: int = 0o644) -> Path:
        target, fd = self._open(rel, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(target, mode)
        return target

    def copy_file(self, src: Path, rel: str | PurePosixPath, mode: int = 0o644) -> Path:
        """Copy the regular file ``src`` (its bytes, not its mode) to ``rel``."""
        target, fd = self._open(rel, mode)
        with os.fdopen(fd, "wb") as out, src.open("rb") as f:
            shutil.copyfileobj(f, out, 1 << 20)
        os.chmod(target, mode)
        return target


__all__ = [
    "ConfinedRoot",
    "ProjectFiles",
    "build_context",
    "confine",
    "escape_problem",
    "exists",
    "follow",
    "image_path",
    "outside",
]
