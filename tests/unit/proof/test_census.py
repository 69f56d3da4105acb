"""The census hook on this host's Python, without a sandbox: what it records, that the
image's own sitecustomize still runs, and that a service cannot make it hold more than
its bound."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from torchslim.proof import census as census_mod
from torchslim.proof.census import census_folder, ran_code_under


def run(host: Path, cwd: Path, *argv: str, path: str = "") -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "PYTHONDONTWRITEBYTECODE": "1"}
    env["PYTHONPATH"] = str(host) + (":" + path if path else "")
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_opened_and_ran_files_are_recorded_and_the_images_sitecustomize_runs(
    tmp_path: Path,
) -> None:
    app = tmp_path / "app"
    (app / "pkg").mkdir(parents=True)
    (app / "pkg" / "__init__.py").write_text("")
    (app / "pkg" / "lazy.py").write_text("VALUE = 7\n")
    (app / "main.py").write_text(
        "import importlib\nprint(importlib.import_module('pkg.lazy').VALUE)\n"
        "open('data.py').read()\n"  # read, never run
    )
    (app / "data.py").write_text("X = 1\n")
    image_site = tmp_path / "image-site"
    image_site.mkdir()
    (image_site / "sitecustomize.py").write_text("print('image sitecustomize')\n")
    with census_folder() as census:
        out = run(census.host, app, "main.py", path=str(image_site))
        opened, ran = census.read()
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["image", "sitecustomize", "7"]
    assert str(app / "pkg" / "lazy.py") in opened  # through importlib, relative to ""
    assert str(app / "data.py") in opened and str(app / "data.py") not in ran
    assert str(app / "main.py") in ran and str(app / "pkg" / "lazy.py") in ran
    assert ran_code_under(ran, str(app)) and not ran_code_under(ran, str(tmp_path / "srv"))
    assert all(p.startswith("/") for p in (*opened, *ran))


def test_data_files_and_mapped_shared_libraries_are_recorded(tmp_path: Path) -> None:
    """eStargz's prefetch wants every file the service needs before it answers: data it
    opens, and shared objects the loader maps (no audit event names those)."""
    (tmp_path / "weights.bin").write_bytes(b"\0" * 64)
    script = (
        "import ctypes, ctypes.util, zlib\n"  # zlib: an extension module, mapped
        "open('weights.bin', 'rb').read()\n"
        "ctypes.CDLL(ctypes.util.find_library('m'))\n"
        "import json\n"  # an import after the dlopen: the maps are read again
    )
    with census_folder() as census:
        out = run(census.host, tmp_path, "-c", script)
        opened, _ = census.read()
    assert out.returncode == 0, out.stderr
    assert str(tmp_path / "weights.bin") in opened
    mapped = [p for p in opened if ".so" in os.path.basename(p)]
    assert any("libm.so" in p or "libm-" in p for p in mapped), mapped
    assert any(os.path.basename(p).startswith("libc.so") or "/libc-" in p for p in mapped)


def test_a_service_cannot_make_the_census_hold_more_than_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(census_mod, "MAX_RECORDED", 1 << 16)
    with census_folder() as census:
        flood = f"f = open({str(census.host / 'opened')!r}, 'w')\n" + (
            "for i in range(100000): f.write('/x/' + str(i) + '.py\\n')\nf.close()\n"
        )
        out = run(census.host, tmp_path, "-c", flood)
        opened, _ = census.read()
    assert out.returncode == 0, out.stderr
    assert 0 < sum(len(p) + 1 for p in opened) <= 1 << 16
