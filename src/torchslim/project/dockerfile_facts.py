"""What a project's Dockerfile already says: how the service starts, its port and health
path, environment, user, the requirement files and weights it copies, its Python.

Run-time facts (CMD, ENTRYPOINT, EXPOSE, HEALTHCHECK, ENV, WORKDIR, USER, VOLUME) come
from the final stage and the stages it is built FROM; what is installed and copied
(``pip install -r``, torch pins, weight files) from every stage, since a builder stage
usually installs what the final stage copies. Every fact keeps its ``file:line``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Generic, TypeVar

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from torchslim.confined import build_context, outside
from torchslim.errors import ConfigError
from torchslim.lint.engine import find_dockerfiles
from torchslim.lint.errors import LintError
from torchslim.lint.images import parse_ref, python_of
from torchslim.lint.parser import (
    Instruction,
    Stage,
    parse_arg,
    parse_env,
    read_dockerfile,
    substitute_bounded,
)
from torchslim.lint.shell import commands, install_of, requirement_files, run_commands
from torchslim.project.models import WEIGHT_SUFFIXES
from torchslim.project.torchpin import variant_of_index
from torchslim.redact import quote

T = TypeVar("T")

_URL_PATH = re.compile(
    r"https?://(?:localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\])(?::(\d+))?(/[^\s'\"\\)]*)"
)
_SHELL_ONLY = re.compile(r"[|&;<>()$`*?]|\b(if|for|while|case)\b")
_PYTORCH_TAG = re.compile(r"^(\d+\.\d+(?:\.\d+)?)-cuda(\d+)\.(\d+)")
_CUDA_TAG = re.compile(r"^(\d+)\.(\d+)")
_REQ_FILE = re.compile(
    r"(^|/)([\w.-]*requirements[\w.-]*\.(txt|in)|pyproject\.toml|Pipfile(\.lock)?|uv\.lock|poetry\.lock)$"
)
# ENV and ARG values are expanded once, where they are set; these bound what a chain of
# `ENV A1=$A0$A0` lines can build: each value, and all expansions of one Dockerfile.
MAX_VALUE = 64 << 10
MAX_EXPANDED = 16 << 20
# A Procfile's `web:` line is one command (and shlex is quadratic in a word's length).
MAX_PROCFILE_LINE = 64 << 10
_INDEX_OPTS = ("-i", "--index-url", "--extra-index-url")
_VALUE_OPTS = (*_INDEX_OPTS, "-r", "--requirement", "-c", "-f", "--find-links", "-t", "--target")


@dataclass(frozen=True)
class Found(Generic[T]):
    value: T
    where: str  # "Dockerfile:12"


@dataclass
class DockerfileFacts:
    path: Path
    base: str = ""
    cmd: Found[list[str]] | None = None
    cmd_needs_shell: bool = False
    ports: list[Found[int]] = field(default_factory=list)
    health: Found[str] | None = None
    healthcheck: Found[dict[str, str | int]] | None = None
    env: list[Found[tuple[str, str]]] = field(default_factory=list)
    workdir: Found[str] | None = None
    user: Found[str] | None = None
    uid: Found[int] | None = None
    python: Found[str] | None = None
    torch: Found[str] | None = None  # a torch requirement, e.g. "torch==2.13.0+cpu"
    variant: Found[str] | None = None  # from a PyTorch index URL or base image tag
    cuda: Found[str] | None = None  # "12.4" from an nvidia/cuda base
    requirement_files: list[Found[str]] = field(default_factory=list)
    inline_requirements: list[Found[str]] = field(default_factory=list)
    model_copies: list[Found[str]] = field(default_factory=list)
    code_copies: list[Found[tuple[str, str]]] = field(default_factory=list)
    volumes: list[Found[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def find_dockerfile(root: Path) -> Path | None:
    """The project's Dockerfile: Dockerfile, dockerfile, Containerfile (that order)."""
    found = find_dockerfiles(root)
    return found[0] if found else None


def _clean(src: str) -> str:
    """A COPY source as a project-relative path: ``./app/`` → ``app``, ``.`` → ``.``."""
    return str(PurePosixPath(src.removeprefix("./"))).rstrip("/") or "."


