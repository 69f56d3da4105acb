"""Parse pip requirement files: we validate them before uv sees them (uv's errors are
long), and we lift their index options into IndexSettings the way pip does."""

from __future__ import annotations

import codecs
import os
import re
import shlex
import urllib.parse
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from torchslim.confined import follow
from torchslim.deps.pipconf import IndexSettings
from torchslim.errors import ConfigError
from torchslim.redact import quote

# "NAME=value" / "NAME: value" (not ==, >=, ~=, !=): a setting, never a requirement
_SETTING = re.compile(r"^\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_.-]*\s*(?::|=(?!=))")

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


# A requirement line is a name, a URL or a path: 64 KiB is none of them, and the bound
# keeps shlex (quadratic in a word's length) fast on a hostile file.
MAX_LINE = 64 << 10


@dataclass(frozen=True)
class _Line:
    number: int  # the first physical line, for "path:line"
    written: str  # as in the file: what messages quote (``${VAR}`` not expanded)
    text: str  # ``${VAR}`` expanded as pip does: what is followed and resolved


def _expand(text: str) -> str:
    """pip's ``${VAR}`` expansion (credentials in index URLs); the result is never shown."""
    return _ENV_VAR.sub(lambda m: os.environ.get(m[1], m[0]), text)


def _uncomment(text: str) -> str:
    """``text`` without its comment: ``#`` at the start or after whitespace (pip's rule).

    A scan, not a regex with ``\\s+`` before ``#``: that one backtracks quadratically on a
    long run of blanks.
    """
    i = text.find("#")
    while i != -1:
        if i == 0 or text[i - 1].isspace():
            return text[:i]
        i = text.find("#", i + 1)
    return text


def _logical_lines(path: Path, text: str) -> list[_Line]:
    """Join backslash continuations and strip comments; keep the first line number."""
    out: list[_Line] = []
    buf: list[str] = []
    size = 0
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start, size = n, 0
        size += len(raw)
        if size > MAX_LINE:
            raise ConfigError(
                f"{path}:{start}: line is longer than {MAX_LINE >> 10} KiB; a requirements "
                "file holds one requirement or option per line"
            )
        if raw.endswith("\\") and _uncomment(raw) == raw:
            buf.append(raw[:-1])
            continue
        buf.append(raw)
        joined = _uncomment("".join(buf)).strip()
        buf = []
        if joined:
            out.append(_Line(start, joined, _expand(joined)))
    if buf:
        joined = _uncomment("".join(buf)).strip()
        if joined:
            out.append(_Line(start, joined, _expand(joined)))
    return out


_NAMED_URL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(?:\[[^\]]*\])?\s*@\s*(\S.*)$")
_EXTRAS = re.compile(r"\[[^\]]*\]$")


def _file_url_path(url: str) -> str:
    """The path a ``file:`` URL names (``file:///abs``, ``file:./rel``, ``file:rel``); a
    URL naming another host gives ``//host/…``, which no build context holds."""
    parts = urllib.parse.urlsplit(url)
    path = urllib.parse.unquote(parts.path)
    if parts.netloc not in ("", "localhost"):
        return f"//{parts.netloc}{path}"
    return path


