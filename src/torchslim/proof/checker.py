"""The proof's checker: runs with the *image's* Python (3.9-3.13) inside the image's root.

``proof.py`` passes this file's source to ``python -c`` in the sandbox and a JSON
request on stdin. It finds every ELF shared object and extension module under the
interpreter's site directories and the working directory, then loads them the way
the runtime would: ``import torch`` first (its preloads are then real), extension
modules by importing their dotted name, the remaining shared libraries with
``ctypes.CDLL`` (RTLD_LOCAL, a plain dlopen). Last it checks the app's entry
(see ``entry.py``) without running it.

Results stream as tagged lines on the original stdout, written unbuffered (``T``
targets, ``S`` skipped counts, ``B i`` before loading target i, ``R`` its result,
``E`` the entry's result, ``D`` done); the imports' own prints go to stderr. A
crash while loading target i leaves ``B i`` without ``R``: the host reports that
file and resumes after it. Standard library only; no syntax newer than 3.9.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import importlib
import importlib.machinery
import importlib.util
import json
import keyword
import os
import re
import site
import sys
import sysconfig
import time
import traceback
import warnings
from typing import Any

NOT_ELF_SUFFIXES = (
    ".py", ".pyc", ".pyi", ".pxd", ".pyx", ".h", ".hpp", ".cuh", ".c", ".cpp", ".txt",
    ".json", ".md", ".rst", ".typed", ".html", ".js", ".css", ".png", ".svg", ".yaml",
    ".yml", ".toml", ".cfg", ".ini", ".csv",
)  # fmt: skip
OTHER_ABI = re.compile(r"\.(cpython-\d+\w*|pypy\d*\w*|graalpy\w*)-[^.]+\.so$")
# Never in an image: the driver (the NVIDIA container toolkit injects it at run time), and
# the RDMA/MPI/UCX stacks that transport plugins (NVSHMEM, cuFile) are dlopen'ed for.
EXTERNAL = re.compile(
    r"((?:(?P<driver>libcuda|libnvidia-[\w.-]+?|libcudadebugger|libnvcuvid|libnvoptix)|"
    r"(?P<interconnect>libmlx[45]|libibverbs|librdmacm|libmpi\w*|liboshmem|libpmix|libfabric"
    r"|libuc[pstm]))\.so[.\d]*): cannot open shared object file"
)
MAX_MESSAGE = 400

# On the host an import; in the image ``elfread``'s source runs first (checker_source).
with contextlib.suppress(ImportError):
    from torchslim.proof.elfread import elf_kind, exports_symbol, truncated


def module_name(rel: str, suffixes: list[str], path: str | None = None) -> str | None:
    """``pkg/sub/_ext.cpython-311-x86_64-linux-gnu.so`` → ``pkg.sub._ext``; None: no module.

    A bare ``.so`` name is a module only if ``path`` exports its ``PyInit_`` function
    (``torch/lib/libtorch.so`` is a library, ``triton/_C/libtriton.so`` a module).
    """
    parts = rel.split("/")
    suffix = next((s for s in sorted(suffixes, key=len, reverse=True) if rel.endswith(s)), "")
    stem = parts[-1][: -len(suffix)] if suffix else ""
    dotted = parts[:-1] + ([] if stem == "__init__" else [stem])
    if not stem or not all(p.isidentifier() and not keyword.iskeyword(p) for p in dotted):
        return None
    if path and suffix.count(".") == 1 and not exports_symbol(path, "PyInit_" + dotted[-1]):
        return None
    return ".".join(dotted)


def search_roots(workdir: str) -> list[str]:
    """The interpreter's site directories (site + sys.path, not the stdlib), then workdir."""
    paths = sysconfig.get_paths()
    stdlib = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib")}
    stdlib |= {os.path.join(s, "lib-dynload") for s in stdlib}
    roots: list[str] = []
    for d in list(site.getsitepackages()) + list(sys.path):
        real = os.path.realpath(d) if d else ""
        if real and os.path.isdir(real) and real not in stdlib and real not in roots:
            roots.append(real)
    app = os.path.realpath(workdir)
    inside = [r for r in roots + sorted(stdlib) if r == app or r.startswith(app.rstrip("/") + "/")]
    if os.path.isdir(app) and app not in roots and not inside:
        roots.append(app)  # a workdir holding the interpreter's own files is no app dir
    return roots