def _where(path: Path, ins: Instruction) -> str:
    return f"{path.name}:{ins.line}"


def _copy_args(ins: Instruction) -> list[str]:
    if ins.exec_form is not None:
        return list(ins.exec_form)
    try:
        return shlex.split(ins.args)
    except ValueError:  # an unclosed quote: BuildKit refuses it; words are enough for facts
        return ins.args.split()


class _Reader:
    def __init__(self, path: Path, root: Path) -> None:
        self.root = root.resolve()
        self.context = build_context(root)
        why = outside(self.context, self.root, str(path))
        if why is not None:  # a symlink out: lint errors would quote the outside file
            raise LintError(f"{path.name}: {why}; not read (replace the link by the file)")
        self.df = read_dockerfile(path)
        self.facts = DockerfileFacts(path)
        self.values: dict[str, str | None] = dict(self.df.global_args)
        self.expanded = 0  # characters built by expansion so far (MAX_EXPANDED)
        self.where = ""  # the line being read, for notes

    def sub(self, text: str) -> str:
        """``text`` with ``$VAR`` of ARG/ENV values; kept as written (with one note) when
        it would grow over MAX_VALUE, or the Dockerfile's expansions over MAX_EXPANDED."""
        if "$" not in text:
            return text
        limit = min(MAX_VALUE, max(len(text), MAX_EXPANDED - self.expanded))
        out = substitute_bounded(text, self.values, limit)
        if out is None:
            self._note_once(
                f"{self.where}: variables expand to over {MAX_VALUE >> 10} KiB here (or "
                f"{MAX_EXPANDED >> 20} MiB in all); such values are kept unexpanded"
            )
            return text
        self.expanded += max(0, len(out) - len(text))
        return out

    def _note_once(self, note: str) -> None:
        head = note.partition(": ")[2]
        if not any(n.endswith(head) for n in self.facts.notes):
            self.facts.notes.append(note)

    def inside(self, rel: str, what: str) -> bool:
        """Whether the project path ``rel`` stays in the build context; a note naming the
        line and the path when not (it is then never read)."""
        why = outside(self.context, self.root, rel)
        if why is not None:
            self.facts.notes.append(f"{self.where}: {what} {quote(rel)} {why}; not read")
        return why is None

    def read(self) -> DockerfileFacts:
        final = self.df.final
        lineage = list(reversed(self.df.lineage(final)))
        self.facts.base = lineage[0].resolved
        self._base(lineage[0])
        for stage in self.df.stages:
            self._installs(stage)
        entry: Found[list[str]] | None = None
        cmd: Found[list[str]] | None = None
        for stage in lineage:
            for ins in stage.instructions:
                where = self.where = _where(self.df.path, ins)
                if ins.keyword in ("ARG", "ENV"):
                    pairs = parse_env(ins.args) if ins.keyword == "ENV" else []
                    for name, value in pairs:
                        expanded = self.values[name] = self.sub(value)
                        self.facts.env.append(Found((name, expanded), where))
                elif ins.keyword == "WORKDIR":
                    self.facts.workdir = Found(self.sub(ins.args.strip()), where)
                elif ins.keyword == "USER":
                    self._user(self.sub(ins.args.strip()), where, lineage)
                elif ins.keyword == "EXPOSE":
                    for word in self.sub(ins.args).split():
                        port = word.split("/")[0]
                        if port.isdigit():
                            self.facts.ports.append(Found(int(port), where))
                elif ins.keyword == "VOLUME":
                    for v in ins.exec_form or ins.args.split():
                        self.facts.volumes.append(Found(self.sub(v), where))
                elif ins.keyword == "HEALTHCHECK":
                    self._healthcheck(ins, where)
                elif ins.keyword == "ENTRYPOINT":
                    entry, cmd = self._argv(ins, where), None  # ENTRYPOINT resets CMD
                elif ins.keyword == "CMD":
                    cmd = self._argv(ins, where)
                elif ins.keyword in ("COPY", "ADD") and ins.flag("from") is None:
                    self._code_copy(ins, where)
        self._command(entry, cmd)
        return self.facts

    # ---- pieces --------------------------------------------------------------

    def _base(self, stage: Stage) -> None:
        ref = parse_ref(stage.resolved)
        where = self.where = _where(self.df.path, stage.from_line)
        py = python_of(ref)
        if py is not None and py.version:
            self.facts.python = Found(py.version, where)
        tag = (ref.tag or "").lower()
        if ref.name == "pytorch/pytorch" and (m := _PYTORCH_TAG.match(tag)):
            self.facts.torch = Found(f"torch=={m.group(1)}", where)
            self.facts.variant = Found(f"cu{m.group(2)}{m.group(3)}", where)
        elif ref.name.endswith("nvidia/cuda") and (m := _CUDA_TAG.match(tag)):
            self.facts.cuda = Found(f"{m.group(1)}.{m.group(2)}", where)

    def _installs(self, stage: Stage) -> None:
        for ins in stage.instructions:
            where = self.where = _where(self.df.path, ins)
            if ins.keyword == "ARG":
                for name, value in parse_arg(ins.args):
                    if value is not None:
                        self.values.setdefault(name, value)
            if ins.keyword in ("COPY", "ADD") and ins.flag("from") is None:
                for src in _copy_args(ins)[:-1]:
                    src = _clean(self.sub(src))
                    weights = PurePosixPath(src).suffix.lower() in WEIGHT_SUFFIXES
                    if weights and self.inside(src, f"{ins.keyword} source"):
                        self.facts.model_copies.append(Found(src, where))
            if ins.keyword != "RUN":
                continue
            for command in run_commands(ins):
                inst = install_of(command)
                if inst is None or inst.tool not in ("pip", "uv"):
                    continue
                args = [self.sub(a) for a in inst.args]
                for rel in requirement_files(inst):
                    path = self._project_path(self.sub(rel))
                    if self.inside(path, f"{inst.tool} install -r"):
                        self.facts.requirement_files.append(Found(path, where))
                for opt, value in zip(args, args[1:], strict=False):
                    if opt in _INDEX_OPTS and (variant := variant_of_index(value)):
                        self.facts.variant = Found(variant, where)
                self._packages(args, where)

    def _packages(self, args: list[str], where: str) -> None:
        skip = False
        for arg in args:
            if skip or arg.startswith("-"):
                skip = arg in _VALUE_OPTS
                continue
            try:
                req = Requirement(arg)
            except InvalidRequirement:
                continue
            if canonicalize_name(req.name) == "torch":
                self.facts.torch = Found(arg, where)
            elif arg not in (".", "-e"):
                self.facts.inline_requirements.append(Found(arg, where))

    def _project_path(self, path: str) -> str:
        """An in-image path of a COPY'd file → the project file it was copied from."""
        name = PurePosixPath(path).name
        copies = []
        for ins in self.df.instructions:
            if ins.keyword in ("COPY", "ADD") and ins.flag("from") is None:
                args = [self.sub(a) for a in _copy_args(ins)]
                copies.append((args[:-1], args[-1]))
        for sources, _ in copies:
            for src in sources:
                if PurePosixPath(src).name == name:
                    return _clean(src)
        for sources, dest in copies:  # renamed: COPY requirements-prod.txt /tmp/req.txt
            if len(sources) == 1 and (dest == path or dest.endswith("/" + path)):
                return _clean(sources[0])
        return _clean(path)

    def _code_copy(self, ins: Instruction, where: str) -> None:
        args = [self.sub(a) for a in _copy_args(ins)]
        dest = args[-1]
        for src in args[:-1]:
            clean = _clean(src)
            if "://" in src or _REQ_FILE.search(clean):
                continue
            if PurePosixPath(clean).suffix.lower() in WEIGHT_SUFFIXES:
                continue
            if self.inside(clean, f"{ins.keyword} source"):
                self.facts.code_copies.append(Found((clean, dest), where))

    def _user(self, value: str, where: str, lineage: list[Stage]) -> None:
        self.facts.user = Found(value, where)
        name = value.split(":")[0]
        if name.isdigit():
            self.facts.uid = Found(int(name), where)
            return
        for stage in lineage:  # `useradd -u 1001 app` / `adduser --uid 1001 app`
            for ins in stage.instructions:
                for command in run_commands(ins) if ins.keyword == "RUN" else []:
                    uid = _created_uid(command.argv, name)
                    if uid is not None:
                        self.facts.uid = Found(uid, _where(self.df.path, ins))

    def _healthcheck(self, ins: Instruction, where: str) -> None:
        text = ins.args.strip()
        if text.upper().startswith("NONE"):
            return
        m = _URL_PATH.search(text)
        if m:
            self.facts.health = Found(m.group(2), where)
        options: dict[str, str | int] = {}
        for key in ("interval", "timeout", "start-period", "retries"):
            value = ins.flag(key)
            if value:
                options[key] = int(value) if key == "retries" and value.isdigit() else value
        if options:
            self.facts.healthcheck = Found(options, where)

    def _argv(self, ins: Instruction, where: str) -> Found[list[str]]:
        if ins.exec_form is not None:
            return Found(list(ins.exec_form), where)
        text = self.sub(ins.args)
        parts = commands(text)
        if len(parts) == 1 and not _SHELL_ONLY.search(text.replace("exec ", "", 1)):
            return Found(parts[0].argv, where)
        self.facts.cmd_needs_shell = True
        return Found(["/bin/sh", "-c", text], where)

    def _command(self, entry: Found[list[str]] | None, cmd: Found[list[str]] | None) -> None:
        if entry is not None and cmd is not None and not self.facts.cmd_needs_shell:
            where = f"{entry.where} + {cmd.where.rpartition(':')[2]}"
            self.facts.cmd = Found([*entry.value, *cmd.value], where)
        else:
            self.facts.cmd = entry or cmd


