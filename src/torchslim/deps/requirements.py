"""Parse pip requirement files: we validate them before uv sees them (uv's errors are
long), and we lift their index options into IndexSettings the way pip does."""

from __future__ import annotations

import codecs
import os
import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from torchslim.deps.pipconf import IndexSettings
from torchslim.errors import ConfigError
from torchslim.redact import quote

# "NAME=value" / "NAME: value" (not ==, >=, ~=, !=): a setting, never a requirement
_SETTING = re.compile(r"^\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_.-]*\s*(?::|=(?!=))")

_COMMENT = re.compile(r"(^|\s+)#.*$")
_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")  # pip expands only ${UPPER_CASE} names

# Options that take a value, by every spelling pip accepts.
_VALUE_OPTS = {
    "-r": "requirement",
    "--requirement": "requirement",
    "-c": "constraint",
    "--constraint": "constraint",
    "-e": "editable",
    "--editable": "editable",
    "-i": "index-url",
    "--index-url": "index-url",
    "--extra-index-url": "extra-index-url",
    "-f": "find-links",
    "--find-links": "find-links",
    "--trusted-host": "trusted-host",
    "--only-binary": "ignored",
    "--no-binary": "ignored",
    "--use-feature": "ignored",
}
_FLAG_OPTS = {"--no-index": "no-index", "--pre": "ignored", "--prefer-binary": "ignored"}
_FLAG_OPTS["--require-hashes"] = "ignored"
# Options that may follow a requirement on its line; uv understands them too.
_PER_REQ_OPTS = ("--hash", "--config-settings", "--global-option", "-C")


@dataclass(frozen=True)
class RequirementLine:
    text: str  # the requirement, without per-line options or comments
    origin: str  # "path:line", for messages


@dataclass(frozen=True)
class Requirements:
    """Everything a requirement file (and its ``-r`` includes) says."""

    requirements: tuple[RequirementLine, ...] = ()
    constraint_files: tuple[Path, ...] = ()
    index_url: str | None = None
    no_index: bool = False
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    files: tuple[Path, ...] = ()
    # index and find-links URLs → the "path:line" that named them, for messages
    url_origins: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()  # what was read differently from pip, for the user

    def apply(self, settings: IndexSettings) -> IndexSettings:
        """Settings after this file's options, with pip's rule: a file's ``--index-url``
        replaces the configured index *and* extra indexes; its extras are appended."""
        index_url, extras = settings.index_url, settings.extra_index_urls
        if self.index_url is not None:
            index_url, extras = self.index_url, ()
        extras = extras + tuple(u for u in self.extra_index_urls if u not in extras)
        return replace(
            settings,
            index_url=index_url,
            extra_index_urls=extras,
            no_index=settings.no_index or self.no_index,
            find_links=settings.find_links + self.find_links,
            trusted_hosts=settings.trusted_hosts + self.trusted_hosts,
            constraints=settings.constraints + tuple(str(p) for p in self.constraint_files),
        )


def _logical_lines(path: Path, text: str) -> list[tuple[int, str]]:
    """Join backslash continuations and strip comments; keep the first line number."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = n
        line = raw
        if line.endswith("\\") and not _COMMENT.search(line):
            buf.append(line[:-1])
            continue
        buf.append(line)
        joined = _COMMENT.sub("", "".join(buf)).strip()
        buf = []
        if joined:
            out.append((start, _ENV_VAR.sub(lambda m: os.environ.get(m[1], m[0]), joined)))
    if buf:
        joined = _COMMENT.sub("", "".join(buf)).strip()
        if joined:
            out.append((start, joined))
    return out


def _local_or_url(value: str, base: Path) -> str:
    """pip resolves a relative find-links path against the requirement file if it exists."""
    if "://" in value:
        return value
    candidate = base / value
    return str(candidate.resolve()) if candidate.exists() else value


# `pip freeze > requirements.txt` in PowerShell writes UTF-16 with a BOM; pip reads it.
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _decode(data: bytes) -> str:
    """A requirements file's text: the encoding its BOM names, else UTF-8 (as pip does)."""
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "utf-8")
    return data.decode(encoding)


