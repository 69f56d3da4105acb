"""A Dockerfile's command as a torchslim image runs it: no shell, no init, no conda.

The image has neither a shell nor tini, and Python lives on PATH, so ``init`` takes
the command inside the usual wrappers:

* ``tini --`` / ``dumb-init`` prefixes become ``init = "auto"``: the build adds Debian's
  tini (which forwards SIGTERM to a command that ignores it as PID 1) unless the served
  proof shows the command stops on SIGTERM by itself;
* ``bash -c "source activate ENV && exec python x.py"`` and ``conda run -n ENV …``
  become the command after the activation;
* a shell script whose effect is ``exec CMD …`` (its last ``exec`` line, with ``$VAR`` /
  ``${VAR:-default}`` from the script's own assignments, its defaults or the
  Dockerfile's ENV) becomes that command;
* paths under the Dockerfile's WORKDIR move to the image's app folder, /app.

What it cannot translate gives no command and one note saying what to write instead.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

APP = "/app"
_INITS = {"tini", "tini-static", "dumb-init"}
_SHELLS = {"sh", "bash", "dash", "zsh"}
_ACTIVATE = {"source", "."}
_VAR = re.compile(r"\$\{(\w+)(?::?([-=])([^}]*))?\}|\$(\w+)")
_ASSIGN = re.compile(r"^(?:export\s+)?(\w+)=(.*)$")
_DEFAULT = re.compile(r"^:\s+\"?\$\{(\w+):?=([^}]*)\}\"?$")
_NO_SHELL = "the image has no shell"


@dataclass
class Entry:
    cmd: list[str] | None  # None: not translatable (see notes)
    notes: list[str] = field(default_factory=list)
    init: str | None = None  # the init the command ran under (tini, dumb-init), if any


def _base(word: str) -> str:
    return posixpath.basename(word)


def _drop_init(argv: list[str]) -> list[str]:
    """``tini -g -- cmd`` / ``dumb-init --rewrite 15:2 cmd`` → ``cmd``."""
    rest = argv[1:]
    if "--" in rest:
        return rest[rest.index("--") + 1 :]
    while rest and rest[0].startswith("-"):
        takes_value = rest[0] in ("-r", "--rewrite", "-p", "-s", "-e", "-l")
        rest = rest[2:] if takes_value else rest[1:]
    return rest


def _conda_run(argv: list[str]) -> list[str] | None:
    """``conda run -n ENV --no-capture-output cmd …`` → ``cmd …``."""
    if len(argv) < 2 or _base(argv[0]) not in ("conda", "mamba", "micromamba") or argv[1] != "run":
        return None
    rest = argv[2:]
    while rest and rest[0].startswith("-"):
        takes_value = rest[0] in ("-n", "--name", "-p", "--prefix", "--cwd")
        rest = rest[2:] if takes_value and "=" not in rest[0] else rest[1:]
    return rest or None


def _split_script(text: str) -> list[list[str]] | None:
    """``a && b; c`` → ``[[a…], [b…], [c…]]``; None when it needs more of a shell
    (pipes, redirections, subshells, conditionals)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    out: list[list[str]] = [[]]
    try:
        for token in lexer:
            if token in ("&&", ";"):
                out.append([])
            elif token and set(token) <= set(";&|<>()"):
                return None
            else:
                out[-1].append(token)
    except ValueError:
        return None
    parts = [p for p in out if p]
    if any(p[0] in ("if", "for", "while", "case") for p in parts):
        return None
    return parts


def _is_setup(argv: list[str]) -> bool:
    """Commands of a wrapper that only prepare the environment conda-style."""
    name = _base(argv[0])
    if name in _ACTIVATE and len(argv) >= 2 and _base(argv[1]) in ("activate", "conda.sh"):
        return True
    return name in ("conda", "mamba", "micromamba") and argv[1:2] == ["activate"]


def _shell_c(argv: list[str]) -> tuple[list[list[str]], str] | None:
    """``bash -lc "script"`` → (its commands, the script)."""
    if len(argv) < 3 or _base(argv[0]) not in _SHELLS:
        return None
    flags = argv[1]
    if not (flags.startswith("-") and "c" in flags):
        return None
    parts = _split_script(argv[2])
    return (parts, argv[2]) if parts is not None else ([], argv[2])


def _exec_of(parts: list[list[str]]) -> list[str] | None:
    """The one command of a wrapper script once its activation lines are dropped."""
    run = [p for p in parts if not _is_setup(p)]
    if len(run) != 1:
        return None
    argv = run[0]
    return argv[1:] if argv[0] == "exec" else argv


def _expand(word: str, values: Mapping[str, str]) -> str | None:
    """``$VAR`` / ``${VAR}`` / ``${VAR:-default}`` from ``values``; None when unknown."""
    missing = False

    def one(m: re.Match[str]) -> str:
        nonlocal missing
        name = m[1] or m[4]
        if name in values and (values[name] or m[2] is None):
            return values[name]
        if m[2] is not None:
            return m[3]
        missing = True
        return ""

    out = _VAR.sub(one, word)
    return None if missing else out


