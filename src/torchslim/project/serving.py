"""Serving frameworks' defaults, for ``init``: the port, health path and listen address
of the framework a command starts, each with where it came from.

* Gradio (a script that imports ``gradio``): port 7860 (``launch(server_port=…)``, the
  Space's ``app_port``), health ``/``; Gradio listens on 127.0.0.1 unless
  ``GRADIO_SERVER_NAME=0.0.0.0``, which init sets (with ``GRADIO_SERVER_PORT``).
* Streamlit (``streamlit run app.py``): port 8501, health ``/_stcore/health``; init adds
  ``--server.address 0.0.0.0 --server.port P --server.headless true``.
* LitServe: port from ``server.run(port=…)`` or 8000, health ``/health``.
* BentoML (``bentoml serve``): port 3000, health ``/healthz``.
* Ray Serve (``serve run``): port 8000, health ``/-/healthz``; it listens on 127.0.0.1
  unless ``RAY_SERVE_DEFAULT_HTTP_HOST=0.0.0.0``, which init sets.
* TorchServe: not supported (a Java frontend; the image has no JVM), said in one line.
* A script that reads its port from a ``PORT``-style variable
  (``int(os.environ.get("PORT", 8000))``): the default is the port, and init sets the
  variable to it.
* uvicorn, gunicorn, hypercorn, granian and ``flask run`` listen on 127.0.0.1 unless told:
  init adds ``--host 0.0.0.0`` (``--bind 0.0.0.0:PORT``), with a note.
"""

from __future__ import annotations

import ast
import posixpath
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from torchslim.confined import escape_problem
from torchslim.errors import ConfigError
from torchslim.project.dockerfile_facts import Found
from torchslim.project.spaces import Space
from torchslim.proof.entry import entry_from_cmd

MAX_SOURCE = 1 << 20  # an entry module larger than this is not read
_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
_WRAPPERS = {"env", "tini", "tini-static", "dumb-init"}
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
_PORT_VAR = re.compile(r"^(?:(?:APP|SERVER|SERVICE|HTTP|API|WEB|LISTEN)_)?PORT$")
_HOST_FLAG = {"uvicorn": "--host", "granian": "--host", "flask": "--host"}
_BIND_FLAG = {"gunicorn": "--bind", "hypercorn": "--bind"}
_DEFAULT_PORT = {"uvicorn": 8000, "granian": 8000, "gunicorn": 8000, "hypercorn": 8000,
                 "flask": 5000}  # fmt: skip
_HOST_ENV = {"uvicorn": "UVICORN_HOST", "granian": "GRANIAN_HOST", "flask": "FLASK_RUN_HOST",
             "gunicorn": "GUNICORN_CMD_ARGS"}  # fmt: skip
_BENTOFILE = re.compile(r"""^service:\s*["']?([\w.]+:[\w.]+)["']?""", re.MULTILINE)
_BENTO_CLASS = re.compile(r"^@bentoml\.service\b[^\n]*\n(?:@[^\n]*\n)*class\s+(\w+)", re.M)
_HANDLER = re.compile(r"\bclass\s+\w+\(\s*(?:\w+\.)*BaseHandler\s*\)|^from\s+ts\.", re.M)


