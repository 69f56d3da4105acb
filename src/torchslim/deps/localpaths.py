"""Local path requirements (``./pkg``, ``-e ./lib``, ``file:`` URLs, a folder or an sdist
on disk) become wheels built in the sandbox, before uv reads anything.

uv would otherwise build them on the host to read their metadata. Each such line is
replaced by ``name[extras] @ file:///…/name-1.0-py3-none-any.whl; marker`` in a copy of
its requirements file; the copies sit in a view of the project (every other entry a link
to the project's own), so ``-r``, ``-c`` and relative find-links resolve as before and
line numbers stay as they were. A wheel named by path is already a wheel: kept as it is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from torchslim.deps.pipconf import IndexSettings
from torchslim.deps.requirements import _decode, local_path, read_requirements
from torchslim.deps.sourcebuild import build_in_sandbox, unpack_sdist

_NAMED = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*@")
_EXTRAS = re.compile(r"(\[[^\]]*\])\s*$")


def build_local_paths(
    requirements: Sequence[Path], extra: Sequence[str], settings: IndexSettings, tmp: Path
) -> tuple[list[Path], list[str]]:
    """The requirement files and extra lines uv is to read: the given ones, or copies in
    ``tmp`` where a local path line was replaced by the wheel the sandbox built of it."""
    built: dict[Path, Path] = {}
    lines: dict[Path, dict[int, str]] = {}
    for req in requirements:
        for line in read_requirements(req).requirements:
            file, _, number = line.origin.rpartition(":")
            new = _replacement(line.text, Path(file).parent, settings, tmp, built)
            if new is not None:
                lines.setdefault(Path(file), {})[int(number)] = new
    rest = [_replacement(x, Path.cwd(), settings, tmp, built) or x for x in extra]
    return _overlay(requirements, lines, tmp / "tree"), rest


def _replacement(
    text: str, base: Path, settings: IndexSettings, tmp: Path, built: dict[Path, Path]
) -> str | None:
    """The line naming the built wheel instead of the local project ``text`` names."""
    where = local_path(text)
    if where is None:
        return None
    path = Path(os.path.normpath(base / os.path.expanduser(where)))
    if path.name.endswith(".whl"):
        return None
    if path not in built:
        built[path] = _build(path, where, settings, tmp / f"src{len(built)}")
    wheel = built[path]
    name = wheel.name.split("-", 1)[0]
    target, semi, marker = text.partition(";")
    named = _NAMED.match(target)
    extras = named[2] if named and named[2] else ""
    if not named and (m := _EXTRAS.search(target)):
        extras = m[1]
    return f"{name}{extras} @ {wheel.as_uri()}" + (f" ;{marker}" if semi else "")


def _build(path: Path, shown: str, settings: IndexSettings, work: Path) -> Path:
    """A folder is built as it is; an archive (an sdist on disk) unpacked first."""
    if path.is_dir():
        return build_in_sandbox(path, shown, settings)
    work.mkdir(parents=True)
    return build_in_sandbox(unpack_sdist(path, work), shown, settings)


def _overlay(
    requirements: Sequence[Path], lines: Mapping[Path, Mapping[int, str]], tree: Path
) -> list[Path]:
    """``requirements`` as uv is to read them: ``lines`` replaced in copies under ``tree``."""
    files = [p.resolve() for p in requirements]
    if not lines:
        return files
    read = {f for r in requirements for f in read_requirements(r).files}
    base = Path(os.path.commonpath([f.parent for f in (*read, *files)]))
    for path, new in lines.items():
        place_in_view(base, tree, path, _rewrite(_decode(path.read_bytes()), new))
    return [tree / f.relative_to(base) for f in files]


def place_in_view(base: Path, tree: Path, path: Path, text: str) -> None:
    """``text`` at ``path``'s place in ``tree``: real folders down to it, every other entry
    of those folders a link to the project's own."""
    src, dst = base, tree
    for part in (*path.relative_to(base).parts[:-1], None):
        if dst.is_symlink():
            dst.unlink()
        dst.mkdir(parents=True, exist_ok=True)
        for entry in src.iterdir():
            if not os.path.lexists(dst / entry.name):
                (dst / entry.name).symlink_to(entry)
        if part is not None:
            src, dst = src / part, dst / part
    target = dst / path.name
    target.unlink(missing_ok=True)
    target.write_text(text, encoding="utf-8")


def _rewrite(text: str, lines: Mapping[int, str]) -> str:
    """``text`` with the logical line starting at each key replaced (its continuation
    lines emptied): line numbers stay as they were."""
    physical = text.splitlines(keepends=True)
    for number, new in lines.items():
        last = number - 1
        while last + 1 < len(physical) and physical[last].rstrip("\r\n").endswith("\\"):
            last += 1
        for i in range(number - 1, min(last, len(physical) - 1) + 1):
            physical[i] = "\n"
        if number - 1 < len(physical):
            physical[number - 1] = new + "\n"
    return "".join(physical)


__all__ = ["build_local_paths"]
