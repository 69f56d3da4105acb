"""bytecode = "imported": the census from CPython's import-time report, and the .pyc kept
only for the modules it names (compiled by the real compiler, read back by the real
import system)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from torchslim.proof.serve import split_import_report
from torchslim.slim.bytecode import STEP_ID, drop_unimported, site_modules
from torchslim.slim.ledger import Ledger
from torchslim.slim.pyc import precompile

SITE = "usr/local/lib/python3.11/dist-packages"
VERSION = "{}.{}".format(*sys.version_info[:2])


def test_the_import_report_is_read_and_taken_out_of_the_output() -> None:
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       417 |        417 |   _io\n"
        "INFO: started\n"
        "import time:        90 |       1203 |     pkg.sub\n"
        "import time:        12 |         12 | pkg.sub\n"  # a second process (a worker)
        "Traceback: boom\n"
    )
    imports, rest = split_import_report(stderr)
    assert imports == ("_io", "pkg.sub")
    assert rest == "INFO: started\nTraceback: boom\n"


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


def test_site_modules_are_the_ones_found_in_site_packages(tmp_path: Path) -> None:
    make_site(tmp_path / "layer1")
    (tmp_path / "layer2" / SITE).mkdir(parents=True)
    (tmp_path / "layer2" / SITE / "late.py").write_text("")
    names = ["pkg", "pkg.used", "late", "json", "service.main", "pkg.missing"]
    found = site_modules(names, [tmp_path / "layer1", tmp_path / "layer2"], "/" + SITE)
    assert found == ["late", "pkg", "pkg.used"]
