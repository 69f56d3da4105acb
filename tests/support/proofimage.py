"""The example image's root filesystem, for e2e proof tests: build it, unpack it with umoci.

The build uses ``TORCHSLIM_TEST_CACHE`` when set (a warm cache makes it take seconds),
else the cache the caller passes (the session's), else a fresh one under the test's
temporary directory (a cold build: network).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def build_and_unpack(
    example: Path,
    work: Path,
    *build_args: str,
    python: str | None = None,
    cache: Path | None = None,
) -> Path:
    """Build ``example`` (with ``python = PYTHON``) to ``work/oci`` and unpack it; returns
    the rootfs directory. ``cache``: the session's torchslim cache (``ts_cache``), where
    the e2e builds of the example already put its layers."""
    if shutil.which("umoci") is None:
        pytest.skip("umoci is not installed (bash scripts/install.sh installs it)")
    project = work / "project"
    shutil.copytree(example, project, ignore=shutil.ignore_patterns("pylock.toml", "__pycache__"))
    if python is not None:
        config = project / "torchslim.toml"
        text = re.sub(r'(?m)^python = ".*"$', f'python = "{python}"', config.read_text())
        config.write_text(text)
    cache = os.environ.get("TORCHSLIM_TEST_CACHE") or str(cache or work / "cache")
    src = Path(__file__).resolve().parents[3] / "src"
    env = {**os.environ, "TORCHSLIM_CACHE": cache, "PYTHONPATH": str(src)}
    oci = work / "oci"
    build = subprocess.run(
        [sys.executable, "-m", "torchslim.cli", "build", str(project), "--output", f"oci:{oci}"]
        + list(build_args),
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    index = json.loads((oci / "index.json").read_text())
    tag = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
    bundle = work / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--rootless", "--image", f"{oci}:{tag}", str(bundle)],
        capture_output=True,
        check=True,
        timeout=600,
    )
    return bundle / "rootfs"


def download_wheel(requirement: str, platform: str, dest: Path) -> Path:
    """One real binary wheel for ``platform`` (PyPI), unpacked nowhere: the file."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
         "--platform", platform, "--python-version", "3.11", "-d", str(dest), requirement],
        capture_output=True, check=True, timeout=600,
    )  # fmt: skip
    return next(dest.glob("*.whl"))