class _Parser:
    def __init__(self) -> None:
        self.reqs: list[RequirementLine] = []
        self.constraints: list[Path] = []
        self.opts: dict[str, list[str]] = {}
        self.files: list[Path] = []
        self.url_origins: dict[str, str] = {}
        self.notes: list[str] = []

    def parse(self, path: Path, stack: tuple[Path, ...] = ()) -> None:
        path = path.resolve()
        if path in stack:
            chain = " -> ".join(p.name for p in (*stack, path))
            raise ConfigError(f"{stack[-1]}: requirement files include each other ({chain})")
        try:
            text = _decode(path.read_bytes())
        except FileNotFoundError:
            where = f"{stack[-1]}: " if stack else ""
            raise ConfigError(f"{where}requirements file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read requirements file ({exc})") from None
        self.files.append(path)
        for lineno, line in _logical_lines(path, text):
            self._line(path, lineno, line, (*stack, path))

    def _line(self, path: Path, lineno: int, line: str, stack: tuple[Path, ...]) -> None:
        where = f"{path}:{lineno}"
        if not line.startswith("-"):
            self._requirement(where, line)
            return
        try:
            tokens = shlex.split(line)
        except ValueError as exc:
            raise ConfigError(f"{where}: cannot parse option line {quote(line)} ({exc})") from None
        opt, value = tokens[0], None
        if "=" in opt and opt.startswith("--"):
            opt, value = opt.split("=", 1)
        elif opt[:2] in _VALUE_OPTS and len(opt) > 2 and not opt.startswith("--"):
            opt, value = opt[:2], opt[2:]  # "-rfile.txt"
        if opt in _FLAG_OPTS:
            self.opts.setdefault(_FLAG_OPTS[opt], []).append("1")
            return
        if opt not in _VALUE_OPTS:
            raise ConfigError(
                f"{where}: unsupported option {opt!r} in a requirements file; "
                "remove it or move it to pip.conf"
            )
        if value is None:
            if len(tokens) < 2:
                raise ConfigError(f"{where}: option {opt} needs a value")
            value = tokens[1]
        kind = _VALUE_OPTS[opt]
        if kind == "requirement":
            self.parse(path.parent / value, stack)
        elif kind == "constraint":
            cpath = (path.parent / value).resolve()
            if not cpath.is_file():
                raise ConfigError(f"{where}: constraints file {cpath} does not exist")
            self.constraints.append(cpath)
        elif kind == "editable" and ("://" in value or "+" in value.split("/")[0]):
            raise ConfigError(
                f"{where}: editable requirement {quote(value)} cannot go into an image; "
                "use a normal path or version requirement"
            )
        elif kind == "editable":  # `-e .`: the project itself, built into a wheel
            self.reqs.append(RequirementLine(value, where))
            self.notes.append(
                f"{path.name}:{lineno}: -e {value} is installed as a normal package "
                "(an image has no source tree to link to)"
            )
        elif kind == "find-links":
            self.opts.setdefault(kind, []).append(_local_or_url(value, path.parent))
            self.url_origins.setdefault(value, f"{where} ({opt})")
        elif kind != "ignored":
            self.opts.setdefault(kind, []).append(value)
            if kind in ("index-url", "extra-index-url"):
                self.url_origins.setdefault(value, f"{where} ({opt})")

    def _requirement(self, where: str, line: str) -> None:
        text = line
        for opt in _PER_REQ_OPTS:  # "pkg==1 --hash=sha256:..." — keep only the requirement
            idx = text.find(f" {opt}")
            if idx != -1:
                text = text[:idx].strip()
        if "://" in text.split("@")[0] or text.startswith((".", "/", "~")):
            self.reqs.append(RequirementLine(text, where))  # direct URL or local path
            return
        try:
            Requirement(text)
        except InvalidRequirement as exc:
            if _SETTING.match(text):  # NAME=value: an .env or config line, maybe a secret
                raise ConfigError(
                    f"{where}: this line is a NAME=value setting, not a requirement (its value "
                    "is not shown); is the right file named with -r? (a version pin is ==)"
                ) from None
            detail = str(exc).splitlines()[0]
            raise ConfigError(f"{where}: invalid requirement {quote(text)}: {detail}") from None
        self.reqs.append(RequirementLine(text, where))


def read_requirements(path: Path) -> Requirements:
    """Parse ``path`` and its includes; ConfigError names ``file:line`` on garbage."""
    p = _Parser()
    p.parse(path)
    index = p.opts.get("index-url", [])
    return Requirements(
        requirements=tuple(p.reqs),
        constraint_files=tuple(p.constraints),
        index_url=index[-1] if index else None,
        no_index="no-index" in p.opts,
        extra_index_urls=tuple(p.opts.get("extra-index-url", [])),
        find_links=tuple(p.opts.get("find-links", [])),
        trusted_hosts=tuple(p.opts.get("trusted-host", [])),
        files=tuple(p.files),
        url_origins=tuple(p.url_origins.items()),
        notes=tuple(p.notes),
    )


def parse_requirements(path: Path) -> list[str]:
    """The requirement strings of ``path`` (with ``-r`` includes), in file order."""
    return [r.text for r in read_requirements(path).requirements]


__all__ = ["RequirementLine", "Requirements", "parse_requirements", "read_requirements"]
