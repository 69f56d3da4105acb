"""The HTML report opens offline in headless Chromium and its screenshot shows the charts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from support.images import file, layer
from support.png import colors

from torchslim.analyze import Analysis
from torchslim.analyze.html import to_html

Run = Callable[..., Analysis]
SITE = "usr/local/lib/python3.11/site-packages"
CHROMIUM = (
    shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
)


def screenshot(html_path: Path, png: Path, profile: Path) -> None:
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            "--window-size=1280,2000",
            html_path.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def sample(run: Run) -> Analysis:
    return run(
        layer(
            [
                file("usr/local/cuda-12.4/lib64/libcublas.so.12", 300_000),
                file("usr/local/cuda-12.4/bin/nvcc", 90_000, 0o755),
                file("usr/lib/gcc/x86_64-linux-gnu/12/cc1", 120_000, 0o755),
                file("root/.cache/pip/http/x", 60_000),
            ]
        ),
        layer(
            [
                file(f"{SITE}/torch/lib/libtorch_cpu.so", 400_000),
                file(f"{SITE}/torch/test/test_nn.py", 80_000),
                file(f"{SITE}/torch/include/ATen/ATen.h", 40_000),
                file("app/model.pt", 150_000),
            ]
        ),
        layer([file("app/model.pt", 150_000)]),
    )


def test_html_is_self_contained(analyze_layers: Run) -> None:
    page = to_html(sample(analyze_layers))
    assert "<svg" in page and "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page


@pytest.mark.e2e
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_html_screenshot_shows_charts(analyze_layers: Run, tmp_path: Path) -> None:
    a = sample(analyze_layers)
    html_path = tmp_path / "report.html"
    html_path.write_text(to_html(a), encoding="utf-8")
    png = tmp_path / "shot.png"
    screenshot(html_path, png, tmp_path / "profile")
    counts = colors(png.read_bytes())
    total = sum(counts.values())
    non_white = total - counts[(255, 255, 255)]
    assert non_white > total * 0.05, "screenshot is (nearly) blank"
    # the treemap's rectangles: torch (#ee4c2c), CUDA (#76b900), build tools (#6a00ff)
    for rgb in ((0xEE, 0x4C, 0x2C), (0x76, 0xB9, 0x00), (0x6A, 0x00, 0xFF)):
        assert counts[rgb] > 2000, f"treemap colour {rgb} missing"
    # the layer chart's hidden-bytes bar (#e74c3c)
    assert counts[(0xE7, 0x4C, 0x3C)] > 500
    keep = os.environ.get("TORCHSLIM_KEEP_SCREENSHOT")
    if keep:
        shutil.copyfile(png, keep)
