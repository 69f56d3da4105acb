"""Which Python module an image's ``cmd`` starts, and how the proof checks it without running it.

``entry_from_cmd(cmd, workdir)`` reads the command the way the runtime would and
returns an ``EntryPoint``. The proof then checks it inside the image, with the
working directory on ``sys.path`` (as ``python -m`` and the servers put it there):

- ``uvicorn`` / ``hypercorn`` / ``granian`` / ``daphne`` / ``gunicorn`` /
  ``waitress-serve`` ``pkg.mod:app``
  (console script or ``python -m``): ``pkg.mod`` is imported and the attribute
  ``app`` must exist (``pkg:create_app()`` → ``create_app`` must exist; it is not
  called). gunicorn's bare ``pkg.mod`` means ``pkg.mod:application``. ``--app-dir``,
  ``--chdir`` and ``--pythonpath`` add to ``sys.path``. No APP argument (a config
  file names it): nothing is imported, and the result says so.
- ``python -m pkg.mod``: ``pkg.mod`` is found (``importlib.util.find_spec``, which
  imports its parent packages) and compiled, never executed, since running it
  would start the server; every module its top level imports is found as for a
  script. A package means its ``__main__``. ``python -m uvicorn …`` also checks
  that ``uvicorn`` is found.
- ``python app.py``: the script is compiled (a syntax error names file and line)
  and every module its top level imports (``import a.b``, ``from a.b import c``:
  ``a.b``) is found with ``find_spec``, which imports the parent packages as the
  import would, the script's directory first on ``sys.path``; it is not run.
- ``python -c CODE``: the same, for CODE.
- ``fastapi run|dev [FILE] [--app NAME]``: FILE (default: the first of main.py,
  app.py, api.py, app/main.py, app/app.py, app/api.py in the working directory)
  becomes a module by walking up the directories holding ``__init__.py``; it is
  imported and ``NAME`` (default ``app`` or ``api``) must exist. ``--entrypoint
  pkg.mod:app`` is the same as uvicorn's form.
- ``flask --app X run`` (or ``FLASK_APP``; default ``wsgi`` or ``app`` in the working
  directory): X is ``pkg``, ``pkg:app``, ``pkg:create_app()`` or a ``.py`` path;
  the module is imported and the named attribute (default one of ``app``,
  ``application``, ``create_app``, ``make_app``) must exist.
- Wrappers ``env [NAME=VALUE…]``, ``tini [--]`` and ``dumb-init`` are looked through.
- Anything else (``sh -c``, a compiled server, ``torchserve``): no Python entry;
  only that ``cmd[0]`` is on the image's PATH is checked.

A failure is one line: the module, the exception and the file and line it came from.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any, Literal

EntryKind = Literal["app", "module", "script", "code", "file", "none"]

SERVERS = ("uvicorn", "hypercorn", "granian", "daphne", "gunicorn", "waitress-serve")
# `python -m NAME` of a server whose console script is named otherwise
_SERVER_MODULES = {"waitress": "waitress-serve"}
_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_APP_SPEC = re.compile(rf"^({_DOTTED}):({_DOTTED})(\(.*\))?$")
_MODULE = re.compile(rf"^{_DOTTED}$")
# Options of the servers whose value could look like an APP argument (unix:sock …).
_VALUE_OPTIONS = {
    "-b", "--bind", "--uds", "--fd", "-k", "--worker-class", "-c", "--config", "--host",
    "--port", "-p", "--interface", "--log-config", "--env-file", "--root-path", "-u",
    "--user", "-g", "--group", "-w", "--workers", "--loop", "--http", "--ws", "--lifespan",
    "--log-level", "-n", "--name", "-e", "--env", "--access-logfile", "--error-logfile",
    "--timeout", "-t", "--threads",
}  # fmt: skip
_PATH_OPTIONS = {"--app-dir", "--chdir", "--pythonpath"}
_PY_FLAGS_WITH_VALUE = {"X", "W"}
_WRAPPERS = {"env", "tini", "tini-static", "dumb-init"}
FASTAPI_DEFAULT_FILES = ("main.py", "app.py", "api.py", "app/main.py", "app/app.py", "app/api.py")
FLASK_DEFAULT_ATTRS = ("app", "application", "create_app", "make_app")


@dataclass(frozen=True)
class EntryPoint:
    """What to check of the app's entry: see the module docstring for the rules."""

    kind: EntryKind
    module: str | None = None  # dotted name (app, module)
    attrs: tuple[str, ...] = ()  # one of these must exist on the module (app, file)
    path: str | None = None  # absolute in the image (script, file); None: search candidates
    candidates: tuple[str, ...] = ()  # file: the first that exists is the entry
    code: str | None = None  # python -c
    sys_path: tuple[str, ...] = ()  # directories put first on sys.path
    runner: str | None = None  # a module that must be found too (python -m uvicorn)
    note: str | None = None  # why nothing is checked (kind none)

    def describe(self) -> str:
        """``service.main:app``, ``module pkg.mod``, ``script /app/app.py`` …"""
        if self.kind == "app":
            return f"{self.module}:{'|'.join(self.attrs)}" if self.attrs else str(self.module)
        if self.kind == "module":
            return f"module {self.module}"
        if self.kind == "script":
            return f"script {self.path}"
        if self.kind == "code":
            return "python -c code"
        if self.kind == "file":
            return f"app file {self.path or ' or '.join(self.candidates)}"
        return "none"

    def proven_as(self) -> str:
        """What passing means, for the summary: ``imports`` or ``compiles`` (never run)."""
        return "imports" if self.kind in ("app", "file") else "compiles and its imports load"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "module": self.module,
            "attrs": list(self.attrs),
            "path": self.path,
            "candidates": list(self.candidates),
            "code": self.code,
            "sys_path": list(self.sys_path),
            "runner": self.runner,
            "note": self.note,
        }


