"""profile "used": real wheels installed by ``installer``, compiled by the real compiler;
what the service never imported goes, what it did (and what loads without an import)
stays, and the real import system agrees."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from support.wheels import make_wheel

from torchslim.deps.install import Scheme, install_wheel
from torchslim.slim.ledger import Ledger
from torchslim.slim.pyc import precompile
from torchslim.slim.used import DISTRIBUTION_STEP, MODULE_STEP, drop_unused

SITE = "/usr/local/lib/python3.11/dist-packages"
VERSION = "{}.{}".format(*sys.version_info[:2])
TAG = f"cpython-{VERSION.replace('.', '')}"
SCHEME = Scheme(
    purelib=SITE, platlib=SITE, scripts="/usr/local/bin", data="/usr/local",
    headers="/usr/local/include/python3.11",
)  # fmt: skip


def install(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    made = [
        make_wheel(
            wheels,
            "uselib",
            extra={
                "uselib/used.py": b"VALUE = 1\n",
                "uselib/unused.py": b"VALUE = 2\n",
                "uselib/__main__.py": b"import uselib.used\nprint('main', uselib.used.VALUE)\n",
            },
        ),  # fmt: skip
        make_wheel(wheels, "pureunused", extra={"pureunused/big.py": b"X = 1\n" * 1000}),
        make_wheel(wheels, "native", extra={"native/_lib.so": b"\x7fELF not really"}),
        make_wheel(wheels, "hook", extra={"hook.pth": b"import os\n"}),
        make_wheel(wheels, "heldback"),
    ]
    root = tmp_path / "root"
    dist_of: dict[str, str] = {}
    for wheel in made:
        name = wheel.name.split("-")[0]
        for path in install_wheel(wheel, root, SCHEME, "/usr/bin/python3"):
            dist_of[path] = name
    precompile(root, SITE, VERSION)
    return root, dist_of


def test_what_was_never_imported_goes_and_the_rest_still_imports(tmp_path: Path) -> None:
    root, dist_of = install(tmp_path)
    site = root / SITE.lstrip("/")
    ledger = Ledger()
    imported = ["uselib", "uselib.used"]
    result = drop_unused(root, SITE, imported, dist_of, ["heldback"], VERSION, ledger)

    # A distribution none of whose modules was imported goes whole: its package, its
    # dist-info, its console scripts.
    assert [d.name for d in result.distributions] == ["pureunused"]
    assert result.distributions[0].bytes > 6000
    assert not (site / "pureunused").exists()
    assert not list(site.glob("pureunused-*.dist-info"))
    assert not (root / "usr/local/bin/pureunused").exists()
    # Kept whole: one that ships a shared object, one with a .pth, one a keep glob names.
    assert (site / "native/_lib.so").is_file() and (site / "native-1.0.dist-info").is_dir()
    assert (site / "hook.pth").is_file()
    assert (site / "heldback/__init__.py").is_file()
    # In a kept distribution, the modules never imported go with their .pyc; __main__
    # stays (``python -m`` runs it unseen by the census).
    assert (site / "uselib/used.py").is_file()
    assert (site / f"uselib/__pycache__/used.{TAG}.pyc").is_file()
    assert not (site / "uselib/unused.py").exists()
    assert not (site / f"uselib/__pycache__/unused.{TAG}.pyc").exists()
    assert (site / "uselib/__main__.py").is_file()
    assert not (site / "native/__init__.py").exists()  # imported by nobody; the .so stays

    rows = {rid: (files, nbytes) for rid, _, files, nbytes in ledger.by_rule()}
    assert rows[DISTRIBUTION_STEP][1] == result.distributions[0].bytes
    assert rows[MODULE_STEP] == (6, result.module_bytes)  # source and .pyc of each
    assert result.modules == 3  # uselib.unused, native, hook

    # RECORD lists what is there, and only that.
    for record in site.glob("*.dist-info/RECORD"):
        for row in csv.reader(record.read_text().splitlines()):
            assert (site / row[0]).exists() or row[0].startswith("../"), row[0]

    # The real import system: what was imported imports, -m runs, the unused is gone.
    env = {"PYTHONPATH": str(site)}
    run = [sys.executable, "-B", "-c"]
    ok = subprocess.run([*run, "import uselib.used"], env=env, check=False)
    assert ok.returncode == 0
    main = subprocess.run(
        [sys.executable, "-B", "-m", "uselib"], env=env, capture_output=True, text=True
    )
    assert main.stdout.strip() == "main 1", main.stderr
    gone = subprocess.run([*run, "import uselib.unused"], env=env, capture_output=True, text=True)
    assert "No module named 'uselib.unused'" in gone.stderr


def test_nothing_imported_keeps_what_loads_without_an_import(tmp_path: Path) -> None:
    root, dist_of = install(tmp_path)
    result = drop_unused(root, SITE, [], dist_of, [], VERSION, Ledger())
    assert sorted(d.name for d in result.distributions) == ["heldback", "pureunused", "uselib"]
    site = root / SITE.lstrip("/")
    assert (site / "native/_lib.so").is_file() and (site / "hook.pth").is_file()


def test_a_cuda_build_keeps_torchs_modules_whole(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    torch = make_wheel(wheels, "torch", extra={"torch/cuda_only.py": b"X = 1\n"})
    root, dist_of = tmp_path / "root", {}
    for path in install_wheel(torch, root, SCHEME, "/usr/bin/python3"):
        dist_of[path] = "torch"
    site = root / SITE.lstrip("/")
    # Served without a GPU, the census never saw torch's GPU paths: nothing of torch goes.
    cuda = drop_unused(root, SITE, ["torch"], dist_of, [], VERSION, Ledger(), gpu=True)
    assert cuda.modules == 0 and (site / "torch/cuda_only.py").is_file()
    cpu = drop_unused(root, SITE, ["torch"], dist_of, [], VERSION, Ledger())
    assert cpu.modules == 1 and not (site / "torch/cuda_only.py").exists()