def discover(workdir: str, only: list[str] | None) -> tuple[list[list[str]], dict[str, int]]:
    """Targets ``[kind, path, module]`` (ext sorted by module, then lib by path) and skips."""
    suffixes = list(importlib.machinery.EXTENSION_SUFFIXES)
    wanted = {os.path.realpath(p) for p in only} if only is not None else None
    roots = search_roots(workdir)
    seen: set[str] = set()
    exts: list[list[str]] = []
    libs: list[list[str]] = []
    skipped: dict[str, int] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(
                d for d in dirnames if os.path.join(dirpath, d) not in roots and d != "__pycache__"
            )
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if name.endswith(NOT_ELF_SUFFIXES) or os.path.islink(path) or path in seen:
                    continue
                if wanted is not None and path not in wanted:
                    continue
                seen.add(path)
                kind = elf_kind(path)
                if kind not in (None, "so"):
                    skipped[str(kind)] = skipped.get(str(kind), 0) + 1
                if kind != "so":
                    continue
                module = module_name(os.path.relpath(path, root), suffixes, path)
                if module:
                    exts.append(["ext", path, module])
                elif OTHER_ABI.search(name):
                    skipped["other-python"] = skipped.get("other-python", 0) + 1
                else:
                    libs.append(["lib", path, ""])
    exts.sort(key=lambda t: (t[2].count("."), t[2], t[1]))
    libs.sort(key=lambda t: t[1])
    return exts + libs, skipped


def one_line(exc: BaseException) -> str:
    text = str(exc.msg if isinstance(exc, SyntaxError) else exc).strip().splitlines()
    msg = type(exc).__name__ + (": " + text[0] if text else "")
    return msg[:MAX_MESSAGE]


def installed(filename: str) -> bool:
    """Whether ``filename`` belongs to an installed package or the standard library."""
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"]) + os.sep
    return "-packages" + os.sep in filename or os.path.realpath(filename).startswith(stdlib)