def _strip_wrappers(cmd: list[str]) -> list[str]:
    args = list(cmd)
    while args and posixpath.basename(args[0]) in _WRAPPERS:
        wrapper = posixpath.basename(args.pop(0))
        while args and (
            (wrapper == "env" and ("=" in args[0] or args[0].startswith("-")))
            or (wrapper != "env" and args[0].startswith("-"))
        ):
            done = args.pop(0) == "--"
            if done:
                break
    return args


def _join(workdir: str, path: str) -> str:
    return posixpath.normpath(posixpath.join(workdir or "/", path))


def _server(name: str, args: list[str], workdir: str, runner: str | None) -> EntryPoint:
    sys_path: list[str] = []
    positional: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        opt, eq, value = arg.partition("=")
        if opt in _PATH_OPTIONS:
            given = value if eq else (args[i + 1] if i + 1 < len(args) else "")
            sys_path += [_join(workdir, p) for p in given.split(",") if p]
            skip = not eq
        elif opt in _VALUE_OPTIONS:
            skip = not eq
        elif not arg.startswith("-"):
            positional.append(arg)
    for arg in positional:
        m = _APP_SPEC.match(arg)
        if m:
            attr = m.group(2)
            return EntryPoint("app", m.group(1), (attr,), sys_path=tuple(sys_path), runner=runner)
    if name == "gunicorn" and positional and _MODULE.match(positional[-1]):
        mod = positional[-1]
        return EntryPoint("app", mod, ("application",), sys_path=tuple(sys_path), runner=runner)
    return EntryPoint(
        "none", runner=runner, note=f"{name} is given no APP argument (a config file?)"
    )


def _app_ref(value: str, workdir: str, default_attrs: tuple[str, ...]) -> EntryPoint:
    """``pkg``, ``pkg:app``, ``pkg:factory()`` or a ``.py`` path (flask --app, fastapi)."""
    ref, _, attr = value.partition(":")
    attrs = (attr.split("(")[0],) if attr else default_attrs
    if ref.endswith(".py") or "/" in ref:
        path = ref if ref.endswith(".py") else ref + "/__init__.py"
        return EntryPoint("file", path=_join(workdir, path), attrs=attrs)
    return EntryPoint("app", ref, attrs)


