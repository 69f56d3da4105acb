"""`torchslim init` on a seed-style project, then a real `torchslim build` of what it wrote.

The project is shaped like the services of the issue: a multi-stage Dockerfile (builder,
test and runtime stages), requirements-prod.txt and requirements-dev.txt, weights the
Dockerfile copies, an app folder, and tests/scripts/.env beside it.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from support.projects import seed_project

from .conftest import EXAMPLE
from .test_build_example import torchslim

pytestmark = [pytest.mark.e2e, pytest.mark.network]

# The example's pins: their wheels are in the shared cache already.
PROD = "torch==2.13.0\nfastapi==0.115.*\nuvicorn==0.32.*\n"


def layer_files(oci: Path, digest: str) -> set[str]:
    blob = oci / "blobs" / digest.replace(":", "/")
    with tarfile.open(blob) as tar:
        return {m.name for m in tar.getmembers() if m.isfile()}


def seed(tmp_path: Path) -> Path:
    root = seed_project(tmp_path / "seed", weights=(EXAMPLE / "model" / "model.pt").read_bytes())
    (root / "requirements-prod.txt").write_text(PROD)
    proc = torchslim("init", str(root))
    assert proc.returncode == 0, proc.stderr
    assert "← torch==2.13.0 in requirements-prod.txt:1" in proc.stdout
    return root


def test_init_then_build_seed_project(ts_cache: Path, tmp_path: Path) -> None:
    root = seed(tmp_path)  # built as init wrote it: requirements are found in the project
    report_path = tmp_path / "r.json"
    oci = tmp_path / "oci"
    proc = torchslim("build", str(root), "--output", f"oci:{oci}", "--json", str(report_path))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(report_path.read_text())
    layers = {layer["name"]: layer["digest"] for layer in report["layers"]}
    # the build proved the image: the entry module imported, which loads the weights
    # from MODEL_PATH — the path init moved from the Dockerfile's /srv to /app
    assert layer_files(oci, layers["model"]) == {"app/weights/classifier.pt"}
    app_files = layer_files(oci, layers["app"])
    assert {"app/app/main.py", "app/app/__init__.py"} <= app_files
    assert not any(".env" in n or "tests/" in n or "scripts/" in n for n in app_files)
    index = json.loads((oci / "index.json").read_text())
    manifest = json.loads(
        (oci / "blobs" / index["manifests"][0]["digest"].replace(":", "/")).read_text()
    )
    config = json.loads(
        (oci / "blobs" / manifest["config"]["digest"].replace(":", "/")).read_text()
    )
    cfg = config["config"]
    assert cfg["User"].split(":")[0] == "10001"
    assert cfg["Cmd"] == ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8080"]
    assert "8080/tcp" in cfg["ExposedPorts"]
    assert "MODEL_PATH=/app/weights/classifier.pt" in cfg["Env"]