def local_path(text: str) -> str | None:
    """The local path a requirement installs (``./pkg``, ``/abs/pkg``, ``~/pkg``, ``.[gpu]``,
    ``file:`` URLs, ``name @ file:…``); None for a name or a remote URL."""
    target = text.split(";", 1)[0].strip()  # a marker is no part of the path
    if (m := _NAMED_URL.match(target)) is not None:
        target = m.group(1).strip()
    if target[:5].lower() == "file:":
        return _file_url_path(target)
    if target.startswith((".", "/", "~")):
        return _EXTRAS.sub("", target)
    return None


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
    def __init__(self, context: Path | None) -> None:
        self.context = context
        self.reqs: list[RequirementLine] = []
        self.constraints: list[Path] = []
        self.opts: dict[str, list[str]] = {}
        self.files: list[Path] = []
        self.url_origins: dict[str, str] = {}
        self.notes: list[str] = []

    def _follow(self, base: Path, value: str, line: _Line, where: str, what: str) -> Path:
        """``value`` (relative to ``base``), refused before it is read when it leaves the
        build context; the message quotes the line as written when ``${VAR}`` changed it."""
        if self.context is None:  # a caller that checked the project's files already
            return Path(os.path.normpath(base / os.path.expanduser(value))).resolve()
        shown = value if line.written == line.text else line.written
        return follow(self.context, base, value, where, what, shown)

    def parse(self, path: Path, stack: tuple[Path, ...] = ()) -> None:
        if not stack and self.context is not None:  # the top file may be a symlink out
            follow(self.context, Path.cwd(), str(path), str(path), "requirements file")
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
        for line in _logical_lines(path, text):
            self._line(path, line, (*stack, path))

    def _line(self, path: Path, line: _Line, stack: tuple[Path, ...]) -> None:
        where = f"{path}:{line.number}"
        if not line.text.startswith("-"):
            self._requirement(path, where, line)
            return
        try:
            tokens = shlex.split(line.text)
        except ValueError as exc:
            raise ConfigError(
                f"{where}: cannot parse option line {quote(line.written)} ({exc})"
            ) from None
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
        self._option(path, where, line, _VALUE_OPTS[opt], opt, value, stack)

    def _option(
        self,
        path: Path,
        where: str,
        line: _Line,
        kind: str,
        opt: str,
        value: str,
        stack: tuple[Path, ...],
    ) -> None:
        """One ``opt value`` line; every local path it names is confined before use."""
        shown = value if line.written == line.text else line.written
        if kind == "requirement":
            self.parse(self._follow(path.parent, value, line, where, "requirements file"), stack)
        elif kind == "constraint":
            cpath = self._follow(path.parent, value, line, where, "constraints file")
            if not cpath.is_file():
                raise ConfigError(f"{where}: constraints file {quote(shown)} does not exist")
            self.constraints.append(cpath)
        elif kind == "editable" and ("://" in value or "+" in value.split("/")[0]):
            raise ConfigError(
                f"{where}: editable requirement {quote(shown)} cannot go into an image; "
                "use a normal path or version requirement"
            )
        elif kind == "editable":  # `-e .`: the project itself, built into a wheel
            self._follow(path.parent, local_path(value) or value, line, where, "editable path")
            self.reqs.append(RequirementLine(value, where))
            self.notes.append(
                f"{path.name}:{line.number}: -e {shown} is installed as a normal package "
                "(an image has no source tree to link to)"
            )
        elif kind == "find-links":
            self.opts.setdefault(kind, []).append(self._links(path, value, line, where))
            self.url_origins.setdefault(value, f"{where} ({opt})")
        elif kind != "ignored":
            if kind in ("index-url", "extra-index-url") and value[:5].lower() == "file:":
                self._follow(path.parent, _file_url_path(value), line, where, "index folder")
            self.opts.setdefault(kind, []).append(value)
            if kind in ("index-url", "extra-index-url"):
                self.url_origins.setdefault(value, f"{where} ({opt})")

    def _links(self, path: Path, value: str, line: _Line, where: str) -> str:
        """A ``--find-links`` value: a URL as it is, a local folder confined and made
        absolute (pip reads it relative to the requirements file)."""
        if value[:5].lower() == "file:":
            local = _file_url_path(value)
        elif "://" in value:
            return value
        else:
            local = value
        return str(self._follow(path.parent, local, line, where, "find-links folder"))

    def _requirement(self, path: Path, where: str, line: _Line) -> None:
        text = line.text
        for opt in _PER_REQ_OPTS:  # "pkg==1 --hash=sha256:..." — keep only the requirement
            idx = text.find(f" {opt}")
            if idx != -1:
                text = text[:idx].strip()
        # Kept as written: ``torchslim deps`` lists it, and uv, which reads the file
        # itself, expands ``${VAR}`` again; the expansion is only validated here.
        written = line.written
        for opt in _PER_REQ_OPTS:
            idx = written.find(f" {opt}")
            if idx != -1:
                written = written[:idx].strip()
        shown = text if line.written == line.text else written
        if (local := local_path(text)) is not None:  # ./pkg, file:…, name @ file:…
            self._follow(path.parent, local, line, where, "local path")
            self.reqs.append(RequirementLine(written, where))
            return
        if "://" in text.split("@")[0]:
            self.reqs.append(RequirementLine(written, where))  # a direct URL
            return
        try:
            Requirement(text)
        except InvalidRequirement as exc:
            if _SETTING.match(text):  # NAME=value: an .env or config line, maybe a secret
                raise ConfigError(
                    f"{where}: this line is a NAME=value setting, not a requirement (its value "
                    "is not shown); is the right file named with -r? (a version pin is ==)"
                ) from None
            detail = str(exc).splitlines()[0]  # the next lines quote the (expanded) text
            if line.written != line.text:  # and no part of an expansion, ever
                detail = detail.split(":")[0]
            raise ConfigError(f"{where}: invalid requirement {quote(shown)}: {detail}") from None
        self.reqs.append(RequirementLine(written, where))


def read_requirements(path: Path, context: Path | None = None) -> Requirements:
    """Parse ``path`` and its includes; ConfigError names ``file:line`` on garbage.

    With ``context`` (see :func:`torchslim.confined.build_context`), every file and
    folder the lines name (``-r``, ``-c``, ``-e``, ``--find-links``, ``./pkg``, ``file:``)
    must lie inside it, and is refused before it is read. Without, they are followed as
    pip would: only for files a caller has read with a context before.
    """
    p = _Parser(context.resolve() if context is not None else None)
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


def parse_requirements(path: Path, context: Path | None = None) -> list[str]:
    """The requirement strings of ``path`` (with ``-r`` includes), in file order."""
    return [r.text for r in read_requirements(path, context).requirements]


__all__ = [
    "MAX_LINE",
    "RequirementLine",
    "Requirements",
    "local_path",
    "parse_requirements",
    "read_requirements",
]
