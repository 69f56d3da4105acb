"""Requirements from where the project keeps them.

Prod comes from the first of these that the project has (unless ``requirements``
in the config names the source):

1. ``requirements`` in the config: files (pip files, locks, Pipfile, pyproject.toml)
   and inline PEP 508 strings, told apart by :func:`torchslim.project.items.requirement_entry`;
2. PEP 621 ``[project].dependencies`` plus the configured ``extras``; pinned from
   ``uv.lock`` or ``poetry.lock`` when that lock was made from them;
3. Poetry 1.x ``[tool.poetry.dependencies]``, pinned from ``poetry.lock``;
4. ``uv.lock`` (its root package);
5. ``Pipfile.lock`` while it matches ``Pipfile``, else ``Pipfile``;
6. a ``pylock.toml`` torchslim did not write;
7. ``requirements*.txt`` (:mod:`torchslim.project.reqfiles`);
8. a conda ``environment.yml``, when it is the project's only environment
   (:mod:`torchslim.project.conda`: its ``pip:`` section and conda packages with PyPI names).

Dev (never installed) is ``dev-requirements`` from the config, else every dev group,
``[dev-packages]`` and dev requirement file the project has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement

from torchslim.config import CONFIG_FILE
from torchslim.errors import ConfigError
from torchslim.project import conda, pipfile, pyproject, reqfiles
from torchslim.project.items import Kind, ProjectRequirements, RequirementItem, requirement_entry
from torchslim.project.poetrylock import POETRY_LOCK, Edge, PoetryLock
from torchslim.project.pylock import input_locks, read_pylock
from torchslim.project.uvlock import UV_LOCK, UvLock


@dataclass
class _Prod:
    items: list[RequirementItem]
    source: str
    kind: Kind = "requirements"
    files: list[Path] = field(default_factory=list)
    requirement_files: list[Path] = field(default_factory=list)
    uses_extras: bool = False


class _Finder:
    def __init__(
        self, root: Path, extras: Sequence[str], groups: Sequence[str], config_file: str
    ) -> None:
        self.root = root
        self.extras = list(extras)
        self.groups = list(groups)
        self.config_file = config_file
        self.notes: list[str] = []
        self.data = pyproject.read_pyproject(root) or {}
        self.name = pyproject.project_name(self.data)

    # ---- prod, by source ------------------------------------------------

    def pep621(self) -> _Prod | None:
        if not pyproject.declares_dependencies(self.data):
            return None
        declared = pyproject.pep621_prod(self.root, self.data, self.extras, self.groups)
        where = "pyproject.toml [project].dependencies"
        texts = [i.text for i in declared if i.source.endswith("[project].dependencies")]
        files = [self.root / pyproject.PYPROJECT]
        uv_path = self.root / UV_LOCK
        if uv_path.is_file():
            lock = UvLock(uv_path)
            root_pkg = lock.root(self.name)
            if root_pkg is not None and lock.is_fresh(root_pkg, texts):
                self.notes.append(f"took {UV_LOCK}: it was locked from {where}")
                items = lock.prod(root_pkg, self.extras, self.groups)
                return _Prod(items, UV_LOCK, "pinned", [*files, uv_path], uses_extras=True)
            self.notes.append(
                f"{UV_LOCK} does not match {where} (run `uv lock`); resolving {where} instead"
            )
        poetry_path = self.root / POETRY_LOCK
        if poetry_path.is_file() and (pinned := self._poetry_lock(poetry_path, declared)):
            return pinned
        return _Prod(declared, where, files=files, uses_extras=True)

    def _poetry_lock(self, path: Path, declared: list[RequirementItem]) -> _Prod | None:
        lock = PoetryLock(path)
        roots = []
        for item in declared:
            req = Requirement(item.text)
            spec = {"version": str(req.specifier) or "*", "extras": sorted(req.extras)}
            if req.marker is not None:
                spec["markers"] = str(req.marker)
            roots.append(Edge(req.name, spec, None))
        if not lock.has_all([e.name for e in roots]):
            self.notes.append(
                f"{POETRY_LOCK} lacks requirements pyproject.toml declares (run `poetry lock`); "
                "resolving pyproject.toml instead"
            )
            return None
        self.notes.append(f"took {POETRY_LOCK}: it holds every prod requirement of pyproject.toml")
        files = [self.root / pyproject.PYPROJECT, path]
        return _Prod(lock.prod(roots), POETRY_LOCK, "pinned", files, uses_extras=True)

    def poetry(self) -> _Prod | None:
        declared = pyproject.poetry_prod(self.root, self.data)
        if not declared:
            return None
        path = self.root / POETRY_LOCK
        if path.is_file() and (pinned := self._poetry_lock(path, declared)) is not None:
            return pinned
        files = [self.root / pyproject.PYPROJECT]
        return _Prod(declared, "pyproject.toml [tool.poetry.dependencies]", files=files)

    def uv(self) -> _Prod | None:
        path = self.root / UV_LOCK
        if not path.is_file():
            return None
        lock = UvLock(path)
        root_pkg = lock.root(self.name)
        if root_pkg is None or not root_pkg.get("dependencies"):
            return None
        items = lock.prod(root_pkg, self.extras, self.groups)
        return _Prod(items, UV_LOCK, "pinned", [path], uses_extras=True)

    def pipenv(self) -> _Prod | None:
        pf, lock_path = self.root / pipfile.PIPFILE, self.root / pipfile.PIPFILE_LOCK
        data = pipfile.read_pipfile(pf) if pf.is_file() else None
        if lock_path.is_file():
            lock = pipfile.read_pipfile_lock(lock_path)
            if data is None or pipfile.lock_is_fresh(lock, data):
                items = pipfile.lock_items(lock, "default")
                read = [lock_path, *([pf] if data is not None else [])]
                return _Prod(items, pipfile.PIPFILE_LOCK, "pinned", read)
            self.notes.append(
                f"{pipfile.PIPFILE_LOCK} does not match {pipfile.PIPFILE} (run `pipenv lock`); "
                f"resolving {pipfile.PIPFILE} instead"
            )
        if data is None:
            return None
        items = pipfile.pipfile_items(pf, data, "packages")
        return _Prod(items, f"{pipfile.PIPFILE} [packages]", files=[pf])

    def pylock(self) -> _Prod | None:
        locks = input_locks(self.root)
        if not locks:
            return None
        if len(locks) > 1:
            names = ", ".join(p.name for p in locks)
            raise ConfigError(
                f"{self.root}: several input locks ({names}); name the one to use in "
                f'`requirements`, e.g. requirements = ["{locks[0].name}"]'
            )
        return _Prod(read_pylock(locks[0], locks[0].name), locks[0].name, "pinned", [locks[0]])

    def requirement_files(self) -> _Prod | None:
        found = reqfiles.discover(self.root)
        for path in found.unused:
            rel = path.relative_to(self.root).as_posix()
            self.notes.append(f"{rel}: not used; name it in `requirements` to install it")
        if found.prod is None:
            return None
        items, parsed = reqfiles.file_items(self.root, found.prod)
        self.notes += parsed.notes
        rel = found.prod.relative_to(self.root).as_posix()
        return _Prod(items, rel, files=list(parsed.files), requirement_files=[found.prod])

    def conda(self, path: Path | None = None) -> _Prod | None:
        path = path or conda.find_environment(self.root)
        if path is None:
            return None
        env = conda.read_environment(self.root, path)
        self.notes += env.notes
        rel = path.relative_to(self.root).as_posix()
        return _Prod(env.items, rel, files=env.files)

    # ---- prod, from the config -------------------------------------------

    def configured(self, entries: Sequence[str]) -> _Prod:
        parts: list[_Prod] = []
        for entry in entries:
            try:
                kind = requirement_entry(entry, self.root)
            except ValueError as exc:
                raise ConfigError(f"{self.config_file}: key `requirements`: {exc}") from None
            if kind == "inline":
                self.notes.append(f"requirements: {entry!r} is an inline requirement")
                item = RequirementItem(entry, f"{self.config_file} requirements")
                parts.append(_Prod([item], f"{self.config_file} requirements"))
            else:
                self.notes.append(f"requirements: {entry!r} is a file")
                parts.append(self._configured_file(entry))
        kinds = {p.kind for p in parts}
        if len(kinds) > 1:
            locks = ", ".join(p.source for p in parts if p.kind == "pinned")
            raise ConfigError(
                f"{self.config_file}: key `requirements`: the lock {locks} cannot be combined "
                "with other requirements; list the lock alone, or add them to the project and "
                "lock again"
            )
        return _Prod(
            [i for p in parts for i in p.items],
            ", ".join(dict.fromkeys(p.source for p in parts)),
            kinds.pop() if kinds else "requirements",
            [f for p in parts for f in p.files],
            [f for p in parts for f in p.requirement_files],
            any(p.uses_extras for p in parts),
        )

    def _configured_file(self, entry: str) -> _Prod:
        path = self.root / entry
        if not path.is_file():
            raise ConfigError(
                f"{self.config_file}: key `requirements`: file {entry!r} does not exist"
            )
        name = path.name
        readers: Mapping[str, Callable[[], _Prod | None]] = {
            UV_LOCK: self.uv,
            POETRY_LOCK: lambda: self.poetry() or self.pep621(),
            pipfile.PIPFILE_LOCK: lambda: _Prod(
                pipfile.lock_items(pipfile.read_pipfile_lock(path), "default"),
                entry,
                "pinned",
                [path],
            ),
            pipfile.PIPFILE: lambda: _Prod(
                pipfile.pipfile_items(path, pipfile.read_pipfile(path), "packages"),
                entry,
                files=[path],
            ),
            pyproject.PYPROJECT: lambda: self.pep621() or self.poetry(),
            **{n: lambda: self.conda(path) for n in conda.CONDA_FILES},
        }
        if name.startswith("pylock.") and name.endswith(".toml"):
            return _Prod(read_pylock(path, entry), entry, "pinned", [path])
        if name in readers:
            found = readers[name]()
            if found is None:
                raise ConfigError(
                    f"{self.config_file}: key `requirements`: {entry} declares no prod "
                    "requirements this project can use"
                )
            return found
        items, parsed = reqfiles.file_items(self.root, path)
        self.notes += parsed.notes
        return _Prod(items, entry, files=list(parsed.files), requirement_files=[path])

    # ---- dev ------------------------------------------------------------------

    def dev(
        self, entries: Sequence[str] | None, prod_files: Sequence[Path]
    ) -> list[RequirementItem]:
        if entries is not None:
            out: list[RequirementItem] = []
            for entry in entries:
                try:
                    kind = requirement_entry(entry, self.root)
                except ValueError as exc:
                    raise ConfigError(
                        f"{self.config_file}: key `dev-requirements`: {exc}"
                    ) from None
                if kind == "inline":
                    out.append(RequirementItem(entry, f"{self.config_file} dev-requirements"))
                else:
                    out += reqfiles.file_items(self.root, self.root / entry)[0]
            return out
        out = pyproject.dev_items(self.root, self.data, self.groups)
        pf = self.root / pipfile.PIPFILE
        if pf.is_file():
            out += pipfile.pipfile_items(pf, pipfile.read_pipfile(pf), "dev-packages")
        own = {
            p.relative_to(self.root).as_posix() for p in prod_files if p.is_relative_to(self.root)
        }
        for path in reqfiles.discover(self.root).dev:
            try:
                items = reqfiles.file_items(self.root, path)[0]
            except ConfigError as exc:
                self.notes.append(f"dev requirements not read: {exc}")
                continue
            out += [i for i in items if i.source.rpartition(":")[0] not in own]
        return out


def _present(root: Path) -> list[Path]:
    """Other prod sources a project has, to tell the user which one was not taken."""
    names = [UV_LOCK, POETRY_LOCK, pipfile.PIPFILE_LOCK, pipfile.PIPFILE]
    found = [root / n for n in names if (root / n).is_file()]
    prod_file = reqfiles.discover(root).prod
    env = conda.find_environment(root)
    return found + input_locks(root) + [p for p in (prod_file, env) if p is not None]


_AUTO = ("pep621", "poetry", "uv", "pipenv", "pylock", "requirement_files", "conda")


def find_requirements(
    root: Path,
    requirements: Sequence[str] | None = None,
    extras: Sequence[str] = (),
    dev_requirements: Sequence[str] | None = None,
    *,
    groups: Sequence[str] = (),
    config_file: str = CONFIG_FILE,
) -> ProjectRequirements:
    """The project's prod and dev requirements, each with the file and place it came from."""
    finder = _Finder(root.resolve(), extras, groups, config_file)
    prod: _Prod | None = None
    if requirements is not None:
        prod = finder.configured(requirements)
    else:
        for step in _AUTO:
            prod = getattr(finder, step)()
            if prod is not None:
                break
        skipped = [n for n in _present(finder.root) if prod is None or n not in prod.files]
        if prod is not None and skipped:
            names = ", ".join(p.name for p in skipped)
            finder.notes.append(
                f"also found, not used: {names} ({prod.source} came first; "
                "name another source in `requirements` to use it)"
            )
    if prod is None:
        finder.notes.append(
            "no requirements found (pyproject.toml, uv.lock, poetry.lock, Pipfile, pylock.toml, "
            "requirements*.txt, environment.yml): the image gets torch and its dependencies only"
        )
        prod = _Prod([], "nothing")
    if extras and not prod.uses_extras:
        raise ConfigError(
            f"{config_file}: key `extras`: extras select [project.optional-dependencies] of "
            f"pyproject.toml, but the requirements come from {prod.source}; remove `extras`"
        )
    if groups and not prod.uses_extras:
        raise ConfigError(
            f"{config_file}: key `groups`: groups select [dependency-groups] of "
            f"pyproject.toml, but the requirements come from {prod.source}; remove `groups`"
        )
    dev = finder.dev(dev_requirements, prod.files)
    return ProjectRequirements(
        prod=tuple(prod.items),
        dev=tuple(dev),
        kind=prod.kind,
        source=prod.source,
        files=tuple(dict.fromkeys(prod.files)),
        requirement_files=tuple(prod.requirement_files),
        notes=tuple(finder.notes),
    )


__all__ = ["find_requirements"]
