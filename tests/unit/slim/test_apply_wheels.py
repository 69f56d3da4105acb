"""Slimming and the closure check on real wheels that older torchslim refused or broke:
auditwheel-repaired libraries that find their siblings through the loading extension's
DT_RPATH (Pillow 10.1, numpy 1.24, OpenCV 4.8), and numpy 2.x's patchelf'd OpenBLAS
that GNU strip breaks. Each slimmed tree is imported by a real CPython 3.11.

Run: pytest -m network tests/unit/slim/test_slim_wheels.py
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from support.slim import SITE
from support.wheelcache import install, python_in, system_tree, wheel

from torchslim.slim.apply import slim_tree
from torchslim.slim.closure import check_closure, raise_for_missing
from torchslim.slim.elf import elf_info
from torchslim.slim.ledger import Ledger
from torchslim.slim.segments import load_problem

pytestmark = pytest.mark.network

NUMPY = (
    "import numpy as np; a = np.random.rand(200, 200); "
    "assert np.allclose(a @ np.linalg.inv(a), np.eye(200), atol=1e-6); "
    "assert np.fft.fft(np.ones(8))[0] == 8; print(np.__file__)"
)
PIL = (
    "import io; from PIL import Image, ImageDraw, ImageFont, ImageCms, features\n"
    "im = Image.new('RGB', (64, 64), (200, 10, 10))\n"
    "for fmt in ('PNG', 'JPEG', 'WEBP', 'TIFF', 'JPEG2000'):\n"
    "    b = io.BytesIO(); im.save(b, fmt); b.seek(0); Image.open(b).load()\n"
    "ImageDraw.Draw(im).text((1, 1), 'hi', font=ImageFont.load_default())\n"
    "ImageCms.createProfile('sRGB')\n"
    "assert features.check('freetype2') and features.check('webp')\n"
    "import PIL; print(PIL.__file__)"
)
CV2 = (
    "import cv2, numpy as np; a = (np.random.rand(64, 64, 3) * 255).astype('uint8')\n"
    "ok, png = cv2.imencode('.png', a); assert ok and (cv2.imdecode(png, 1) == a).all()\n"
    "ok, jpg = cv2.imencode('.jpg', a); assert ok\n"
    "print(cv2.__file__)"
)

CASES = {
    "pillow-10.1.0": ([("pillow", "10.1.0")], PIL),
    "pillow-12.3.0": ([("pillow", "12.3.0")], PIL),
    "numpy-1.24.3": ([("numpy", "1.24.3")], NUMPY),
    "numpy-2.4.1": ([("numpy", "2.4.1")], NUMPY),
    "opencv-4.8.1.78": ([("opencv-python-headless", "4.8.1.78"), ("numpy", "1.24.3")], CV2),
    "opencv-4.14.0.94": ([("opencv-python-headless", "4.14.0.94"), ("numpy", "2.4.1")], CV2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_wheel_slims_passes_the_check_and_imports(tmp_path: Path, case: str) -> None:
    pins, code = CASES[case]
    site = install(tmp_path, *(wheel(n, v) for n, v in pins))
    trees = [(tmp_path, "/"), system_tree()]
    assert check_closure(trees, check_prefixes=[SITE]) == []  # the wheel as published

    ledger = Ledger()
    removed = slim_tree(tmp_path, SITE, ledger=ledger, backup=tmp_path / "bk")
    missing = check_closure(trees, check_prefixes=[SITE], removed=removed, backup=tmp_path / "bk")
    assert [m.message() for m in missing] == []
    raise_for_missing(missing)
    assert {rid for rid, *_ in ledger.by_rule()} >= {"strip-symbols"}

    run = python_in(site, code)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith(str(site.resolve()))


def test_numpy2_openblas_strip_break_is_caught(tmp_path: Path) -> None:
    """GNU strip on numpy 2.x's OpenBLAS makes ``import numpy`` fail; slimming refuses
    that stripped copy (ledger: reverted) and the slimmed numpy imports."""
    strip = shutil.which("strip")
    if strip is None:
        pytest.skip("binutils strip not installed")
    numpy = wheel("numpy", "2.4.1")
    broken_site = install(tmp_path / "broken", numpy)
    (blas,) = (broken_site / "numpy.libs").glob("libscipy_openblas64_*.so")
    subprocess.run([strip, "--strip-unneeded", str(blas)], check=True)
    info = elf_info(blas)
    assert info is not None
    problem = load_problem(info.loads, blas.stat().st_size)
    assert problem is not None and "not page-aligned" in problem
    run = python_in(broken_site, NUMPY)
    assert run.returncode != 0
    assert "ELF load command address/offset not page-aligned" in run.stderr

    site = install(tmp_path / "slim", numpy)
    ledger = Ledger()
    slim_tree(tmp_path / "slim", SITE, ledger=ledger)
    reverted = {r.path.rsplit("/", 1)[-1]: r for r in ledger.reverts()}
    assert blas.name in reverted and "not page-aligned" in reverted[blas.name].reason
    assert reverted[blas.name].rule == "strip-symbols" and reverted[blas.name].bytes > 1_000_000
    run = python_in(site, NUMPY)
    assert run.returncode == 0, run.stderr
