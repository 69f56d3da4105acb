"""bench/fleet.py in its small form (what CI runs): it builds, pushes, pulls by partial and
plain pulls into empty podman stores, starts the image and prints its table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.network]

REPO = Path(__file__).resolve().parents[2]


def test_the_fleet_bench_runs_in_its_small_form(ts_cache: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fleet.py"), "--smoke"],
        capture_output=True,
        text=True,
        check=False,
        timeout=1500,
        env={**os.environ, "TORCHSLIM_CACHE": str(ts_cache)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in proc.stdout.splitlines() if "|" in line}
    assert "size as pushed, zstd:chunked" in rows
    assert "pull + run + first 2xx, unshaped, partial pulls on (zstd:chunked)" in rows
    app = rows["update bytes, app-only change"]
    assert "kB" in app, app  # an app release moves kilobytes, not the image
