"""The checker's pieces, run on this host's Python and its real ELF files."""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import sys
import sysconfig
from pathlib import Path

import pytest
from support.slim import build_so

from torchslim.proof import checker as proofcheck
from torchslim.proof.checker import (
    check_entry,
    elf_kind,
    exports_symbol,
    module_name,
    truncated,
)

SUFFIXES = [".cpython-311-x86_64-linux-gnu.so", ".abi3.so", ".so"]
DYNLOAD = Path(os.__file__).parent / "lib-dynload"  # the base interpreter's, not a venv's


def a_host_extension() -> Path:
    """A real extension module of this Python (lib-dynload), e.g. _json.cpython-311-….so."""
    for path in sorted(DYNLOAD.glob("*.so")):
        if path.name.split(".")[0].isidentifier():
            return path
    pytest.skip("this Python has no extension modules in lib-dynload")


def stem(path: Path) -> str:
    return path.name.split(".")[0]


def test_elf_kinds_of_real_files(tmp_path: Path) -> None:
    ext = a_host_extension()
    assert elf_kind(str(ext)) == "so"
    python = Path(sys.executable).resolve()
    assert elf_kind(str(python)) in ("exe", "so")  # PIE with PT_INTERP and no ".so": exe
    if ".so" not in python.name:
        assert elf_kind(str(python)) == "exe"
    assert elf_kind(__file__) is None
    debug = tmp_path / "lib.so.debug"
    shutil.copy(ext, debug)
    assert elf_kind(str(debug)) == "debug"


def test_truncated_file_is_caught_before_dlopen(tmp_path: Path) -> None:
    ext = a_host_extension()
    assert truncated(str(ext)) is None
    cut = tmp_path / "cut.so"
    cut.write_bytes(ext.read_bytes()[:2000])
    message = truncated(str(cut))
    assert message is not None and message.startswith("truncated: the file has 2000 bytes")


def test_extension_module_names(tmp_path: Path) -> None:
    assert module_name("pkg/sub/_ext.cpython-311-x86_64-linux-gnu.so", SUFFIXES) == "pkg.sub._ext"
    assert module_name("cv2/cv2.abi3.so", SUFFIXES) == "cv2.cv2"
    assert module_name("pkg/__init__.abi3.so", SUFFIXES) == "pkg"
    assert module_name("numpy.libs/libopenblas-1a2b.so", SUFFIXES) is None  # not a package path
    assert module_name("torch/lib/libc10.so.1", SUFFIXES) is None
    # A bare ".so" is a module only if it exports PyInit_<name>.
    ext = a_host_extension()
    plain = tmp_path / f"{stem(ext)}.so"
    shutil.copy(ext, plain)
    assert module_name(f"pkg/{plain.name}", SUFFIXES, str(plain)) == f"pkg.{stem(ext)}"
    lib = tmp_path / "libc10.so"
    shutil.copy(ext, lib)
    assert module_name("torch/lib/libc10.so", SUFFIXES, str(lib)) is None
    assert exports_symbol(str(ext), f"PyInit_{stem(ext)}")
    assert not exports_symbol(str(ext), f"PyInit_{stem(ext)[:-1]}")


def test_discover_orders_torch_context_extensions_then_libraries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ext = a_host_extension()
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (tmp_path / "b/c").mkdir(parents=True)
    name = stem(ext)
    shutil.copy(ext, tmp_path / f"b/c/{name}{suffix}")
    shutil.copy(ext, tmp_path / f"{name}{suffix}")
    shutil.copy(ext, tmp_path / "b/libz.so.1")
    shutil.copy(ext, tmp_path / f"b/{name}.cpython-39-x86_64-linux-gnu.so")
    shutil.copy(sys.executable, tmp_path / "b/tool")
    (tmp_path / "b/notes.txt").write_text("x")
    monkeypatch.setattr(proofcheck, "search_roots", lambda workdir: [str(tmp_path)])
    targets, skipped = proofcheck.discover(str(tmp_path), None)
    assert targets == [
        ["ext", str(tmp_path / f"{name}{suffix}"), name],
        ["ext", str(tmp_path / f"b/c/{name}{suffix}"), f"b.c.{name}"],
        ["lib", str(tmp_path / "b/libz.so.1"), ""],
    ]
    assert skipped.get("other-python") == 1
    only = proofcheck.discover(str(tmp_path), [str(tmp_path / "b/libz.so.1")])[0]
    assert only == [["lib", str(tmp_path / "b/libz.so.1"), ""]]


