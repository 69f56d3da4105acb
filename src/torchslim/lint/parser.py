"""Dockerfile parser: enough of BuildKit's grammar to lint real files.

Handles parser directives (``# escape=``), line continuations with the
escape character, comment lines inside continuations, heredocs (``<<EOF``,
``<<-EOF``, quoted delimiters), JSON (exec) versus shell form, ``ARG``
before the first ``FROM``, named stages and ``--flag`` options.  Every
problem is a one-line :class:`LintError` naming ``file:line``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from torchslim.lint.errors import LintError

INSTRUCTIONS = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)
_HEREDOC_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD"})
_FLAG_INSTRUCTIONS = frozenset({"FROM", "RUN", "COPY", "ADD", "HEALTHCHECK"})
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(.*?)\s*$")
# `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`; not the here-string `<<<`.
_HEREDOC = re.compile(r"(?<!<)<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2(?!<)")
_IGNORE = re.compile(r"^#\s*torchslim:\s*ignore\s*=\s*(.*)$", re.IGNORECASE)
# No real Dockerfile comes near these; they keep a hostile one (a 64 MiB ENV line) from
# reaching shlex, which takes time quadratic in a word's length.
MAX_LINE = 64 << 10
MAX_FILE = 1 << 20
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-+][^}]*)?\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Heredoc:
    delimiter: str
    body: str
    strip_tabs: bool
    quoted: bool


@dataclass(frozen=True)
class Ignore:
    """A ``# torchslim: ignore=ID[,ID]`` comment and where it was written."""

    ids: tuple[str, ...]
    line: int


@dataclass
class Instruction:
    keyword: str
    args: str  # the arguments after flags, continuation lines joined
    line: int  # first line (1-based)
    end_line: int
    flags: dict[str, list[str]] = field(default_factory=dict)
    exec_form: list[str] | None = None
    heredocs: list[Heredoc] = field(default_factory=list)
    ignore: Ignore | None = None
    stage: int = -1  # index of the stage; -1 for ARG before the first FROM

    def flag(self, name: str) -> str | None:
        values = self.flags.get(name)
        return values[-1] if values else None

    @property
    def text(self) -> str:
        """Arguments plus heredoc bodies: what a shell would see."""
        parts = [self.args, *(h.body for h in self.heredocs)]
        return "\n".join(p for p in parts if p)


@dataclass
class Stage:
    index: int
    image: str  # as written
    resolved: str  # with global ARG defaults substituted
    name: str | None
    from_line: Instruction
    instructions: list[Instruction] = field(default_factory=list)
    parent: int | None = None  # index of the stage this one is FROM, if any

    @property
    def label(self) -> str:
        return self.name or str(self.index)


@dataclass
class Dockerfile:
    path: Path
    directives: dict[str, str]
    global_args: dict[str, str | None]
    stages: list[Stage]
    instructions: list[Instruction]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage_named(self, ref: str) -> Stage | None:
        for st in self.stages:
            if (st.name and st.name.lower() == ref.lower()) or str(st.index) == ref:
                return st
        return None

    def lineage(self, stage: Stage) -> list[Stage]:
        """``stage`` and the stages it is built FROM: what ends up in its image."""
        chain = [stage]
        while chain[-1].parent is not None:
            chain.append(self.stages[chain[-1].parent])
        return chain


def substitute(text: str, values: dict[str, str | None]) -> str:
    """Replace ``$VAR`` / ``${VAR}`` with known values; unknown ones are kept."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        value = values.get(name)
        return value if value is not None else m.group(0)

    return _VAR.sub(repl, text)


def substitute_bounded(text: str, values: dict[str, str | None], limit: int) -> str | None:
    """``substitute``, or None once the result would be longer than ``limit`` characters:
    ``ENV A1=$A0$A0`` chained doubles at every line, so the size is checked before any
    string is built, never after."""
    parts: list[str] = []
    size, last = 0, 0
    for m in _VAR.finditer(text):
        value = values.get(m.group(1) or m.group(2))
        piece = value if value is not None else m.group(0)
        size += m.start() - last + len(piece)
        if size > limit:
            return None
        parts += [text[last : m.start()], piece]
        last = m.end()
    if size + len(text) - last > limit:
        return None
    parts.append(text[last:])
    return "".join(parts)


def read_dockerfile(path: Path) -> Dockerfile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LintError(f"{path}: cannot read: {exc.strerror}; check the path") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise LintError(f"{path}:{line}: not UTF-8 text; save the Dockerfile as UTF-8") from None
    return parse_dockerfile(text, path)


def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    """Parser directives: ``# key=value`` lines at the very top, before anything else."""
    found: dict[str, str] = {}
    for i, line in enumerate(lines):
        m = _DIRECTIVE.match(line.strip())
        if not m or m.group(1).lower() in found:
            return found, i
        found[m.group(1).lower()] = m.group(2)
    return found, len(lines)


def _strip_continuation(line: str, escape: str) -> tuple[str, bool]:
    stripped = line.rstrip()
    if stripped.endswith(escape) and not stripped.endswith(escape * 2):
        return stripped[:-1], True
    return line, False


def _split_flags(rest: str) -> tuple[dict[str, list[str]], str]:
    flags: dict[str, list[str]] = {}
    rest = rest.lstrip()
    while rest.startswith("--"):
        token, _, tail = rest.partition(" ")
        name, eq, value = token[2:].partition("=")
        flags.setdefault(name.lower(), []).append(value if eq else "")
        rest = tail.lstrip()
    return flags, rest


def _parse_ignore(comment: str, path: Path, lineno: int) -> Ignore | None:
    m = _IGNORE.match(comment.strip())
    if not m:
        return None
    ids = tuple(x.strip().upper() for x in m.group(1).split(",") if x.strip())
    if not ids:
        raise LintError(f"{path}:{lineno}: empty ignore comment; write '# torchslim: ignore=TS106'")
    return Ignore(ids, lineno)