def where(exc: BaseException) -> str:
    """``(file, line N)`` of a syntax error, else of the innermost frame in the app's own
    code (the line that called into torch, not torch's line that raised), else of the
    innermost frame outside importlib."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" ({exc.filename}, line {exc.lineno})"
    frames = [
        fr for fr in traceback.extract_tb(exc.__traceback__) if not fr.filename.startswith("<")
    ]
    if not frames:
        return ""
    frame = ([fr for fr in frames if not installed(fr.filename)] or frames)[-1]
    return f" ({frame.filename}, line {frame.lineno})"


TEST_MODULE = re.compile(r"(^|\.)(tests?|testing)(\.|$)|_tests?$")


def python_level(exc: BaseException, module: str) -> bool:
    """Whether importing extension ``module`` failed for a reason in Python, not in loading
    its file: its init imports an absent package of another distribution (Pillow's Tk
    bridge needs tkinter), or it is a test-only module whose init refuses to run outside
    its test suite (numpy 1.26's ``_umath_tests`` wants NUMPY_EXPERIMENTAL_DTYPE_API=1).
    A service imports neither; the entry check covers what the app does import."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return exc.name.split(".")[0] != module.split(".")[0]
    return bool(TEST_MODULE.search(module)) and not isinstance(exc, ImportError)


def import_name(module: str) -> str:
    """The name to import extension ``module`` by: its dotted name, except for a package's
    namesake (``cv2/cv2.abi3.so``), which the package's ``__init__`` loads under the
    package's own name and which refuses to init as ``cv2.cv2``."""
    parts = module.split(".")
    return parts[0] if len(parts) == 2 and parts[0] == parts[1] else module


def load(kind: str, path: str, module: str) -> dict[str, Any]:
    try:
        if kind in ("torch", "ext"):
            mod = importlib.import_module(import_name(module))
            got = getattr(mod, "__file__", None)
            if kind == "ext" and got and os.path.realpath(got) != path:
                ctypes.CDLL(path, mode=os.RTLD_LOCAL)  # another file wins the name; still load it
        else:
            ctypes.CDLL(path, mode=os.RTLD_LOCAL)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - every failure is a finding
        if kind == "ext" and python_level(exc, module):
            try:  # the file itself must still load
                ctypes.CDLL(path, mode=os.RTLD_LOCAL)
                return {"ok": True}
            except OSError as dl:
                exc = dl
        m = EXTERNAL.search(str(exc))
        if m:
            source = "driver" if m.group("driver") else "interconnect"
            return {"ok": True, "deferred": m.group(1), "source": source}
        return {"error": one_line(exc)}
    return {"ok": True}


def _imports(tree: ast.Module) -> list[tuple[str, int]]:
    """Modules the top level imports, by full dotted name (``from a.b import c``: ``a.b``)."""
    found: list[tuple[str, int]] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
    return found


def _compile_and_import(source: str, filename: str) -> str | None:
    """Compile ``source``; import every module its top level imports, really running
    their code in the image (a Flask that cannot import Werkzeug fails here); the
    script's own code is not run."""
    try:
        tree = ast.parse(source, filename)
        compile(tree, filename, "exec")
    except SyntaxError as exc:
        return f"SyntaxError: {exc.msg}{where(exc)}"
    for name, line in _imports(tree):
        if name in sys.builtin_module_names or name == "__future__":
            continue
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError as exc:
            spec, name = None, exc.name or name
        if spec is None:
            return f"import {name}: no module named {name!r} ({filename}, line {line})"
        try:
            importlib.import_module(name)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - every failure is a finding
            return (
                f"import {name} ({filename}, line {line}): {one_line(exc)}{where(exc)}"
                f"{_network_hint(exc)}"
            )
    return None


def _module_of_file(path: str) -> tuple[str, str]:
    """(module name, directory to put on sys.path): walk up the dirs holding __init__.py."""
    directory, name = os.path.split(path)
    parts = [name[:-3]] if name != "__init__.py" else []
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        directory, pkg = os.path.split(directory)
        parts.insert(0, pkg)
    return ".".join(parts), directory


def _elsewhere_hint(module: str, missing: str | None) -> str:
    """When the entry's own top-level package is missing but lies in a folder below the
    working directory (``src/`` layouts), where it is and the setting that finds it."""
    top = module.split(".")[0]
    if missing != top:
        return ""
    cwd = os.getcwd()
    for folder, dirs, files in os.walk(cwd):
        if folder != cwd and (top in dirs or top + ".py" in files):
            return f"; {top} is in {folder}: set env PYTHONPATH = {folder!r}"
        depth = 0 if folder == cwd else os.path.relpath(folder, cwd).count(os.sep) + 1
        keep = sorted(d for d in dirs if not d.startswith((".", "__")))[:50]
        dirs[:] = keep if depth < 3 else []
    return ""


_NETWORK = re.compile(
    r"name resolution|Name or service not known|Network is unreachable|couldn't connect|"
    r"Connection refused|nodename nor servname|offline mode",
    re.IGNORECASE,
)


def _network_hint(exc: BaseException) -> str:
    """The app reached for the network while importing (a model download, a config fetch):
    the proof has none, and a container at start may not either."""
    chain = [exc, exc.__cause__, exc.__context__]
    if not any(
        e is not None
        and (isinstance(e, ConnectionError) or _NETWORK.search(type(e).__name__ + " " + str(e)))
        for e in chain
    ):
        return ""
    return (
        "; the app reaches the network while it imports, and the proof runs without one: "
        "ship what it downloads (`model`, e.g. a saved Hugging Face folder) or skip the "
        "check with --no-prove"
    )


def entry_hint(module: str, exc: BaseException) -> str:
    """What to do about an entry that fails to import, when the failure says."""
    return _elsewhere_hint(module, getattr(exc, "name", None)) or _network_hint(exc)


def _import_app(module: str, attrs: list[str]) -> str | None:
    try:
        mod = importlib.import_module(module)
    except (Exception, SystemExit) as exc:  # noqa: BLE001
        return f"{module}: {one_line(exc)}{where(exc)}{entry_hint(module, exc)}"
    if attrs and not any(hasattr(mod, a) for a in attrs):
        names = " or ".join(repr(a) for a in attrs)
        return f"{module} has no attribute {names} ({getattr(mod, '__file__', '?')})"
    return None


def check_entry(entry: dict[str, Any]) -> str | None:
    """None when the entry imports/compiles; else one line naming module, error, file, line."""
    for d in reversed(entry.get("sys_path") or []):
        sys.path.insert(0, d)
    runner = entry.get("runner")
    if runner and importlib.util.find_spec(runner) is None:
        return f"python -m {runner}: no module named {runner!r}"
    kind = entry["kind"]
    try:
        if kind == "app":
            return _import_app(entry["module"], entry.get("attrs") or [])
        if kind == "module":
            name = entry["module"]
            spec = importlib.util.find_spec(name)
            if spec is not None and spec.submodule_search_locations is not None:
                name += ".__main__"
                spec = importlib.util.find_spec(name)
            if spec is None or spec.loader is None:
                hint = _elsewhere_hint(name, name.split(".")[0]) if spec is None else ""
                return "python -m {}: no module named {!r}{}".format(entry["module"], name, hint)
            source = getattr(spec.loader, "get_source", lambda _: None)(name)
            if source is None:  # no source (a compiled module): compiling is all there is
                getattr(spec.loader, "get_code", lambda _: None)(name)
                return None
            return _compile_and_import(source, spec.origin or name)
        if kind == "code":
            return _compile_and_import(entry["code"], "<string>")
        if kind == "script":
            if not os.path.isfile(entry["path"]):
                return "{} does not exist".format(entry["path"])
            with open(entry["path"], "rb") as f:
                source = f.read().decode("utf-8", "replace")
            return _compile_and_import(source, entry["path"])
        if kind == "file":
            paths = [entry["path"]] if entry.get("path") else entry.get("candidates") or []
            found = next((p for p in paths if os.path.isfile(p)), None)
            if found is None:
                return "no app file: {} does not exist".format(" or ".join(paths))
            module, directory = _module_of_file(found)
            sys.path.insert(0, directory)
            return _import_app(module, entry.get("attrs") or [])
    except (Exception, SystemExit) as exc:  # noqa: BLE001
        hint = entry_hint(entry.get("module") or "", exc)
        return f"{entry.get('module') or entry.get('path')}: {one_line(exc)}{where(exc)}{hint}"
    return None


def main() -> None:
    request = json.loads(sys.stdin.read() or "{}")
    out = os.dup(1)
    os.dup2(2, 1)  # whatever the imports print goes to stderr, not into the results

    def emit(tag: str, value: Any) -> None:
        os.write(out, (tag + " " + json.dumps(value) + "\n").encode())

    warnings.simplefilter("ignore")
    start = time.monotonic()
    workdir = request.get("workdir") or os.getcwd()
    targets, skipped = discover(workdir, request.get("check_paths"))
    if importlib.util.find_spec("torch") is not None:
        targets.insert(0, ["torch", "", "torch"])
    emit("T", targets)
    emit("S", skipped)
    resume = int(request.get("resume") or 0)
    broken = {i: truncated(t[1]) for i, t in enumerate(targets) if t[0] != "torch"}
    for i, why in broken.items():
        if why:
            emit("R", {"i": i, "error": why})  # never loaded: dlopen would die of SIGBUS
    if resume and targets and targets[0][0] == "torch" and request.get("torch_context", True):
        load(*targets[0])  # the context later loads rely on; reported by the first run
    for i, (kind, path, module) in enumerate(targets):
        if i < resume or broken.get(i):
            continue
        emit("B", i)
        result = load(kind, path, module)
        result["i"] = i
        emit("R", result)
    entry = request.get("entry")
    if entry and entry.get("kind") != "none":
        emit("E", {"error": check_entry(entry)})
    emit("D", round(time.monotonic() - start, 3))


if __name__ == "__main__":
    main()