def _created_uid(argv: list[str], user: str) -> int | None:
    if not argv or argv[0].rsplit("/", 1)[-1] not in ("useradd", "adduser") or argv[-1] != user:
        return None
    for opt, value in zip(argv, argv[1:], strict=False):
        if opt in ("-u", "--uid") and value.isdigit():
            return int(value)
    return None


def copied_file_path(src: str, dest: str, workdir: str) -> str:
    """Where ``COPY src dest`` puts a file, with WORKDIR mapped to /app."""
    name = Path(src).name
    if dest.startswith("/") and not dest.startswith(workdir + "/") and dest != workdir:
        return dest + name if dest.endswith("/") else dest
    rel = dest.removeprefix(workdir + "/") if dest.startswith("/") else dest
    rel = rel.removeprefix("./").rstrip("/") if rel not in (".", "./", workdir) else ""
    if dest.endswith("/") or not rel:
        return f"/app/{rel + '/' if rel else ''}{name}"
    return f"/app/{rel}"


def read_dockerfile_facts(path: Path, root: Path | None = None) -> DockerfileFacts:
    """The facts of the Dockerfile at ``path``; the files it names are read from ``root``
    (its folder by default) and must stay in its build context."""
    return _Reader(path, root or path.parent).read()


def read_procfile(root: Path) -> Found[str] | None:
    """The ``web:`` command of a Procfile (Heroku, Dokku, honcho)."""
    path = root / "Procfile"
    if not path.is_file():
        return None
    why = outside(build_context(root), root, path.name)
    if why is not None:  # a symlink out: its text would become the image's command
        raise ConfigError(f"Procfile: {why}; not read (replace the link by the file)")
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        kind, sep, command = line.partition(":")
        if sep and kind.strip() == "web" and command.strip():
            if len(command) > MAX_PROCFILE_LINE:
                raise ConfigError(
                    f"Procfile:{n}: the web command is longer than "
                    f"{MAX_PROCFILE_LINE >> 10} KiB; write the command there, not data"
                )
            return Found(command.strip(), f"Procfile:{n}")
    return None


def split_command(command: str, where: str) -> list[str]:
    """A shell-like command line (a Procfile's, ``--cmd``) as argv; one line naming
    ``where`` when its quoting is broken (shlex's ``No closing quotation``)."""
    try:
        return shlex.split(command)
    except ValueError as exc:
        raise ConfigError(
            f"{where}: cannot split the command {quote(command)} into words "
            f"({str(exc).lower()}); close the quote, or pass --cmd 'python3 serve.py'"
        ) from None


__all__ = [
    "DockerfileFacts",
    "copied_file_path",
    "Found",
    "find_dockerfile",
    "read_dockerfile_facts",
    "read_procfile",
    "split_command",
]