def parse_dockerfile(text: str, path: Path = Path("Dockerfile")) -> Dockerfile:
    lines = text.splitlines()
    for n, line in enumerate(lines, 1):
        if len(line) > MAX_LINE:
            raise LintError(f"{path}:{n}: line is longer than {MAX_LINE >> 10} KiB; shorten it")
    if len(text) > MAX_FILE:
        raise LintError(f"{path}: larger than {MAX_FILE >> 20} MiB; no Dockerfile needs that")
    directives, i = _directives(lines)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise LintError(f"{path}:1: escape directive must be '\\' or '`', got {escape!r}")

    instructions: list[Instruction] = []
    pending_ignore: Ignore | None = None
    n = len(lines)
    while i < n:
        raw = lines[i]
        stripped = raw.strip()
        if not stripped:
            i += 1
            continue
        if stripped.startswith("#"):
            pending_ignore = _parse_ignore(stripped, path, i + 1) or pending_ignore
            i += 1
            continue

        start = i
        body, more = _strip_continuation(raw, escape)
        parts = [body.strip()]
        i += 1
        while more and i < n:
            nxt = lines[i]
            i += 1
            if not nxt.strip() or nxt.strip().startswith("#"):
                continue  # BuildKit drops comment and empty lines inside continuations
            body, more = _strip_continuation(nxt, escape)
            parts.append(body.strip())
        logical = " ".join(p for p in parts if p)
        if len(logical) > MAX_LINE:
            raise LintError(
                f"{path}:{start + 1}: instruction is longer than {MAX_LINE >> 10} KiB with its "
                "continuation lines; shorten it"
            )

        keyword, _, rest = logical.partition(" ")
        keyword_u = keyword.upper()
        if keyword_u not in INSTRUCTIONS:
            raise LintError(
                f"{path}:{start + 1}: unknown instruction {keyword!r}; "
                f"expected one of {', '.join(sorted(INSTRUCTIONS))}"
            )
        flags: dict[str, list[str]] = {}
        if keyword_u in _FLAG_INSTRUCTIONS:
            flags, rest = _split_flags(rest)
        rest = rest.strip()

        exec_form: list[str] | None = None
        if rest.startswith("["):
            try:
                parsed = json.loads(rest)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
                exec_form = parsed

        heredocs: list[Heredoc] = []
        if keyword_u in _HEREDOC_INSTRUCTIONS and exec_form is None:
            for m in _HEREDOC.finditer(rest):
                strip_tabs, quote, delim = m.group(1) == "-", m.group(2), m.group(3)
                body_lines: list[str] = []
                while True:
                    if i >= n:
                        raise LintError(
                            f"{path}:{start + 1}: heredoc <<{delim} is never closed; "
                            f"add a line with just {delim}"
                        )
                    line = lines[i]
                    i += 1
                    candidate = line.lstrip("\t") if strip_tabs else line
                    if candidate == delim:
                        break
                    body_lines.append(candidate)
                heredocs.append(Heredoc(delim, "\n".join(body_lines), strip_tabs, bool(quote)))

        instructions.append(
            Instruction(
                keyword=keyword_u,
                args=rest,
                line=start + 1,
                end_line=i,
                flags=flags,
                exec_form=exec_form,
                heredocs=heredocs,
                ignore=pending_ignore,
            )
        )
        pending_ignore = None

    return _build_stages(path, directives, instructions)


def _build_stages(
    path: Path, directives: dict[str, str], instructions: list[Instruction]
) -> Dockerfile:
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = ins.args.split()
            if not words:
                raise LintError(f"{path}:{ins.line}: FROM needs an image; e.g. FROM python:3.11")
            name = None
            if len(words) >= 3 and words[1].upper() == "AS":
                name = words[2]
            elif len(words) != 1:
                raise LintError(
                    f"{path}:{ins.line}: FROM takes 'IMAGE [AS NAME]', got {ins.args!r}"
                )
            image = words[0]
            stage = Stage(
                index=len(stages),
                image=image,
                resolved=substitute(image, global_args),
                name=name,
                from_line=ins,
            )
            for prev in stages:
                if prev.name and prev.name.lower() == stage.resolved.lower():
                    stage.parent = prev.index
            ins.stage = stage.index
            stages.append(stage)
            continue
        if not stages:
            if ins.keyword != "ARG":
                raise LintError(
                    f"{path}:{ins.line}: {ins.keyword} before the first FROM; "
                    "only ARG may come before FROM"
                )
            for name, value in parse_arg(ins.args):
                global_args[name] = value
            continue
        ins.stage = stages[-1].index
        stages[-1].instructions.append(ins)
    if not stages:
        raise LintError(f"{path}:1: no FROM instruction; a Dockerfile starts with FROM IMAGE")
    return Dockerfile(path, directives, global_args, stages, instructions)


def parse_arg(args: str) -> list[tuple[str, str | None]]:
    """``ARG A=1 B`` → ``[("A", "1"), ("B", None)]``."""
    out: list[tuple[str, str | None]] = []
    for word in _shell_words(args):
        name, eq, value = word.partition("=")
        out.append((name, value if eq else None))
    return out


def parse_env(args: str) -> list[tuple[str, str]]:
    """``ENV A=1 B="two words"`` or the legacy ``ENV A value with spaces``."""
    words = _shell_words(args)
    if words and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    out = []
    for word in words:
        name, _, value = word.partition("=")
        out.append((name, value))
    return out


def _shell_words(text: str) -> list[str]:
    import shlex

    try:
        return shlex.split(text, posix=True)
    except ValueError:
        return text.split()
