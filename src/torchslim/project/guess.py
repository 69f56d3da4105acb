"""Guesses from the code itself, used by ``init`` when no Dockerfile or Procfile says:
the web app object (FastAPI, Flask, Starlette), the health route, the port in a command,
a src layout's folder for PYTHONPATH, models the code downloads from the Hub at start,
and a Dockerfile's command as it runs in a torchslim image.
"""

from __future__ import annotations

import ast
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchslim.project.dockerignore import PatternList
from torchslim.project.ignore import DEFAULT_IGNORE
from torchslim.project.pyproject import script_command
from torchslim.proof.entry import entry_from_cmd

DEFAULT_PORT = 8000
ENTRY_NAMES = ("main.py", "app.py", "server.py", "api.py", "serve.py", "service.py")
_APP_OBJECT = re.compile(r"^(\w+)\s*(?::\s*\w+\s*)?=\s*(FastAPI|Flask|Starlette)\(", re.MULTILINE)
_MAIN_GUARD = re.compile(r"""^if\s+__name__\s*==\s*["']__main__["']\s*:""", re.MULTILINE)
_ROUTE = re.compile(
    r"""@\w+\.(?:get|route|api_route|head)\(\s*["'](/(?:health|healthz|ready|readyz|live|livez|ping|status)/?)["']"""
)
_PORT_FLAG = re.compile(r"^--port(?:=(\d+))?$|^-p$")
_BIND = re.compile(r"^(?:-b|--bind)(?:=(.*))?$")
_SERVERS = ("uvicorn", "gunicorn", "hypercorn", "granian")


@dataclass(frozen=True)
class Guess:
    value: list[str]
    where: str  # "service/main.py:12"
    app_folder: str  # the folder to ship ("." for the project root)
    script: bool = False  # a script with a __main__ guard, not an app object


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _entry_files(root: Path, names: tuple[str, ...] = ENTRY_NAMES) -> list[Path]:
    ignore = PatternList(p for p, _ in DEFAULT_IGNORE)
    found = [root / n for n in names]
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        rel = folder.name
        if ignore.matches(rel) or rel.startswith("."):
            continue
        found += [folder / n for n in names]
        if rel == "src":
            found += [sub / n for sub in sorted(folder.iterdir()) if sub.is_dir() for n in names]
    return [p for p in found if p.is_file()]


def entry_candidates(root: Path) -> list[str]:
    """The files an entry is looked for in (``streamlit_app.py`` too), relative to root."""
    names = (*ENTRY_NAMES, "streamlit_app.py")
    return [p.relative_to(root).as_posix() for p in _entry_files(root, names)]


def guess_cmd(root: Path, requirement_names: set[str], port: int) -> Guess | None:
    """A command for the first entry module: an ASGI/WSGI app object, else a script."""
    scripts: list[Guess] = []
    for path in _entry_files(root):
        rel = path.relative_to(root)
        text = path.read_text(encoding="utf-8", errors="replace")
        folder = rel.parts[0] if len(rel.parts) > 1 else "."
        pythonpath_root = root / "src" if rel.parts[0] == "src" else root
        module = ".".join(path.relative_to(pythonpath_root).with_suffix("").parts)
        m = _APP_OBJECT.search(text)
        where = f"{rel.as_posix()}:{_line_of(text, m.start()) if m else 1}"
        if m and m.group(2) in ("FastAPI", "Starlette"):
            cmd = ["python3", "-m", "uvicorn", f"{module}:{m.group(1)}", "--host", "0.0.0.0",
                   "--port", str(port)]  # fmt: skip
            return Guess(cmd, where, folder if rel.parts[0] != "src" else "src")
        if m and m.group(2) == "Flask":
            target = f"{module}:{m.group(1)}"
            if "gunicorn" in requirement_names:
                cmd = ["gunicorn", "--bind", f"0.0.0.0:{port}", target]
            else:
                cmd = ["python3", "-m", "flask", "--app", target, "run", "--host", "0.0.0.0",
                       "--port", str(port)]  # fmt: skip
            return Guess(cmd, where, folder if rel.parts[0] != "src" else "src")
        if (g := _MAIN_GUARD.search(text)) is not None:
            where = f"{rel.as_posix()}:{_line_of(text, g.start())}"
            scripts.append(Guess(["python3", rel.as_posix()], where, ".", script=True))
    return scripts[0] if scripts else None


