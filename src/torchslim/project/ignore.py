"""The one list of what does not go into the image, shared by ``build`` and ``generate``.

A project file is shipped when it is under ``app`` (or named by ``include``) and the
patterns below, in this order, leave it in — Docker's rule, the last match decides:

1. :data:`DEFAULT_IGNORE` (caches, virtualenvs, VCS, build outputs, torchslim's own
   files, Docker files);
2. the project's ``.dockerignore``;
3. ``exclude`` from the config;
4. ``include`` from the config (``!`` exceptions: they win over everything above).

All patterns use ``.dockerignore`` syntax (:mod:`torchslim.project.dockerignore`).
A shipped file that looks like a secret (:mod:`torchslim.project.secrets`) stops the
build unless ``include`` names it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from torchslim.errors import ConfigError
from torchslim.project.dockerignore import PatternList, read_lines
from torchslim.project.secrets import (
    SecretFileError,
    SecretRule,
    secret_dockerignore_lines,
    secret_rule,
)

APP_ROOT = "/app"
DOCKERIGNORE = ".dockerignore"

# (pattern, why) — the defaults a user would expect, in .dockerignore syntax.
DEFAULT_IGNORE: tuple[tuple[str, str], ...] = (
    ("**/__pycache__", "bytecode; the image compiles its own"),
    ("**/*.py[cod]", "bytecode; the image compiles its own"),
    ("**/.git", "version control history"),
    ("**/.hg", "version control history"),
    ("**/.svn", "version control history"),
    ("**/.venv", "a local virtualenv; the image installs its own packages"),
    ("**/venv", "a local virtualenv; the image installs its own packages"),
    ("**/.tox", "test environments"),
    ("**/.nox", "test environments"),
    ("**/node_modules", "JavaScript dependencies of front-end tooling"),
    ("**/.mypy_cache", "tool cache"),
    ("**/.pytest_cache", "tool cache"),
    ("**/.ruff_cache", "tool cache"),
    ("**/.ipynb_checkpoints", "notebook autosaves"),
    ("**/.DS_Store", "macOS folder metadata"),
    ("**/*.swp", "editor swap files"),
    ("**/*.tar", "image archives and other tarballs from earlier builds"),
    (".coverage", "test coverage data"),
    ("htmlcov", "test coverage report"),
    (".idea", "editor settings"),
    (".vscode", "editor settings"),
    ("build", "build output"),
    ("dist", "build output"),
    ("**/*.egg-info", "build output"),
    ("tests", "the test suite does not run in the service"),
    ("requirements-dev.txt", "development requirements: never installed in the image"),
    ("requirements_dev.txt", "development requirements: never installed in the image"),
    ("requirements-test.txt", "development requirements: never installed in the image"),
    ("dev-requirements.txt", "development requirements: never installed in the image"),
    ("test-requirements.txt", "development requirements: never installed in the image"),
    (".github", "CI configuration"),
    (".gitlab-ci.yml", "CI configuration"),
    (".gitignore", "version control settings"),
    (".gitattributes", "version control settings"),
    (".pre-commit-config.yaml", "development tooling"),
    ("torchslim.toml", "torchslim's config: read at build time, not at run time"),
    ("pylock.toml", "the lock: its packages are installed, the file is not needed"),
    ("pylock.*.toml", "the lock: its packages are installed, the file is not needed"),
    (".torchslim-lint.toml", "lint settings"),
    ("Dockerfile", "Docker build files describe the build, not the service"),
    ("Dockerfile.*", "Docker build files describe the build, not the service"),
    ("*.Dockerfile", "Docker build files describe the build, not the service"),
    ("dockerfile", "Docker build files describe the build, not the service"),
    ("Containerfile", "Docker build files describe the build, not the service"),
    ("Containerfile.*", "Docker build files describe the build, not the service"),
    ("containerfile", "Docker build files describe the build, not the service"),
    (".dockerignore", "Docker build files describe the build, not the service"),
    ("docker-compose*.yml", "Docker build files describe the build, not the service"),
    ("compose*.yaml", "Docker build files describe the build, not the service"),
)


@dataclass(frozen=True)
class AppFile:
    source: Path
    rel: str  # project-relative, "/"-separated
    image_path: str  # "/app/<rel>"


@dataclass(frozen=True)
class SecretFile:
    rel: str
    rule: SecretRule


@dataclass(frozen=True)
class Selection:
    files: tuple[AppFile, ...]
    secrets: tuple[SecretFile, ...]  # would be shipped, and `include` does not name them
    included_secrets: tuple[SecretFile, ...]  # shipped because `include` names them
    symlinks: tuple[str, ...]  # not followed, not shipped

    def check_secrets(self, config_file: str = "torchslim.toml") -> None:
        """SecretFileError naming every secret the image would get by accident."""
        if not self.secrets:
            return
        named = ", ".join(f"{s.rel} ({s.rule.why})" for s in self.secrets[:5])
        more = f" and {len(self.secrets) - 5} more" if len(self.secrets) > 5 else ""
        first = self.secrets[0].rel
        raise SecretFileError(
            f"{config_file}: {len(self.secrets)} file(s) that look like secrets would be "
            f'shipped: {named}{more}; leave them out with exclude = ["{first}"] (or '
            f'.dockerignore), or ship one deliberately with include = ["{first}"]'
        )


def read_dockerignore(root: Path) -> list[str]:
    path = root / DOCKERIGNORE
    if not path.is_file():
        return []
    return read_lines(path.read_text(encoding="utf-8", errors="replace"))


def ignore_patterns(root: Path, include: Sequence[str], exclude: Sequence[str]) -> PatternList:
    """The whole ordered list for ``root``: defaults, .dockerignore, exclude, !include."""
    lines = [p for p, _ in DEFAULT_IGNORE] + read_dockerignore(root) + list(exclude)
    return PatternList(lines + [f"!{p}" for p in include])


def _relative(root: Path, path: Path, key: str) -> str:
    """``path`` relative to ``root`` ("" for the root itself); outside is a ConfigError."""
    try:
        rel = path.resolve().relative_to(root).as_posix()
    except ValueError:
        raise ConfigError(
            f"key `{key}`: {path} is outside the project {root}; move it into the project"
        ) from None
    return "" if rel == "." else rel


def _under(rel: str, folder: str) -> bool:
    return folder == "" or rel == folder or rel.startswith(folder + "/")


def select_app_files(
    root: Path,
    app: str = ".",
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    *,
    skip: Iterable[Path] = (),
) -> Selection:
    """Files of ``app`` (and those ``include`` names) that go into the image, sorted.

    ``skip`` holds files placed elsewhere (model files, ``files`` entries).
    """
    root = root.resolve()
    folder = _relative(root, root / app, "app")
    ignored = ignore_patterns(root, include, exclude)
    wanted = PatternList(f"!{p}" for p in include)
    skipped = {p.resolve() for p in skip}
    files: list[AppFile] = []
    secrets: list[SecretFile] = []
    chosen: list[SecretFile] = []
    links: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = _relative(root, Path(dirpath), "app")
        keep_dirs = []
        for d in sorted(dirnames):
            rel = f"{base}/{d}".lstrip("/")
            if os.path.islink(os.path.join(dirpath, d)):
                links.append(rel)
            elif not (_under(rel, folder) or _under(folder, rel) or include):
                continue  # outside app, and nothing asks for it
            elif not (ignored.matches(rel) and ignored.may_skip_dir(rel)):
                keep_dirs.append(d)
        dirnames[:] = keep_dirs
        for name in sorted(filenames):
            rel = f"{base}/{name}".lstrip("/")
            path = Path(dirpath) / name
            if path.is_symlink():
                links.append(rel)
                continue
            named = bool(include) and _named(wanted, rel)
            if not (_under(rel, folder) or named) or ignored.matches(rel) or path in skipped:
                continue
            rule = secret_rule(rel, path)
            if rule is not None:
                (chosen if named else secrets).append(SecretFile(rel, rule))
            files.append(AppFile(path, rel, f"{APP_ROOT}/{rel}"))
    return Selection(
        tuple(sorted(files, key=lambda f: f.rel)),
        tuple(sorted(secrets, key=lambda s: s.rel)),
        tuple(sorted(chosen, key=lambda s: s.rel)),
        tuple(sorted(links)),
    )


def _named(wanted: PatternList, rel: str) -> bool:
    """Whether an ``include`` pattern matches ``rel`` (or a folder above it)."""
    parts = rel.split("/")
    candidates = [rel, *("/".join(parts[: i + 1]) for i in range(len(parts) - 1))]
    return any(p.match(c) for p in wanted.patterns for c in candidates)


def ignore_lines(include: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[str]:
    """The same list for a generated ``.dockerignore``: defaults, secrets (Docker cannot
    stop on them, so they are left out), exclude, then include as exceptions."""
    return [
        *(p for p, _ in DEFAULT_IGNORE),
        *secret_dockerignore_lines(),
        *exclude,
        *(f"!{p}" for p in include),
    ]


BEGIN = "# --- torchslim: defaults and secrets (torchslim dockerfile keeps this block) ---"
END = "# --- end torchslim ---"


def merge_dockerignore(existing: str, ours: Sequence[str]) -> str:
    """The user's ``.dockerignore`` with our lines it lacks, in a marked block at the top.

    The block comes first so that the user's own lines, later, win (Docker: the last
    match decides): a user's ``!keep.env`` still re-includes what our block leaves out.
    A block from an earlier run is replaced; the user's lines are kept verbatim.
    """
    lines = existing.splitlines()
    if BEGIN in lines and END in lines[lines.index(BEGIN) :]:
        start = lines.index(BEGIN)
        end = lines.index(END, start)
        lines = lines[:start] + lines[end + 1 :]
        while lines and not lines[0].strip():
            lines.pop(0)
    user = {line.strip() for line in lines}
    missing = [line for line in dict.fromkeys(ours) if line.strip() not in user]
    block = [BEGIN, *missing, END] if missing else []
    body = "\n".join(lines)
    if not block:
        return body + ("\n" if body else "")
    return "\n".join(block) + ("\n\n" + body if body.strip() else "") + "\n"


__all__ = [
    "APP_ROOT",
    "BEGIN",
    "DEFAULT_IGNORE",
    "DOCKERIGNORE",
    "END",
    "AppFile",
    "SecretFile",
    "SecretFileError",
    "Selection",
    "ignore_lines",
    "ignore_patterns",
    "merge_dockerignore",
    "read_dockerignore",
    "select_app_files",
]
