"""The issue's acceptance: build the example, load it into real podman, run it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import copy_example, free_port, podman, wait_healthy

pytestmark = [pytest.mark.e2e, pytest.mark.network]


def torchslim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "torchslim.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )


def build_to_oci(project: Path, tmp_path: Path) -> dict[str, Any]:
    """Build ``project`` to an OCI layout under ``tmp_path``; return the JSON report."""
    report = tmp_path / "r.json"
    proc = torchslim(
        "build", str(project), "--output", f"oci:{tmp_path / 'oci'}", "--json", str(report)
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(report.read_text())
    return data


def build_archive(project: Path, out: Path, name: str, *flags: str) -> tuple[Path, dict[str, Any]]:
    """``torchslim build PROJECT FLAGS`` to ``out/NAME.tar``; the archive and its report."""
    archive, report = out / f"{name}.tar", out / f"{name}.json"
    proc = torchslim(
        "build", str(project), *flags, "--output", f"docker-archive:{archive}",
        "--json", str(report),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return archive, json.loads(report.read_text())


@pytest.fixture(scope="module")
def built(ts_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    work = tmp_path_factory.mktemp("a")
    project = copy_example(work / "hello-torch")
    archive = work / "hello.tar"
    proc = torchslim(
        "build",
        str(project),
        "--output",
        f"docker-archive:{archive}",
        "--json",
        str(work / "report.json"),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((work / "report.json").read_text())
    return {"project": project, "archive": archive, "report": report, "work": work}


def test_runs_in_podman_as_uid_1000_and_is_healthy(built: dict[str, object]) -> None:
    archive = built["archive"]
    out = podman("load", "-i", str(archive)).stdout
    assert "hello-torch:v1.2-pytorch2.13-cpu" in out
    image = "localhost/hello-torch:v1.2-pytorch2.13-cpu"
    port = free_port()
    name = f"hello-e2e-{port}"
    podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000", image)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health")
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json={"inputs": [[1, 2, 3, 4]]})
        assert r.status_code == 200
        assert r.json() == {"outputs": [[0.5, 1.0]]}
        uid = podman("exec", name, "python3", "-c", "import os; print(os.getuid(), os.getgid())")
        assert uid.stdout.split() == ["1000", "1000"]
        assert podman("healthcheck", "run", name, check=False).returncode == 0
        # No shell: a distroless-like base.
        assert podman("exec", name, "/bin/sh", "-c", "true", check=False).returncode != 0
    finally:
        podman("rm", "-f", name, check=False)


def test_report_shows_slimming(built: dict[str, object]) -> None:
    report = built["report"]
    assert isinstance(report, dict)
    names = [layer["name"] for layer in report["layers"]]
    assert names == ["base", "torch", "deps", "app", "model"]
    ledger = report["ledger"]
    assert ledger["total"] > 100_000_000
    ids = {r["id"] for r in ledger["rules"]}
    assert {"torch-test-binaries", "torch-headers"} <= ids
    assert (
        report["size"]["uncompressed"] + ledger["total"] == report["size"]["no_slim_uncompressed"]
    )


def test_same_build_elsewhere_same_digest(built: dict[str, object], tmp_path: Path) -> None:
    project = copy_example(tmp_path / "elsewhere")
    report = built["report"]
    assert isinstance(report, dict)
    assert build_to_oci(project, tmp_path)["digest"] == report["digest"]


def test_touching_app_rebuilds_one_layer(built: dict[str, object], tmp_path: Path) -> None:
    project = built["project"]
    assert isinstance(project, Path)
    main = project / "service" / "main.py"
    main.write_text(main.read_text() + "\n# touched\n")
    layers = build_to_oci(project, tmp_path)["layers"]
    rebuilt = [layer["name"] for layer in layers if not layer["cached"]]
    assert rebuilt == ["app"]


def test_existing_output_refused(built: dict[str, object]) -> None:
    archive = built["archive"]
    assert isinstance(archive, Path)
    before = archive.stat().st_mtime_ns
    proc = torchslim("build", str(built["project"]), "--output", f"docker-archive:{archive}")
    assert proc.returncode != 0
    assert "already exists" in proc.stderr and "--force" in proc.stderr
    assert archive.stat().st_mtime_ns == before


def test_verify_runs_health_and_smoke(built: dict[str, object]) -> None:
    """`torchslim verify` loads the archive, waits for /health and runs the smoke command."""
    proc = torchslim(
        "verify",
        f"docker-archive:{built['archive']}",
        "--project",
        str(built["project"]),
        "--engine",
        "podman",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2.13.0+cpu" in proc.stdout  # the smoke command prints torch.__version__


def test_analyze_answers_for_the_built_image(built: dict[str, object], tmp_path: Path) -> None:
    """The four questions on torchslim's own image: no compiler, no devel base, no dev
    packages, not root — and no finding at high severity, so the CI gate passes."""
    out = tmp_path / "a.json"
    proc = torchslim(
        "analyze",
        f"docker-archive:{built['archive']}",
        "--json",
        str(out),
        "--fail-on",
        "high",
        "--max-size",
        "400MB",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    answers = json.loads(out.read_text())["answers"]
    assert answers["compiler_present"] is False
    assert answers["devel_base"] is False
    assert answers["dev_packages"] == []
    assert answers["runs_as_root"] is False


def test_zstd_archive_loads_and_serves(built: dict[str, object], tmp_path: Path) -> None:
    """`--compression zstd` layers load into podman and the service answers."""
    archive = tmp_path / "zstd.tar"
    proc = torchslim(
        "build",
        str(built["project"]),
        "--compression",
        "zstd",
        "--tag",
        "zstd",
        "--output",
        f"docker-archive:{archive}",
    )
    assert proc.returncode == 0, proc.stderr
    assert "localhost/hello-torch:zstd" in podman("load", "-i", str(archive)).stdout
    port = free_port()
    name = f"zstd-e2e-{port}"
    podman(
        "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000", "localhost/hello-torch:zstd"
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health")
    finally:
        podman("rm", "-f", name, check=False)
        podman("rmi", "-f", "localhost/hello-torch:zstd", check=False)


def test_notebook_target_shares_the_service_layers_and_needs_a_token(
    built: dict[str, object], tmp_path: Path
) -> None:
    """``--target notebook`` (issue 25): the service's layers plus one Jupyter layer;
    proven by serving (``/api/status`` with the token, 403 without); in podman read-only
    as uid 1000 it refuses to start without a token, answers with one, starts a kernel,
    and that kernel's interpreter imports the service's torch."""
    project = copy_example(tmp_path / "hello-torch")  # another test touches the shared one
    service = build_to_oci(project, tmp_path)
    archive, report = build_archive(project, tmp_path, "nb", "--target", "notebook")
    served = report["proof"]["served"]
    assert report["proof"]["status"] == "proven" and served["requests"] == 2, served
    assert not re.search(r"token=\w", json.dumps(report["proof"])), "the token is not printed"
    names = [layer["name"] for layer in report["layers"]]
    assert names[-1] == "jupyter" and [x["digest"] for x in report["layers"][:-1]] == [
        x["digest"] for x in service["layers"]
    ]
    image = "localhost/hello-torch:v1.2-pytorch2.13-cpu-notebook"
    assert image in podman("load", "-i", str(archive)).stdout
    refused = podman("run", "--rm", "--read-only", "--tmpfs", "/tmp", image, check=False)
    assert refused.returncode != 0
    [line] = [x for x in refused.stderr.splitlines() if "torchslim notebook:" in x]
    assert "refusing to start without a token" in line and "JUPYTER_TOKEN" in line
    port = free_port()
    name = f"notebook-e2e-{port}"
    podman(
        "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp",
        "-e", "JUPYTER_TOKEN=s3cret", "-p", f"127.0.0.1:{port}:8888", image,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "token s3cret"}
    try:
        wait_healthy(f"{url}/api/status?token=s3cret")
        assert httpx.get(f"{url}/api/status").status_code == 403
        assert (
            httpx.get(f"{url}/api/status", headers={"Authorization": "token x"}).status_code == 403
        )
        kernel = httpx.post(f"{url}/api/kernels", headers=auth, json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        # The kernel runs (jupyter-server reports "idle" only once a client connects).
        find = (
            "import pathlib; print(any(b'ipykernel_launcher' in p.read_bytes() "
            "for p in pathlib.Path('/proc').glob('[0-9]*/cmdline')))"
        )
        running = ""
        for _ in range(60):
            running = podman("exec", name, "python3", "-c", find).stdout.strip()
            if running == "True":
                break
            time.sleep(0.5)
        assert running == "True"
        check = "import os, torch; print(os.getuid(), torch.__version__)"
        out = podman("exec", name, "python3", "-c", check).stdout.split()
        assert out == ["1000", "2.13.0+cpu"]
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
        podman("rmi", "-f", image, check=False)


def test_debug_target_of_the_example_dumps_its_uvicorn(
    built: dict[str, object], tmp_path: Path
) -> None:
    """``--target debug`` (issue 25) on the example: the service's layers plus one tools
    layer; a debug container in the running service's PID namespace has a shell and
    py-spy dumps the service's uvicorn, as `kubectl debug --target` would."""
    project = copy_example(tmp_path / "hello-torch")
    archive, service = build_archive(project, tmp_path, "svc")
    debug_archive, debug = build_archive(project, tmp_path, "debug", "--target", "debug")
    assert debug["proof"]["status"] == "proven"
    assert [x["digest"] for x in debug["layers"][:-1]] == [x["digest"] for x in service["layers"]]
    assert debug["layers"][-1]["name"] == "debug-tools"
    image = "localhost/hello-torch:v1.2-pytorch2.13-cpu"
    tools = image + "-debug"
    podman("load", "-i", str(archive))
    podman("load", "-i", str(debug_archive))
    name = f"hello-debug-{free_port()}"
    podman("run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", image)
    try:
        shell = podman("run", "--rm", "--pid", f"container:{name}", tools, "sh", "-c", "ps")
        assert "uvicorn" in shell.stdout, shell.stdout
        out = ""
        for _ in range(30):  # until uvicorn has started its loop
            dump = podman(
                "run", "--rm", "--pid", f"container:{name}", "--cap-add", "SYS_PTRACE",
                tools, "py-spy", "dump", "--pid", "1", check=False,
            )  # fmt: skip
            out = dump.stdout + dump.stderr
            if dump.returncode == 0 and "uvicorn" in out:
                break
            time.sleep(1)
        assert "Process 1:" in out and "uvicorn" in out, out
        uid = podman("exec", name, "python3", "-c", "import os; print(os.getuid())").stdout
        assert uid.strip() == "1000"
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
        podman("rmi", "-f", tools, check=False)