@dataclass
class Serving:
    """What init learns from the framework ``cmd`` starts."""

    cmd: list[str]
    framework: str | None = None
    cmd_note: str = ""  # why cmd changed ("" when it did not)
    port: Found[int] | None = None
    health: Found[str] | None = None
    env: dict[str, Found[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Code:
    """The facts of one Python file that the defaults depend on."""

    rel: str
    imports: dict[str, int]  # top-level package → first line importing it
    calls: list[tuple[str, int, dict[str, object]]]  # "demo.launch", line, literal kwargs
    port_vars: list[tuple[str, int | None, int]]  # ("PORT", default, line)


# ------------------------------------------------------------------ reading code


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _port_read(node: ast.AST) -> tuple[str, int | None] | None:
    """``os.environ.get("PORT", 8000)`` / ``os.getenv("PORT", "8000")`` / ``os.environ["PORT"]``
    → ("PORT", 8000); None for anything else."""
    name: object = None
    default: object = None
    if isinstance(node, ast.Call) and _dotted(node.func).endswith(("environ.get", "getenv")):
        args = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
        name, default = (args + [None, None])[:2]
    elif isinstance(node, ast.Subscript) and _dotted(node.value).endswith("environ"):
        name = node.slice.value if isinstance(node.slice, ast.Constant) else None
    if not isinstance(name, str) or not _PORT_VAR.match(name):
        return None
    text = str(default) if default is not None else ""
    return name, int(text) if text.isdigit() else None


def _literal(node: ast.expr) -> object:
    """A keyword's value: a literal, a PORT-style read inside it (a tuple), else ``...``."""
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return next((r for sub in ast.walk(node) if (r := _port_read(sub))), ...)


def read_code(root: Path, rel: str) -> Code | None:
    """The imports, calls and PORT-style reads of ``rel``; None when it does not parse."""
    if not _inside(root, rel):
        return None
    try:
        tree = ast.parse(_head(root / rel))
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    imports: dict[str, int] = {}
    calls: list[tuple[str, int, dict[str, object]]] = []
    port_vars: list[tuple[str, int | None, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                imports.setdefault(alias.name.split(".")[0], node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imports.setdefault(node.module.split(".")[0], node.lineno)
        if isinstance(node, ast.Call):
            kwargs = {k.arg: _literal(k.value) for k in node.keywords if k.arg}
            calls.append((_dotted(node.func), node.lineno, kwargs))
        if isinstance(node, (ast.Call, ast.Subscript)) and (read := _port_read(node)):
            port_vars.append((*read, node.lineno))
    port_vars.sort(key=lambda v: v[2])
    calls.sort(key=lambda c: c[1])
    return Code(rel, dict(sorted(imports.items(), key=lambda i: i[1])), calls, port_vars)


def _head(path: Path) -> str:
    """The first MAX_SOURCE bytes of a project file, as text."""
    with path.open("rb") as f:
        return f.read(MAX_SOURCE).decode("utf-8", errors="replace")


def _inside(root: Path, rel: str) -> bool:
    """``rel`` is a file of the project (no ``..`` or symlink out of it)."""
    return escape_problem(root, "cmd", rel) is None and (root / rel).is_file()


def _import_dirs(env: Mapping[str, str]) -> list[str]:
    """The project folders the image's Python imports from: /app and PYTHONPATH's /app/…"""
    paths = [p for p in env.get("PYTHONPATH", "").split(":") if p.startswith("/app")]
    return [".", *(p.removeprefix("/app").strip("/") or "." for p in paths)]


def _module_file(root: Path, module: str, dirs: list[str]) -> str | None:
    parts = module.split(".")
    for folder in dirs:
        base = posixpath.join(folder, *parts) if folder != "." else posixpath.join(*parts)
        for rel in (f"{base}.py", f"{base}/__main__.py", f"{base}/__init__.py"):
            if _inside(root, rel):
                return posixpath.normpath(rel)
    return None


def _strip(cmd: list[str]) -> list[str]:
    args = list(cmd)
    while args and posixpath.basename(args[0]) in _WRAPPERS:
        args = [a for a in args[1:] if a != "--"] if args[0] != "env" else args[1:]
        while args and "=" in args[0] and not args[0].startswith("-"):
            args = args[1:]
    return args


def _tool(cmd: list[str]) -> tuple[str, int] | None:
    """The console script a command runs, and its index: ``python3 -m streamlit`` → 2."""
    args = _strip(cmd)
    offset = len(cmd) - len(args)
    if not args:
        return None
    name = posixpath.basename(args[0])
    if _PYTHON.match(name) and len(args) > 2 and args[1] == "-m":
        return args[2], offset + 2
    return name, offset


def entry_file(root: Path, cmd: list[str], env: Mapping[str, str]) -> str | None:
    """The project file (relative to ``root``) that ``cmd`` starts, when it is one."""
    dirs = [*_import_dirs(env), "src"]
    tool = _tool(cmd)
    args = cmd[tool[1] + 1 :] if tool else []
    target = next((a for a in args if not a.startswith("-")), None)
    if tool and tool[0] == "streamlit" and args[:1] == ["run"] and len(args) > 1:
        return args[1] if _inside(root, args[1]) else None
    if tool and tool[0] in ("bentoml", "serve") and target in ("serve", "run"):
        ref = next((a for a in args[1:] if not a.startswith("-")), "")
        return _module_file(root, ref.split(":")[0], dirs) if ref else None
    entry = entry_from_cmd(cmd, "/app", dict(env))
    if entry.kind == "script" and entry.path and entry.path.startswith("/app/"):
        rel = entry.path.removeprefix("/app/")
        return rel if _inside(root, rel) else None
    if entry.kind in ("app", "module") and entry.module:
        return _module_file(root, entry.module, dirs)
    return None


def imported_packages(root: Path, rel: str, env: Mapping[str, str]) -> dict[str, str]:
    """Top-level packages ``rel`` imports, and those of the project modules it imports in
    turn (at most 200 files): package → "file:line" of its first import."""
    dirs = [*_import_dirs(env), posixpath.dirname(rel) or "."]
    found: dict[str, str] = {}
    todo, seen = [rel], {rel}
    while todo and len(seen) <= 200:
        code = read_code(root, todo.pop(0))
        for top, line in (code.imports if code else {}).items():
            local = _module_file(root, top, dirs)
            if local is None:
                found.setdefault(top, f"{code.rel if code else rel}:{line}")
            elif local not in seen:
                seen.add(local)
                todo.append(local)
    return found


# ------------------------------------------------------------------ commands


def _flag_value(args: list[str], flag: str) -> tuple[int, str] | None:
    """(index of the value, value) of ``--flag V`` / ``--flag=V``."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return i + 1, args[i + 1]
        if arg.startswith(flag + "="):
            return i, arg[len(flag) + 1 :]
    return None


def _set_flag(args: list[str], flag: str, value: str) -> list[str]:
    found = _flag_value(args, flag)
    if found is None:
        cut = args.index("--") if "--" in args else len(args)
        return [*args[:cut], flag, value, *args[cut:]]
    i, _ = found
    out = list(args)
    out[i] = value if out[i] != f"{flag}={found[1]}" else f"{flag}={value}"
    return out


def listen_everywhere(
    cmd: list[str], port: int, env: Mapping[str, str], root: Path
) -> tuple[list[str], str]:
    """uvicorn/gunicorn/hypercorn/granian/flask run with a loopback or no host → the same
    command listening on 0.0.0.0, and the note that says so ("" when unchanged)."""
    tool = _tool(cmd)
    if tool is None or tool[0] not in _DEFAULT_PORT:
        return cmd, ""
    name, at = tool
    args = cmd[at + 1 :]
    if name == "flask" and "run" not in args:
        return cmd, ""
    configured = {"-c", "--config", "--uds", "--fd"} & {a.split("=")[0] for a in args}
    conf_file = name == "gunicorn" and (root / "gunicorn.conf.py").is_file()
    if configured or conf_file or _HOST_ENV.get(name, "") in env:
        return cmd, ""
    if name in _HOST_FLAG:
        flag = _HOST_FLAG[name]
        given = _flag_value(args, flag)
        if given is not None and given[1] not in _LOOPBACK:
            return cmd, ""
        new = _set_flag(args, flag, "0.0.0.0")
        what = f"{flag} 0.0.0.0"
    else:
        binds = [a for a in args if a in ("-b", "--bind") or a.startswith(("-b=", "--bind="))]
        given = _flag_value(args, "--bind") or _flag_value(args, "-b")
        if binds and (given is None or given[1].rpartition(":")[0] not in _LOOPBACK):
            return cmd, ""
        value = f"0.0.0.0:{given[1].rpartition(':')[2] if given else port}"
        new = list(args)
        if given is None:
            new += ["--bind", value]
        else:
            flag = binds[0].split("=")[0]
            new[given[0]] = value if new[given[0]] == given[1] else f"{flag}={value}"
        what = f"--bind {value}"
    was = "listens on 127.0.0.1 by default" if given is None else f"is told {given[1]}"
    note = f"{name} {was}, which nothing outside the container reaches; init wrote {what}"
    return [*cmd[: at + 1], *new], note


def unsupported(cmd: list[str], where: str) -> None:
    """TorchServe cannot run in a torchslim image: say so in one line."""
    tool = _tool(cmd)
    if tool is not None and tool[0] in ("torchserve", "torch-model-archiver"):
        raise ConfigError(f"{where}: {torchserve_why()}")


def torchserve_why() -> str:
    return (
        "TorchServe is not supported: its frontend is a Java server and the image has no "
        "Java runtime; serve the handler's model from Python (LitServe, FastAPI) and pass "
        "that command: torchslim init --cmd 'python3 server.py'"
    )


def torchserve_handler(root: Path) -> str | None:
    """``handler.py`` (a TorchServe handler) when the project has one at its top."""
    for path in sorted(root.glob("*.py"))[:200]:
        if _inside(root, path.name) and _HANDLER.search(_head(path)):
            return path.name
    return None


# ------------------------------------------------------------------ guesses


@dataclass(frozen=True)
class FrameworkGuess:
    cmd: list[str]
    where: str


def guess_framework_cmd(root: Path, candidates: list[str]) -> FrameworkGuess | None:
    """A Streamlit page, a BentoML service or a Gradio app that launches at top level,
    among ``candidates`` (entry files relative to ``root``)."""
    bentofile = root / "bentofile.yaml"
    if _inside(root, bentofile.name):
        text = _head(bentofile)
        if (m := _BENTOFILE.search(text)) is not None:
            line = text.count("\n", 0, m.start()) + 1
            return FrameworkGuess(["bentoml", "serve", m.group(1)], f"bentofile.yaml:{line}")
    for rel in candidates:
        code = read_code(root, rel)
        if code is None:
            continue
        if "streamlit" in code.imports:
            where = f"{rel}:{code.imports['streamlit']} imports streamlit"
            return FrameworkGuess(["streamlit", "run", rel], where)
        text = _head(root / rel)
        if (m := _BENTO_CLASS.search(text)) is not None:
            module = rel.removesuffix(".py").replace("/", ".")
            line = text.count("\n", 0, m.start()) + 1
            return FrameworkGuess(["bentoml", "serve", f"{module}:{m.group(1)}"], f"{rel}:{line}")
        launch = next((c for c in code.calls if c[0].endswith(".launch")), None)
        if "gradio" in code.imports and launch is not None:
            return FrameworkGuess(["python3", rel], f"{rel}:{launch[1]} launches Gradio")
    return None


# ------------------------------------------------------------------ defaults


@dataclass(frozen=True)
class Facts:
    """What the defaults depend on besides the command."""

    root: Path
    env: Mapping[str, str]  # the Dockerfile's ENV
    exposed: Found[int] | None = None
    space: Space | None = None


def _call(code: Code, suffix: str) -> tuple[str, int, dict[str, object]] | None:
    return next((c for c in code.calls if c[0].endswith(suffix)), None)


def _port_env(code: Code, facts: Facts, default: Found[int], out: Serving) -> Found[int]:
    """A script reading its port from ``PORT`` (or ``APP_PORT`` …): that variable decides."""
    if not code.port_vars:
        return default
    name, value, line = code.port_vars[0]
    where = f"{code.rel}:{line} reads {name}"
    if name in facts.env and facts.env[name].isdigit():
        return Found(int(facts.env[name]), f"{name} in the Dockerfile's ENV")
    if facts.exposed is not None:
        port = facts.exposed
    elif value is not None:
        port = Found(value, f"{where} (default {value})")
    else:
        port = default
    out.env[name] = Found(str(port.value), f"{where}; set to the port")
    return port


def _loopback_notes(code: Code) -> list[str]:
    notes = []
    for name, line, kwargs in code.calls:
        for key in ("host", "server_name"):
            if kwargs.get(key) in _LOOPBACK:
                notes.append(
                    f"{code.rel}:{line}: {name}({key}={kwargs[key]!r}) listens only inside "
                    f'the container; write {key}="0.0.0.0"'
                )
        if name == "uvicorn.run" and "host" not in kwargs:
            notes.append(
                f"{code.rel}:{line}: uvicorn.run() listens on 127.0.0.1 unless told; "
                'write host="0.0.0.0"'
            )
    return notes


def _gradio(code: Code, facts: Facts, out: Serving) -> None:
    imported = f"{code.rel}:{code.imports['gradio']} imports gradio"
    out.framework = "Gradio"
    launch = _call(code, ".launch")
    kwargs = launch[2] if launch else {}
    port = Found(7860, f"Gradio's default port ({imported})")
    if facts.space is not None and facts.space.app_port is not None:
        port = Found(facts.space.app_port.value, f"app_port in {facts.space.app_port.where}")
    if facts.exposed is not None:
        port = facts.exposed
    if "GRADIO_SERVER_PORT" in facts.env and facts.env["GRADIO_SERVER_PORT"].isdigit():
        port = Found(int(facts.env["GRADIO_SERVER_PORT"]), "GRADIO_SERVER_PORT in the Dockerfile")
    literal = kwargs.get("server_port")
    if launch is not None and isinstance(literal, int):
        port = Found(literal, f"{code.rel}:{launch[1]} launch(server_port={literal})")
    elif isinstance(literal, tuple):  # server_port=int(os.environ.get("PORT", 7860))
        port = _port_env(code, facts, port, out)
    elif "GRADIO_SERVER_PORT" not in facts.env:
        out.env["GRADIO_SERVER_PORT"] = Found(str(port.value), f"Gradio's port ({imported})")
    if "server_name" not in kwargs and "GRADIO_SERVER_NAME" not in facts.env:
        why = f"Gradio listens on 127.0.0.1 unless told ({imported})"
        out.env["GRADIO_SERVER_NAME"] = Found("0.0.0.0", why)
    out.port = port
    out.health = Found("/", f"Gradio serves its page at / ({imported})")


def _litserve(code: Code, facts: Facts, out: Serving) -> None:
    imported = f"{code.rel}:{code.imports['litserve']} imports litserve"
    out.framework = "LitServe"
    run = _call(code, ".run")
    port = facts.exposed or Found(8000, f"LitServe's default port ({imported})")
    literal = run[2].get("port") if run else None
    if run is not None and isinstance(literal, int):
        port = Found(literal, f"{code.rel}:{run[1]} run(port={literal})")
    else:
        port = _port_env(code, facts, port, out)
    out.port = port
    out.health = Found("/health", f"LitServe's health route ({imported})")


def _streamlit(cmd: list[str], at: int, facts: Facts, out: Serving, where: str) -> None:
    out.framework = "Streamlit"
    args = cmd[at + 1 :]
    config: dict[str, object] = {}
    conf = facts.root / ".streamlit" / "config.toml"
    if conf.is_file():
        try:
            config = dict(tomllib.loads(conf.read_text(encoding="utf-8")).get("server", {}))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, AttributeError, TypeError):
            config = {}
    port = Found(8501, f"Streamlit's default port ({where})")
    if facts.space is not None and facts.space.app_port is not None:
        port = Found(facts.space.app_port.value, f"app_port in {facts.space.app_port.where}")
    if isinstance(config.get("port"), int):
        port = Found(int(str(config["port"])), "port in .streamlit/config.toml [server]")
    if facts.exposed is not None:
        port = facts.exposed
    given = _flag_value(args, "--server.port")
    if given is not None and given[1].isdigit():
        port = Found(int(given[1]), f"--server.port in cmd ({where})")
    added = []
    address = _flag_value(args, "--server.address")
    if (address is None or address[1] in _LOOPBACK) and "STREAMLIT_SERVER_ADDRESS" not in facts.env:
        args = _set_flag(args, "--server.address", "0.0.0.0")
        added.append("--server.address 0.0.0.0")
    if given is None:
        args = _set_flag(args, "--server.port", str(port.value))
        added.append(f"--server.port {port.value}")
    if _flag_value(args, "--server.headless") is None:
        args = _set_flag(args, "--server.headless", "true")
        added.append("--server.headless true")
    if added:
        out.cmd = [*cmd[: at + 1], *args]
        out.cmd_note = (
            f"Streamlit listens where its options say; init added {' '.join(added)} "
            "(reachable from outside the container, no prompt at start)"
        )
    out.port = port
    out.health = Found("/_stcore/health", f"Streamlit's health route ({where})")


def _bentoml(cmd: list[str], at: int, facts: Facts, out: Serving, where: str) -> None:
    out.framework = "BentoML"
    args = cmd[at + 1 :]
    given = _flag_value(args, "--port") or _flag_value(args, "-p")
    if given is not None and given[1].isdigit():
        out.port = Found(int(given[1]), f"--port in cmd ({where})")
    elif facts.exposed is not None:
        out.port = facts.exposed
        out.cmd = [*cmd, "--port", str(facts.exposed.value)]
        added = f"--port {facts.exposed.value}"
        out.cmd_note = f"bentoml serve listens on 3000 by default; init added {added}"
    else:
        out.port = Found(3000, f"BentoML's default port ({where})")
    host = _flag_value(args, "--host")
    if host is not None and host[1] in _LOOPBACK:
        out.cmd = [*cmd[: at + 1], *_set_flag(out.cmd[at + 1 :], "--host", "0.0.0.0")]
        out.cmd_note = f"bentoml serve is told --host {host[1]}; init wrote --host 0.0.0.0"
    out.health = Found("/healthz", f"BentoML's health route ({where})")


def _ray_serve(facts: Facts, out: Serving, where: str) -> None:
    out.framework = "Ray Serve"
    port = facts.env.get("RAY_SERVE_DEFAULT_HTTP_PORT", "")
    out.port = (
        Found(int(port), "RAY_SERVE_DEFAULT_HTTP_PORT in the Dockerfile")
        if port.isdigit()
        else Found(8000, f"Ray Serve's default port ({where})")
    )
    if "RAY_SERVE_DEFAULT_HTTP_HOST" not in facts.env:
        why = f"Ray Serve listens on 127.0.0.1 unless told ({where})"
        out.env["RAY_SERVE_DEFAULT_HTTP_HOST"] = Found("0.0.0.0", why)
    out.health = Found("/-/healthz", f"Ray Serve's health route ({where})")


def serving_defaults(cmd: list[str], where: str, facts: Facts) -> Serving:
    """The framework ``cmd`` (from ``where``) starts, and what init should set for it."""
    out = Serving(cmd=list(cmd))
    tool = _tool(cmd)
    name, at = tool if tool else ("", 0)
    sub = cmd[at + 1] if at + 1 < len(cmd) else ""
    rel = entry_file(facts.root, cmd, facts.env)
    code = read_code(facts.root, rel) if rel else None
    if name == "streamlit" and sub == "run":
        _streamlit(cmd, at, facts, out, where)
    elif name == "bentoml" and sub == "serve":
        _bentoml(cmd, at, facts, out, where)
    elif name == "serve" and sub == "run":
        _ray_serve(facts, out, where)
    elif code is not None and "gradio" in code.imports:
        _gradio(code, facts, out)
    elif code is not None and "litserve" in code.imports:
        _litserve(code, facts, out)
    elif code is not None and "ray" in code.imports and _call(code, "serve.run"):
        _ray_serve(facts, out, f"{code.rel}:{code.imports['ray']} imports ray")
    elif name in _DEFAULT_PORT:
        port = facts.exposed.value if facts.exposed else _DEFAULT_PORT[name]
        out.cmd, out.cmd_note = listen_everywhere(cmd, port, facts.env, facts.root)
    elif code is not None and code.port_vars:
        fallback = facts.exposed or Found(8000, f"default ({code.rel} names no default)")
        out.port = _port_env(code, facts, fallback, out)
    if code is not None:
        out.notes += _loopback_notes(code)
    return out


__all__ = [
    "Code",
    "Facts",
    "FrameworkGuess",
    "Serving",
    "entry_file",
    "guess_framework_cmd",
    "imported_packages",
    "listen_everywhere",
    "read_code",
    "serving_defaults",
    "torchserve_handler",
    "torchserve_why",
    "unsupported",
]