def test_entry_checks_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    pkg = tmp_path / "proofcheck_app"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text("app = object()\n")
    (pkg / "bad.py").write_text("import json\nraise RuntimeError('no model file')\n")
    (pkg / "serve.py").write_text("raise SystemExit('started')\n")
    # raises inside an installed package (as torch.jit.load does for a wrong path)
    (pkg / "loads.py").write_text("import json\n\nconfig = json.loads('{')\n")
    try:
        good = {"kind": "app", "module": "proofcheck_app.good", "attrs": ["app"]}
        assert check_entry(good) is None
        assert check_entry({**good, "attrs": ["api"]}) == (
            f"proofcheck_app.good has no attribute 'api' ({pkg / 'good.py'})"
        )
        assert check_entry({"kind": "app", "module": "proofcheck_app.bad", "attrs": []}) == (
            f"proofcheck_app.bad: RuntimeError: no model file ({pkg / 'bad.py'}, line 2)"
        )
        loads = check_entry({"kind": "app", "module": "proofcheck_app.loads", "attrs": []})
        assert loads is not None and loads.startswith("proofcheck_app.loads: JSONDecodeError")
        assert loads.endswith(f"({pkg / 'loads.py'}, line 3)"), loads
        assert check_entry({"kind": "module", "module": "proofcheck_app.serve"}) is None
        assert check_entry({"kind": "module", "module": "proofcheck_app.nope"}) == (
            "python -m proofcheck_app.nope: no module named 'proofcheck_app.nope'"
        )
        assert check_entry({"kind": "code", "code": "import os\nimport no_such_mod_x\n"}) == (
            "import no_such_mod_x: no module named 'no_such_mod_x' (<string>, line 2)"
        )
        file_entry = {"kind": "file", "path": None, "attrs": ["app"], "candidates": [
            str(tmp_path / "missing.py"), str(pkg / "good.py")]}  # fmt: skip
        assert check_entry(file_entry) is None
        assert check_entry({"kind": "app", "module": "m", "runner": "no_such_server_x"}) == (
            "python -m no_such_server_x: no module named 'no_such_server_x'"
        )
    finally:
        for name in [m for m in sys.modules if m.startswith("proofcheck_app")]:
            del sys.modules[name]


