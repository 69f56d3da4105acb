"""bytecode = "imported": the modules of the files the served proof saw opened, and the
.pyc kept only for them (compiled by the real compiler, read back by the real import
system)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from torchslim.slim.bytecode import STEP_ID, drop_unimported, module_of_pyc, modules_opened
from torchslim.slim.ledger import Ledger
from torchslim.slim.pyc import precompile

SITE = "usr/local/lib/python3.11/dist-packages"
VERSION = "{}.{}".format(*sys.version_info[:2])


def make_site(root: Path) -> Path:
    site = root / SITE
    (site / "pkg" / "sub").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("from pkg import used\n")
    (site / "pkg" / "used.py").write_text("VALUE = 1\n")
    (site / "pkg" / "unused.py").write_text("VALUE = 2\n")
    (site / "pkg" / "sub" / "__init__.py").write_text("")
    (site / "other.py").write_text("X = 3\n")
    return site


def test_only_the_imported_modules_keep_their_pyc_and_all_still_import(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    precompile(tmp_path, "/" + SITE, VERSION)
    tag = f"cpython-{VERSION.replace('.', '')}"
    assert (site / "pkg" / "__pycache__" / f"unused.{tag}.pyc").is_file()
    ledger = Ledger()
    removed = drop_unimported(tmp_path, "/" + SITE, ["pkg", "pkg.used"], VERSION, ledger)
    kept = sorted(p.name for p in site.rglob("*.pyc"))
    assert kept == [f"__init__.{tag}.pyc", f"used.{tag}.pyc"]
    rows = {rid: (files, nbytes) for rid, _, files, nbytes in ledger.by_rule()}
    assert rows[STEP_ID] == (3, removed) and removed > 0  # unused, sub/__init__, other
    # Every module still imports (from source where its .pyc went), nothing is written.
    code = "import pkg, pkg.unused, pkg.sub, other; print(pkg.used.VALUE + pkg.unused.VALUE)"
    out = subprocess.run(
        [sys.executable, "-B", "-c", code],
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "3"
    assert sorted(p.name for p in site.rglob("*.pyc")) == kept


def test_the_modules_opened_are_those_of_site_packages() -> None:
    site = "/" + SITE
    tag = f"cpython-{VERSION.replace('.', '')}"
    opened = [
        f"{site}/pkg/__pycache__/__init__.{tag}.pyc",
        f"{site}/pkg/used.py",  # read as source (no .pyc, or a traceback's line)
        f"{site}/__pycache__/other.{tag}.pyc",  # a top-level module's bytecode
        f"{site}/pkg/__pycache__/used.{tag}.pyc",
        f"{site}/pkg/__pycache__/stale.cpython-39.pyc",  # another interpreter's: not ours
        f"{site}/pkg-1.0.dist-info/top_level.py",  # not a module (no identifier)
        f"/usr/lib/python{VERSION}/json/__init__.py",  # the standard library's
        "/app/service/main.py",  # the app's
    ]
    assert modules_opened(opened, SITE, VERSION) == ["other", "pkg", "pkg.used"]
    assert module_of_pyc(f"a/b/__pycache__/__init__.{tag}.pyc", tag) == "a.b"
    assert module_of_pyc(f"a/b.{tag}.pyc", tag) is None  # sourceless: not in __pycache__