def find_health_route(root: Path, folder: str = ".") -> tuple[str, str] | None:
    """(path, "file:line") of a health-like route in the app's Python files."""
    ignore = PatternList(p for p, _ in DEFAULT_IGNORE)
    base = root / folder
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if ignore.matches(rel):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        m = _ROUTE.search(text)
        if m:
            return m.group(1).rstrip("/") or "/", f"{rel}:{_line_of(text, m.start())}"
    return None


_HUB_CALL = re.compile(
    r"""\b(?:from_pretrained|SentenceTransformer|hf_hub_download|snapshot_download)\(\s*"""
    r"""(?:(?:repo_id|pretrained_model_name_or_path|model_name_or_path)\s*=\s*)?["']([^"'\s]+)["']"""
)
_PIPELINE_MODEL = re.compile(r"""\bpipeline\([^)]*?\bmodel\s*=\s*["']([^"'\s]+)["']""")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def hub_downloads(root: Path, folder: str = ".") -> list[tuple[str, str]]:
    """(Hub id, "file:line") of models the app's code loads by a Hugging Face Hub id that is
    not a folder of the project: downloaded when the service starts, which the offline
    proof (and an offline cluster) cannot do."""
    ignore = PatternList(p for p, _ in DEFAULT_IGNORE)
    found: list[tuple[str, str]] = []
    for path in sorted((root / folder).rglob("*.py"))[:500]:
        rel = path.relative_to(root).as_posix()
        if ignore.matches(rel):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        calls = [*_HUB_CALL.finditer(text), *_PIPELINE_MODEL.finditer(text)]
        for m in sorted(calls, key=lambda m: m.start()):
            hub_id = m.group(1)
            local = (root / hub_id).exists() or (root / folder / hub_id).exists()
            if _HUB_ID.match(hub_id) and not local and hub_id not in dict(found):
                found.append((hub_id, f"{rel}:{_line_of(text, m.start())}"))
    return found


# torch.hub and torchvision's pretrained weights: fetched into $TORCH_HOME/hub at first use.
_TORCH_HUB = re.compile(
    r"\b(?:torch\.hub\.load|hub\.load_state_dict_from_url|load_state_dict_from_url)\(|"
    r"\bpretrained\s*=\s*True\b|\bweights\s*=\s*(?!None\b)(?:(?:\w+\.)*[A-Z]\w*_Weights\.\w+|[\"'][A-Z]\w*[\"'])"
)


def torch_hub_downloads(root: Path, folder: str = ".") -> list[str]:
    """ "file:line" of the first torch.hub / torchvision pretrained-weights download per file."""
    ignore = PatternList(p for p, _ in DEFAULT_IGNORE)
    found = []
    for path in sorted((root / folder).rglob("*.py"))[:500]:
        rel = path.relative_to(root).as_posix()
        text = "" if ignore.matches(rel) else path.read_text(encoding="utf-8", errors="replace")
        if "torch" in text and (m := _TORCH_HUB.search(text)) is not None:
            found.append(f"{rel}:{_line_of(text, m.start())}")
    return found


def hub_download_notes(root: Path, folder: str = ".") -> list[str]:
    """One note per download at start: what to run so the model ships in the image instead."""
    notes = []
    for hub_id, where in hub_downloads(root, folder):
        local = f"models/{hub_id.split('/')[-1]}"
        notes.append(
            f"{where}: {hub_id} is downloaded from the Hugging Face Hub at start, which the "
            f"offline proof cannot do: `huggingface-cli download {hub_id} --local-dir {local}`, "
            f"load it from {local}, and run init again"
        )
    for where in torch_hub_downloads(root, folder):
        notes.append(
            f"{where}: torch downloads these weights into TORCH_HOME at start, which the "
            "offline proof cannot do: run it once here, copy ~/.cache/torch/hub into the "
            'project as models/torch/hub, and set model = ["models/torch"] and '
            'env TORCH_HOME = "/app/models/torch"'
        )
    return notes


# A Python environment's bin folder: /opt/venv/bin, /app/.venv/bin, /root/.local/bin,
# /opt/conda/bin (not a project's own /srv/bin/run.sh, which ships with the app).
_ENV_BIN = re.compile(
    r"^(?:/opt/[^/]+|/(?:[^/]+/)*(?:\.?venv[\w.-]*|\.?env|\.local|(?:mini)?conda\d*|"
    r"micromamba|\.pyenv/versions/[^/]+))/bin/[^/]+$"
)