def script_exec(text: str, args: list[str], env: Mapping[str, str]) -> list[str] | None:
    """The command a shell script ends in (its last ``exec`` line), words expanded;
    None when that needs a shell (no exec line, a pipe, a variable it cannot know)."""
    values = dict(env)
    last: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if m := _DEFAULT.match(line):
            values.setdefault(m[1], m[2])
        elif m := _ASSIGN.match(line):
            words = _split_script(m[2])
            value = " ".join(words[0]) if words else ""
            expanded = _expand(value, values)
            if expanded is not None:
                values[m[1]] = expanded
        elif line.startswith("exec "):
            last = line[len("exec ") :]
    if last is None:
        return None
    parts = _split_script(last)
    if parts is None or len(parts) != 1:
        return None
    out: list[str] = []
    for word in parts[0]:
        if word in ("$@", "${@}", "$*"):
            out += args
            continue
        expanded = _expand(word, values)
        if expanded is None:
            return None
        out.append(expanded)
    return out


def _script_path(root: Path, word: str, workdir: str) -> Path | None:
    """The project file a script path of the image names (``/app/run.sh``, ``./run.sh``)."""
    rel = word
    for prefix in (workdir.rstrip("/") + "/" if workdir else "", "/app/", "./"):
        if prefix and rel.startswith(prefix):
            rel = rel[len(prefix) :]
            break
    candidates = [root / rel.lstrip("/"), root / posixpath.basename(word)]
    root_resolved = root.resolve()
    for path in candidates:
        if path.is_file() and path.resolve().is_relative_to(root_resolved):
            return path
    return None


def _is_script(argv: list[str], root: Path, workdir: str) -> tuple[Path, list[str]] | None:
    """(the script, its arguments) when ``argv`` runs a shell script of the project."""
    if _base(argv[0]) in _SHELLS and len(argv) >= 2 and not argv[1].startswith("-"):
        argv = argv[1:]
    path = _script_path(root, argv[0], workdir)
    if path is None:
        return None
    with path.open("rb") as fh:
        head = fh.read(128)
    shebang = re.match(rb"#!\s*(\S+)(?:\s+(\S+))?", head)
    interpreter = ""
    if shebang:
        interpreter = _base(
            (
                shebang[2] if _base(shebang[1].decode()) == "env" and shebang[2] else shebang[1]
            ).decode()
        )
    if interpreter in _SHELLS or (not shebang and path.suffix == ".sh"):
        return path, argv[1:]
    return None


def _map_workdir(argv: list[str], workdir: str, where: str, notes: list[str]) -> list[str]:
    workdir = workdir.rstrip("/")
    if not workdir or workdir == APP:
        return argv
    out = []
    for word in argv:
        if word == workdir or word.startswith(workdir + "/"):
            moved = APP + word[len(workdir) :]
            notes.append(
                f"{where}: {word} is under WORKDIR {workdir}; the image's app folder is "
                f"{APP}, so it becomes {moved}"
            )
            word = moved
        out.append(word)
    return out


def unwrap(
    argv: list[str], root: Path, *, workdir: str, env: Mapping[str, str], where: str
) -> Entry:
    """``argv`` (a Dockerfile's command) as the command the image runs directly."""
    notes: list[str] = []
    init: str | None = None
    for _ in range(8):  # wrappers nest: tini -- bash -c "… exec conda run …"
        if not argv:
            break
        name = _base(argv[0])
        if name in _INITS:
            init = name.removesuffix("-static")
            notes.append(
                f'{where}: {name} → init = "auto" (the build adds Debian\'s tini unless the '
                "served proof shows the service stops on SIGTERM as PID 1, and says which)"
            )
            argv = _drop_init(argv)
            continue
        if (inner := _conda_run(argv)) is not None:
            notes.append(
                f"{where}: `{' '.join(argv[:4])} …` dropped: the image has one environment"
            )
            argv = inner
            continue
        if (shell := _shell_c(argv)) is not None:
            parts, script = shell
            found = _exec_of(parts)
            if found is None:
                notes.append(
                    f"{where}: {shlex.quote(script)} needs a shell and {_NO_SHELL}: write the "
                    'command it runs as `cmd` (exec form), e.g. cmd = ["python3", "serve.py"]'
                )
                return Entry(None, notes, init)
            notes.append(
                f"{where}: runs {shlex.join(found)} without {shlex.join(argv[:2])} ({_NO_SHELL})"
            )
            argv = found
            continue
        if (run := _is_script(argv, root, workdir)) is not None:
            path, args = run
            rel = path.relative_to(root).as_posix()
            text = path.read_text(encoding="utf-8", errors="replace")
            found = script_exec(text, args, env)
            if found is None:
                notes.append(
                    f"{where}: {rel} is a shell script and {_NO_SHELL}; write the command it "
                    'starts as `cmd` (exec form, e.g. cmd = ["gunicorn", "-b", '
                    '"0.0.0.0:8000", "app:app"]), or pass it: torchslim init --cmd \'…\''
                )
                return Entry(None, notes, init)
            notes.append(
                f"{where}: {rel} ends in `exec {shlex.join(found)}`: that is the command "
                f"({_NO_SHELL})"
            )
            argv = found
            continue
        break
    return Entry(_map_workdir(argv, workdir, where, notes), notes, init)


__all__ = ["Entry", "script_exec", "unwrap"]
