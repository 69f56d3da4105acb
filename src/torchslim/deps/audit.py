"""Find development-only packages in the production lock, and who brought each in.

A service image that carries pytest or jupyter is bigger and has more attack surface
for nothing; usually one requirement (``pytest-cov``, ``jupyter``) drags in many.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from packaging.utils import canonicalize_name

from torchslim.deps.lock import Lock
from torchslim.deps.requirements import parse_requirements

# name -> one-line why it does not belong in a service image
DEV_WHY: dict[str, str] = {
    "jupyter": "notebook meta-package; pulls a whole web IDE",
    "jupyterlab": "notebook IDE server",
    "jupyter-core": "notebook infrastructure",
    "jupyter-client": "notebook kernel client",
    "jupyter-server": "notebook web server",
    "notebook": "classic notebook IDE server",
    "nbconvert": "notebook export tool",
    "ipython": "interactive shell",
    "ipykernel": "notebook kernel",
    "ipywidgets": "notebook widgets",
    "pytest": "test runner",
    "coverage": "test coverage measurement",
    "hypothesis": "property-based testing",
    "tox": "test environment manager",
    "nox": "test session runner",
    "black": "code formatter",
    "isort": "import sorter",
    "autopep8": "code formatter",
    "yapf": "code formatter",
    "flake8": "linter",
    "pycodestyle": "style checker",
    "pyflakes": "linter",
    "pylint": "linter",
    "ruff": "linter and formatter",
    "mypy": "static type checker",
    "pyright": "static type checker",
    "bandit": "security linter",
    "pre-commit": "git hook manager",
    "pdbpp": "debugger",
    "ipdb": "debugger",
    "debugpy": "remote debugger (opens a port)",
    "memory-profiler": "profiler",
    "line-profiler": "profiler",
    "snakeviz": "profile viewer",
    "sphinx": "documentation builder",
    "mkdocs": "documentation builder",
}
DEV_ONLY: frozenset[str] = frozenset(DEV_WHY)
# Families recognised by prefix: plugins of the tools above, and type stubs.
DEV_PREFIXES: dict[str, str] = {
    "pytest-": "pytest plugin",
    "flake8-": "flake8 plugin",
    "sphinx-": "documentation builder plugin",
    "sphinxcontrib-": "documentation builder plugin",
    "mkdocs-": "documentation builder plugin",
    "types-": "type stubs, only read by type checkers",
}


def dev_reason(name: str) -> str | None:
    """Why ``name`` is development-only, or None if it is not."""
    norm = canonicalize_name(name)
    if norm in DEV_WHY:
        return DEV_WHY[norm]
    return next((why for prefix, why in DEV_PREFIXES.items() if norm.startswith(prefix)), None)


@dataclass(frozen=True)
class DevFinding:
    package: str
    chain: tuple[str, ...]  # package, its parent, …, the requirement source that brought it

    @property
    def why(self) -> str:
        return dev_reason(self.package) or "development tool"

    @property
    def direct(self) -> bool:
        return len(self.chain) <= 2


@dataclass(frozen=True)
class RuntimeTool:
    """A package on the dev list that a production package requires: not dev here."""

    package: str
    required_by: tuple[str, ...]  # the requirer, and what required it while that is a dev tool

    @property
    def why(self) -> str:
        return dev_reason(self.package) or "development tool"


def audit(lock: Lock) -> list[DevFinding]:
    """Dev-only packages in ``lock``, each with the shortest chain to a requirement file.

    A package that a production package requires (gradio requires ruff) is not one of
    them: moving it to the dev requirements would not take it out; see ``runtime_tools``.
    """
    needed = _required_at_run_time(lock.parents)
    findings = []
    for pkg in lock.packages:
        if dev_reason(pkg.name) is not None and pkg.name not in needed:
            findings.append(DevFinding(pkg.name, _shortest_chain(pkg.name, lock.parents)))
    return findings


def runtime_tools(lock: Lock) -> list[RuntimeTool]:
    """Packages on the dev list that a production package in ``lock`` requires."""
    needed = _required_at_run_time(lock.parents)
    return [RuntimeTool(p.name, needed[p.name]) for p in lock.packages if p.name in needed]


def _required_at_run_time(parents: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Dev-list package → the production package that requires it (through dev-list
    packages that one requires: ``("pytest-x", "app-lib")``), until nothing changes."""
    needed: dict[str, tuple[str, ...]] = {}
    changed = True
    while changed:
        changed = False
        for name, sources in sorted(parents.items()):
            if name in needed or dev_reason(name) is None:
                continue
            for src in sources:
                if src not in parents:  # a requirement file or the config, not a package
                    continue
                if dev_reason(src) is None:
                    needed[name] = (src,)
                elif src in needed:
                    needed[name] = (src, *needed[src])
                else:
                    continue
                changed = True
                break
    return needed


def _shortest_chain(name: str, parents: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Breadth-first walk up the ``# via`` graph until a non-package source is reached."""
    queue: deque[tuple[str, ...]] = deque([(name,)])
    seen = {name}
    while queue:
        chain = queue.popleft()
        # constraint files only cap versions, they never bring a package in
        sources = [s for s in parents.get(chain[-1], ()) if not s.startswith("-c ")]
        for src in sources:
            if src not in parents:  # "-r requirements.txt", "torchslim config", …
                return (*chain, src)
        for src in sources:
            if src not in seen:
                seen.add(src)
                queue.append((*chain, src))
    return (name,)


def format_audit(findings: list[DevFinding], tools: Sequence[RuntimeTool] = ()) -> list[str]:
    """Human lines for the CLI, e.g. ``pytest (test runner) ← pytest-cov ← -r requirements.txt``;
    then one line per dev-list package a production package needs (named, not blamed)."""
    needed = [
        f"{t.package} ({t.why}) stays: {' ← '.join(t.required_by)} requires it at run time"
        for t in tools
    ]
    if not findings:
        return ["no development-only packages in the production requirements", *needed]
    lines = [f"{len(findings)} development-only package(s) in the production requirements:"]
    for f in findings:
        via = " ← ".join(f.chain[1:]) or "unknown source"
        lines.append(f"  {f.package} ({f.why}) ← {via}")
    lines.append(
        "  move them to the dev requirements file (or pass --strict to make this an error)"
    )
    return [*lines, *needed]


def format_lock(lock: Lock) -> list[str]:
    """The resolved production set, one ``name==version  filename`` per line."""
    head = f"{len(lock.packages)} packages for {lock.target.describe()}:"
    return [head, *(f"  {w.name}=={w.version}  {w.filename}" for w in lock.packages)]


__all__ = [
    "DEV_ONLY",
    "DEV_PREFIXES",
    "DEV_WHY",
    "DevFinding",
    "RuntimeTool",
    "audit",
    "dev_reason",
    "format_audit",
    "format_lock",
    "parse_requirements",
    "runtime_tools",
]