def runnable_cmd(cmd: list[str], pyproject: Mapping[str, Any]) -> tuple[list[str], str]:
    """A Dockerfile's command as it runs in a torchslim image, and why it changed ("" when
    not): packages' scripts are on PATH, not in the Dockerfile's virtualenv
    (``/opt/venv/bin/uvicorn`` → ``uvicorn``), and the project's own ``[project.scripts]``
    need ``pip install .``, which torchslim does not do (→ ``python3 -c …``)."""
    head = cmd[0] if cmd else ""
    if _ENV_BIN.match(head):
        name = posixpath.basename(head)
        why = f"{head} is in the Dockerfile's environment; the image has {name} on PATH"
        return [name, *cmd[1:]], why
    if head and "/" not in head and (run := script_command(pyproject, head)) is not None:
        why = (
            f"{head} is a script of pyproject.toml; the image ships the project's files, "
            "not a wheel, so it runs with python3 -c"
        )
        return [*run, *cmd[1:]], why
    return cmd, ""


def port_of_cmd(cmd: list[str]) -> int | None:
    """``--port 8080``, ``--port=8080``, ``-b 0.0.0.0:8080``; a server's default else."""
    for i, arg in enumerate(cmd):
        m = _PORT_FLAG.match(arg)
        if m:
            value = m.group(1) or (cmd[i + 1] if i + 1 < len(cmd) else "")
            if value.isdigit():
                return int(value)
        b = _BIND.match(arg)
        if b:
            value = b.group(1) or (cmd[i + 1] if i + 1 < len(cmd) else "")
            port = value.rpartition(":")[2]
            if port.isdigit():
                return int(port)
    names = {Path(a).name for a in cmd[:3]}
    if names & {"uvicorn", "hypercorn", "granian"}:
        return 8000
    if "gunicorn" in names:
        return 8000  # gunicorn's default bind is 127.0.0.1:8000; see the note in init
    if "flask" in names and "run" in cmd:
        return 5000
    return None


def runs_server(cmd: list[str]) -> bool:
    return bool({Path(a).name for a in cmd[:3]} & set(_SERVERS)) or "flask" in cmd[:3]


_PORT_VAR = re.compile(r"\$\{?PORT(?::-(\d+))?\}?")


def substitute_port(command: str, port: int) -> str:
    """``--port $PORT`` (Heroku style) → ``--port 8000``: an image has no shell to expand it."""
    return _PORT_VAR.sub(lambda m: m.group(1) or str(port), command)


def package_in_src(root: Path, cmd: list[str], env: dict[str, str]) -> str | None:
    """The package ``cmd`` starts when it lies in ``src/`` and nowhere the image's Python
    looks (a src layout, which a Dockerfile makes importable with ``pip install .``;
    torchslim ships the files, so ``src`` must go on PYTHONPATH)."""
    entry = entry_from_cmd(cmd, "/app", env)
    if entry.kind in ("app", "module") and entry.module:
        tops = [entry.module.split(".")[0]]
    elif entry.kind == "code" and entry.code:
        tops = _imported_tops(entry.code)
    else:
        return None
    # /app/X in the image is X in the project, whichever folder `app` names.
    paths = [p for p in env.get("PYTHONPATH", "").split(":") if p.startswith("/app")]
    dirs = [".", *(p.removeprefix("/app").strip("/") or "." for p in paths)]
    missing = [t for t in tops if not any(_holds_module(root / d, t) for d in dirs)]
    return next((t for t in missing if _holds_module(root / "src", t)), None)


def _holds_module(folder: Path, top: str) -> bool:
    """``top`` imports from ``folder``: a package (regular or namespace) or a module file."""
    return (folder / top).is_dir() or (folder / f"{top}.py").is_file()


def _imported_tops(code: str) -> list[str]:
    """Top-level packages a ``python -c`` command imports."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    tops = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    tops += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    return list(dict.fromkeys(t.split(".")[0] for t in tops))


__all__ = [
    "DEFAULT_PORT",
    "Guess",
    "find_health_route",
    "guess_cmd",
    "hub_download_notes",
    "hub_downloads",
    "package_in_src",
    "port_of_cmd",
    "runnable_cmd",
    "runs_server",
    "substitute_port",
    "torch_hub_downloads",
    "entry_candidates",
]
