"""Deterministic .pyc precompilation with image paths."""

from __future__ import annotations

import importlib.util
import logging
import marshal
import subprocess
import sys
from pathlib import Path

import pytest
from support.slim import SITE

from torchslim.errors import BuildError
from torchslim.slim.pyc import precompile

HOST = "{}.{}".format(*sys.version_info[:2])
TAG = sys.implementation.cache_tag

# Includes a frozenset constant (``x in {...}``), once marshalled in hash order.
MODULES = {
    "pkg/__init__.py": "from pkg.core import f\n",
    "pkg/core.py": (
        "WORDS = {'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta'}\n"
        "def f(x):\n    return x in {'one', 'two', 'three', 'four', 'five'}\n"
    ),
    "pkg/sub/mod.py": "import os\nPATH = os.sep.join(['a', 'b'])\n",
}


def _tree(root: Path) -> Path:
    site = root / SITE.lstrip("/")
    for rel, text in MODULES.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    return site


def _pycs(site: Path) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in sorted(site.rglob("*.pyc"))}


def test_pyc_deterministic_across_staging_dirs(tmp_path: Path) -> None:
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "stage-b-longer")
    assert precompile(tmp_path / "a", SITE, HOST) == len(MODULES)
    assert precompile(tmp_path / "stage-b-longer", SITE, HOST) == len(MODULES)
    pa, pb = _pycs(a), _pycs(b)
    assert len(pa) == len(MODULES) and pa == pb
    assert f"pkg/__pycache__/core.{TAG}.pyc" in pa


def test_pyc_holds_image_path_and_unchecked_hash(tmp_path: Path) -> None:
    site = _tree(tmp_path)
    precompile(tmp_path, SITE + "/", HOST)
    for rel in MODULES:
        cfile = Path(importlib.util.cache_from_source(str(site / rel)))
        data = cfile.read_bytes()
        assert data[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(data[4:8], "little") == 0b01  # hash-based, unchecked
        code = marshal.loads(data[16:])
        assert code.co_filename == f"{SITE}/{rel}"
        assert str(tmp_path) not in repr(code.co_consts)


def test_precompiled_tree_imports_without_writing(tmp_path: Path) -> None:
    site = _tree(tmp_path)
    precompile(tmp_path, SITE, HOST)
    before = _pycs(site)
    out = subprocess.run(
        [sys.executable, "-c", "import pkg, pkg.sub.mod; print(pkg.f('two'))"],
        cwd=site,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "True"
    assert _pycs(site) == before


def test_syntax_errors_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    site = _tree(tmp_path)
    (site / "pkg/template.py").write_text("def {{ name }}():\n")
    with caplog.at_level(logging.INFO):
        assert precompile(tmp_path, SITE, HOST) == len(MODULES)
    assert "pkg/template.py" in caplog.text
    assert all(r.levelno == logging.INFO for r in caplog.records)  # upstream's: no warning
    assert not list(site.glob("pkg/__pycache__/template.*.pyc"))


def test_missing_interpreter_warns_and_returns_zero(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = _tree(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert precompile(tmp_path, SITE, "3.99") == 0
    assert "python3.99" in caplog.text
    assert _pycs(site) == {}


def test_bad_version_and_missing_site(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="3.X"):
        precompile(tmp_path, SITE, "311")
    with pytest.raises(BuildError, match="site-packages"):
        precompile(tmp_path, SITE, HOST)