def test_a_src_layout_entry_names_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The working directory is /app; the package the entry names is under src/."""
    (tmp_path / "src/srclayout_pkg").mkdir(parents=True)
    (tmp_path / "src/srclayout_pkg/__init__.py").write_text("")
    (tmp_path / "src/srclayout_pkg/main.py").write_text("app = object()\n")
    monkeypatch.chdir(tmp_path)
    hint = f"; srclayout_pkg is in {tmp_path / 'src'}: set env PYTHONPATH = '{tmp_path / 'src'}'"
    app = check_entry({"kind": "app", "module": "srclayout_pkg.main", "attrs": ["app"]})
    assert app is not None and app.endswith(hint), app
    assert app.startswith(
        "srclayout_pkg.main: ModuleNotFoundError: No module named 'srclayout_pkg'"
    )
    module = check_entry({"kind": "module", "module": "srclayout_pkg"})
    assert module == "python -m srclayout_pkg: no module named 'srclayout_pkg'" + hint
    # another missing module (a dependency) gets no hint
    other = check_entry({"kind": "app", "module": "no_such_dep_x.main", "attrs": []})
    assert other is not None and "PYTHONPATH" not in other


def test_an_entry_that_downloads_at_import_is_told_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proof has no network: an import that fetches a model says so and what to do."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "netfetch_dns.py").write_text(
        "import socket, urllib.error\n"
        "raise urllib.error.URLError(socket.gaierror(-3, 'Temporary failure in name resolution'))\n"
    )
    (tmp_path / "netfetch_refused.py").write_text(  # loopback port 9: nothing listens
        "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=2)\n"
    )
    (tmp_path / "netfetch_other.py").write_text("raise RuntimeError('no GPU')\n")
    try:
        for name in ("netfetch_dns", "netfetch_refused"):
            line = check_entry({"kind": "app", "module": name, "attrs": []})
            assert line is not None and "the proof runs without one" in line, line
            assert "--no-prove" in line and f"{tmp_path / name}.py, line 2" in line
        other = check_entry({"kind": "app", "module": "netfetch_other", "attrs": []})
        assert other is not None and "network" not in other
    finally:
        for name in [m for m in sys.modules if m.startswith("netfetch_")]:
            del sys.modules[name]


def _extension(root: Path, module: str, init: str) -> Path:
    """A real extension ``module`` compiled against this Python; ``init`` (C) runs first in
    its PyInit and may ``return NULL`` with an exception set."""
    include = sysconfig.get_paths()["include"]
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    *pkg, name = module.split(".")
    for i in range(len(pkg)):
        init_py = root.joinpath(*pkg[: i + 1], "__init__.py")
        init_py.parent.mkdir(parents=True, exist_ok=True)
        init_py.touch()
    source = (
        "#include <Python.h>\n"
        f'static struct PyModuleDef m = {{PyModuleDef_HEAD_INIT, "{name}"}};\n'
        f"PyMODINIT_FUNC PyInit_{name}(void) {{\n{init}\n  return PyModule_Create(&m);\n}}\n"
    )
    return build_so(root.joinpath(*pkg, name + suffix), source, f"-I{include}")


def importing(name: str) -> str:
    """C for an init that imports ``name`` first."""
    return f'PyObject *d = PyImport_ImportModule("{name}"); if (!d) return NULL; Py_DECREF(d);'


REFUSING = '  PyErr_SetString(PyExc_RuntimeError, "cannot load module."); return NULL;'


def test_python_level_init_failures_of_files_that_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pillow's _imagingtk imports tkinter (not in the image) and numpy 1.26's _umath_tests
    refuses to init outside its test suite: both files load, so both pass. A missing module
    of the extension's own package, or a refusal by a module the app may use, still fails."""
    monkeypatch.syspath_prepend(str(tmp_path))
    tk = _extension(tmp_path, "pilish._tkbridge", importing("no_such_tk_toolkit"))
    assert proofcheck.load("ext", str(tk), "pilish._tkbridge") == {"ok": True}
    own = _extension(tmp_path, "pilish._core", importing("pilish._gone"))
    assert proofcheck.load("ext", str(own), "pilish._core") == {
        "error": "ModuleNotFoundError: No module named 'pilish._gone'"
    }
    tests = _extension(tmp_path, "numpyish.core._umath_tests", REFUSING)
    assert proofcheck.load("ext", str(tests), "numpyish.core._umath_tests") == {"ok": True}
    used = _extension(tmp_path, "numpyish.core._umath", REFUSING)
    assert proofcheck.load("ext", str(used), "numpyish.core._umath") == {
        "error": "RuntimeError: cannot load module."
    }


NAMESAKE_INIT = """\
# As cv2/__init__.py does: load the extension cv2/cv2.abi3.so as the top-level "cv2".
import importlib, os, sys

_here = os.path.dirname(__file__)
_package = sys.modules.pop(__name__)
sys.path.insert(0, _here)
try:
    native = importlib.import_module(__name__)
finally:
    sys.path.remove(_here)
    sys.modules[__name__] = _package
"""
# As OpenCV's bindings do: refuse to init under any name but the package's.
REFUSING_SUBMODULE = """\
  PyObject *mod = PyModule_Create(&m);
  if (mod && strcmp(PyModule_GetName(mod), "cvish") != 0) {
    PyErr_SetString(PyExc_ImportError, "Bindings generation error. Parent name: cvish.cvish");
    Py_DECREF(mod);
    return NULL;
  }
  return mod;"""


def test_package_namesake_extension_is_imported_through_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cv2/cv2.abi3.so fails to init as "cv2.cv2"; cv2/__init__.py loads it as "cv2"."""
    monkeypatch.syspath_prepend(str(tmp_path))
    ext = _extension(tmp_path, "cvish.cvish", REFUSING_SUBMODULE)
    (tmp_path / "cvish" / "__init__.py").write_text(NAMESAKE_INIT)
    assert proofcheck.import_name("cvish.cvish") == "cvish"
    assert proofcheck.import_name("pkg.sub.pkg") == "pkg.sub.pkg"
    try:
        assert proofcheck.load("ext", str(ext), "cvish.cvish") == {"ok": True}
        assert sys.modules["cvish"].native.__file__ == str(ext)
    finally:
        sys.modules.pop("cvish", None)