def _fastapi(args: list[str], workdir: str, runner: str | None) -> EntryPoint:
    attrs: tuple[str, ...] = ("app", "api")
    path: str | None = None
    it = iter(args[1:] if args and args[0] in ("run", "dev") else args)
    for arg in it:
        opt, eq, value = arg.partition("=")
        if opt == "--entrypoint":
            ref = value if eq else next(it, "")
            m = _APP_SPEC.match(ref)
            if m:
                return EntryPoint("app", m.group(1), (m.group(2),), runner=runner)
        elif opt == "--app":
            attrs = (value if eq else next(it, "app"),)
        elif opt.startswith("-"):
            if (
                opt in ("--host", "--port", "--root-path", "--workers", "--proxy-headers")
                and not eq
            ):
                next(it, None)
        elif path is None:
            path = arg
    if path is None:
        defaults = tuple(_join(workdir, p) for p in FASTAPI_DEFAULT_FILES)
        return EntryPoint("file", candidates=defaults, attrs=attrs, runner=runner)
    return EntryPoint("file", path=_join(workdir, path), attrs=attrs, runner=runner)


def _flask(args: list[str], workdir: str, env: dict[str, str], runner: str | None) -> EntryPoint:
    app = env.get("FLASK_APP")
    it = iter(args)
    for arg in it:
        opt, eq, value = arg.partition("=")
        if opt in ("--app", "-A"):
            app = value if eq else next(it, None)
    if not app:
        return EntryPoint(
            "file",
            candidates=(_join(workdir, "wsgi.py"), _join(workdir, "app.py")),
            attrs=FLASK_DEFAULT_ATTRS,
            runner=runner,
        )
    found = _app_ref(app, workdir, FLASK_DEFAULT_ATTRS)
    return EntryPoint(found.kind, found.module, found.attrs, path=found.path, runner=runner)


def _python(args: list[str], workdir: str, env: dict[str, str]) -> EntryPoint:
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        if arg.startswith("--"):  # --check-hash-based-pycs MODE, --help …
            i += 2 if arg == "--check-hash-based-pycs" else 1
            continue
        for j, flag in enumerate(arg[1:], start=1):
            rest = arg[j + 1 :]
            if flag in ("m", "c"):
                value = rest or (args[i + 1] if i + 1 < len(args) else "")
                after = args[i + 1 :] if rest else args[i + 2 :]
                return _python_mode(flag, value, after, workdir, env)
            if flag in _PY_FLAGS_WITH_VALUE:
                i += 0 if rest else 1
                break
        i += 1
    if i < len(args) and args[i] == "--":
        i += 1
    if i >= len(args) or args[i] == "-":
        return EntryPoint("none", note="python reads its program from stdin; nothing to import")
    path = _join(workdir, args[i])
    return EntryPoint("script", path=path, sys_path=(posixpath.dirname(path),))


def _python_mode(
    flag: str, value: str, after: list[str], workdir: str, env: dict[str, str]
) -> EntryPoint:
    if flag == "c":
        return EntryPoint("code", code=value)
    if value in SERVERS or value in _SERVER_MODULES:
        return _server(_SERVER_MODULES.get(value, value), after, workdir, runner=value)
    if value == "flask":
        return _flask(after, workdir, env, runner="flask")
    if value == "fastapi":
        return _fastapi(after, workdir, runner="fastapi")
    return EntryPoint("module", value)


def entry_from_cmd(cmd: list[str], workdir: str, env: dict[str, str] | None = None) -> EntryPoint:
    """The entry ``cmd`` starts (rules in the module docstring); ``env`` gives FLASK_APP."""
    env = env or {}
    args = _strip_wrappers(cmd)
    if not args:
        return EntryPoint("none", note="cmd is empty")
    name = posixpath.basename(args[0])
    if _PYTHON.match(name):
        return _python(args[1:], workdir, env)
    if name in SERVERS:
        return _server(name, args[1:], workdir, runner=None)
    if name == "fastapi":
        return _fastapi(args[1:], workdir, runner=None)
    if name == "flask":
        return _flask(args[1:], workdir, env, runner=None)
    return EntryPoint("none", note=f"{name} is not a Python entry torchslim knows")
