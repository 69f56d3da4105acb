"""Issue 3: --platform linux/amd64,linux/arm64 builds one image per platform and an index.

The OS-only target keeps it to Debian packages (torch for arm64 is not on this machine).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from torchslim.config import Platform
from torchslim.oci.layout import read_oci_layout

from .conftest import copy_example

pytestmark = [pytest.mark.e2e, pytest.mark.network]


def test_two_platforms_make_an_index(ts_cache: Path, tmp_path: Path) -> None:
    project = copy_example(tmp_path / "mp")
    out = tmp_path / "oci"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torchslim.cli",
            "build",
            str(project),
            "--target",
            "os",
            "--platform",
            "linux/amd64,linux/arm64",
            "--output",
            f"oci:{out}",
            "--json",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert [p["platform"] for p in report["platforms"]] == ["linux/amd64", "linux/arm64"]
    index = json.loads((out / "index.json").read_text())
    nested = index["manifests"][0]
    assert nested["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert nested["digest"] == report["digest"]
    blob = out / "blobs" / "sha256" / nested["digest"].split(":")[1]
    platforms = [m["platform"]["architecture"] for m in json.loads(blob.read_text())["manifests"]]
    assert platforms == ["amd64", "arm64"]
    for arch in ("amd64", "arm64"):
        image = read_oci_layout(out, None, platform=Platform("linux", arch))
        assert image.config()["architecture"] == arch
        assert image.digest() in {p["digest"] for p in report["platforms"]}
    if shutil.which("skopeo"):
        raw = subprocess.run(
            # By tag: index.json also lists each platform's SBOMs and provenance (referrers).
            ["skopeo", "inspect", "--raw", f"oci:{out}:{report['platforms'][0]['tag']}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert len(json.loads(raw)["manifests"]) == 2
