"""verify: bad input without an engine, recorded GPU failures, real podman runs of a CPU image."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from support.hosts import PROC_535, SMI_535, SMI_550, fake_host, healthy
from support.images import PORT, build_image, save_archive, save_layout

from torchslim.oci.mutate import with_config
from torchslim.runtime.engine import Engine, detect_engine
from torchslim.runtime.load import TEMP_REPO, image_cuda
from torchslim.runtime.verify import (
    VerifyResult,
    gpu_cause,
    render_verify,
    verify_image,
)

PODMAN_CONF = Path(__file__).resolve().parents[2] / "podman" / "containers.conf"
TAG = "localhost/torchslim-verify-test:1"
NO_ENGINE = Engine("podman", "/nonexistent/bin/podman")


def rendered(result: VerifyResult) -> str:
    console = Console(record=True, width=300, color_system=None)
    render_verify(result, console)
    return console.export_text()


# ---------------------------------------------------------------- bad input, no engine needed


def test_missing_archive_file(tmp_path: Path) -> None:
    r = verify_image(
        f"docker-archive:{tmp_path}/nope.tar",
        engine=NO_ENGINE,
        port=PORT,
        health="/health",
        smoke=[],
        gpu=False,
    )
    assert not r.ok and r.cause_kind == "input" and r.exit_code() == 1
    assert r.cause == f"image file {tmp_path}/nope.tar does not exist; build it or fix the path"


def test_missing_oci_layout(tmp_path: Path) -> None:
    r = verify_image(
        f"oci:{tmp_path}/nolayout", engine=NO_ENGINE, port=None, health=None, smoke=[], gpu=False
    )
    assert r.cause_kind == "input" and "does not exist" in (r.cause or "")


def test_missing_load_from(tmp_path: Path) -> None:
    r = verify_image(
        "x", engine=NO_ENGINE, port=None, health=None, smoke=[], gpu=False,
        load_from=tmp_path / "gone.tar",
    )  # fmt: skip
    assert r.cause_kind == "input"


def test_health_without_port() -> None:
    r = verify_image("x", engine=NO_ENGINE, port=None, health="/health", smoke=[], gpu=False)
    assert r.cause_kind == "input" and "needs a port" in (r.cause or "")


def test_missing_engine_binary() -> None:
    r = verify_image("some/image:1", engine=NO_ENGINE, port=PORT, health=None, smoke=[], gpu=False)
    assert not r.ok and r.cause_kind == "engine"
    assert "podman not found at /nonexistent/bin/podman" in (r.cause or "")
    assert "verify failed (engine)" in rendered(r)


# ---------------------------------------------------------------- causes from recorded failures

PODMAN = Engine("podman", "/usr/bin/podman")
DOCKER = Engine("docker", "/usr/bin/docker")
PODMAN_NO_CDI = "Error: setting up CDI devices: unresolvable CDI devices nvidia.com/gpu=all"
DOCKER_NO_HOOK = (
    'docker: Error response from daemon: could not select device driver "" with '
    "capabilities: [[gpu]]."
)
DOCKER_REQUIRE = (
    "nvidia-container-cli: requirement error: unsatisfied condition: cuda>=13.0, please update "
    "your driver to a newer version, or use an earlier cuda container: unknown."
)
TORCH_OLD = (
    "The NVIDIA driver on your system is too old (found version 12020). Please update your "
    "GPU driver by downloading and installing a new version from the URL: "
    "http://www.nvidia.com/Download/index.aspx"
)


def test_cause_no_cdi_spec(tmp_path: Path) -> None:
    kind, msg = gpu_cause(PODMAN, PODMAN_NO_CDI, "12.8", healthy(tmp_path).probe())
    assert kind == "toolkit" and "nvidia-ctk cdi generate" in msg


def test_cause_docker_without_toolkit(tmp_path: Path) -> None:
    kind, msg = gpu_cause(DOCKER, DOCKER_NO_HOOK, "12.8", healthy(tmp_path).probe())
    assert kind == "toolkit" and "nvidia-container-toolkit" in msg


def test_cause_no_driver(tmp_path: Path) -> None:
    host = fake_host(tmp_path, pci=True, nodes=())
    kind, msg = gpu_cause(PODMAN, PODMAN_NO_CDI, "12.8", host.probe())
    assert kind == "driver" and "no NVIDIA driver" in msg


def test_cause_driver_older_than_image_cuda(tmp_path: Path) -> None:
    host = healthy(tmp_path, proc=PROC_535, smi=SMI_535)
    kind, msg = gpu_cause(DOCKER, DOCKER_REQUIRE, "13.0", host.probe())
    assert kind == "driver"
    assert "535.104.05 is older than the image's CUDA 13.0" in msg and "580.65.06" in msg


def test_cause_torch_says_driver_too_old(tmp_path: Path) -> None:
    # The host driver looks new enough by the table, but torch disagrees: trust torch.
    host = healthy(tmp_path, smi=SMI_550)
    kind, msg = gpu_cause(PODMAN, TORCH_OLD, None, host.probe())
    assert kind == "driver" and "older than the image's CUDA" in msg


def test_exit_codes() -> None:
    base = {"health_seconds": None, "smoke_output": None, "gpu": None}
    assert VerifyResult(ok=True, cause=None, **base).exit_code() == 0
    assert VerifyResult(ok=False, cause="x", cause_kind="driver", **base).exit_code() == 4
    assert VerifyResult(ok=False, cause="x", cause_kind="toolkit", **base).exit_code() == 5
    assert VerifyResult(ok=False, cause="x", cause_kind="image", **base).exit_code() == 1


# ---------------------------------------------------------------- real podman


def _podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120)


def _leftovers() -> list[str]:
    out = _podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
    return [n for n in out if n.startswith("torchslim-verify-")]


def _temp_images() -> list[str]:
    out = _podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    return [n for n in out if n.startswith(TEMP_REPO + ":")]


@pytest.fixture(scope="module")
def podman_env() -> Iterator[Engine]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (bash scripts/install.sh installs it)")
    old = os.environ.get("CONTAINERS_CONF")
    os.environ["CONTAINERS_CONF"] = str(PODMAN_CONF)
    try:
        yield detect_engine("podman")
    finally:
        _podman("rmi", "-f", TAG)
        if old is None:
            os.environ.pop("CONTAINERS_CONF", None)
        else:
            os.environ["CONTAINERS_CONF"] = old


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("img")
    return save_archive(build_image(tmp), tmp / "image.tar", TAG)


@pytest.mark.e2e
def test_verify_archive_passes(podman_env: Engine, archive: Path) -> None:
    before = _leftovers()
    r = verify_image(
        f"docker-archive:{archive}",
        engine=podman_env,
        port=PORT,
        health="/health",
        smoke=["/app", "smoke", "hello"],
        gpu=False,
    )
    assert r.ok, r.cause
    assert r.image == TAG and r.health_seconds is not None and r.health_seconds < 60
    assert r.smoke_output == "smoke ok: hello"
    assert _leftovers() == before
    text = rendered(r)
    assert "/health answered" in text and f"verified {TAG}" in text


@pytest.mark.e2e
def test_verify_image_by_name_and_oci_layout(
    podman_env: Engine, archive: Path, tmp_path: Path
) -> None:
    # By name, now that the archive test (or this load) put it into storage.
    _podman("load", "-i", str(archive))
    r = verify_image(TAG, engine=podman_env, port=PORT, health="/health", smoke=[], gpu=False)
    assert r.ok, r.cause
    layout = save_layout(build_image(tmp_path), tmp_path / "layout", ref="v1")
    r = verify_image(
        f"oci:{layout}:v1", engine=podman_env, port=None, health=None,
        smoke=["/app", "smoke", "oci"], gpu=False,
    )  # fmt: skip
    assert r.ok, r.cause
    assert r.smoke_output == "smoke ok: oci" and r.image and r.image.startswith(TEMP_REPO)
    assert _temp_images() == [], "verify removes the images it named itself"


@pytest.mark.e2e
def test_health_never_answers(podman_env: Engine, archive: Path) -> None:
    before = _leftovers()
    r = verify_image(
        f"docker-archive:{archive}",
        engine=podman_env,
        port=PORT,
        health="/never",
        smoke=[],
        gpu=False,
        timeout=3,
    )
    assert not r.ok and r.cause_kind == "image"
    assert "/never did not answer 200 within 3s (last: HTTP 404)" in (r.cause or "")
    assert "listening on 8080" in (r.cause or ""), "the cause carries the container's logs"
    assert _leftovers() == before, "the container is removed after a failure"


@pytest.mark.e2e
def test_service_that_exits(podman_env: Engine, tmp_path: Path) -> None:
    tag = "localhost/torchslim-verify-test:dies"
    tar = save_archive(build_image(tmp_path, cmd=["fail"]), tmp_path / "dies.tar", tag)
    try:
        r = verify_image(
            f"docker-archive:{tar}", engine=podman_env, port=PORT, health="/health",
            smoke=[], gpu=False, timeout=30,
        )  # fmt: skip
    finally:
        _podman("rmi", "-f", tag)
    assert not r.ok and "the container exited with code 3" in (r.cause or "")
    assert "boom: fail" in (r.cause or "")


@pytest.mark.e2e
def test_failing_smoke(podman_env: Engine, archive: Path) -> None:
    r = verify_image(
        f"docker-archive:{archive}", engine=podman_env, port=PORT, health="/health",
        smoke=["/app", "fail"], gpu=False,
    )  # fmt: skip
    assert not r.ok and r.health_seconds is not None
    assert r.cause == "smoke command `/app fail` exited 3: boom: fail"


@pytest.mark.e2e
def test_gpu_on_a_host_without_one(podman_env: Engine, archive: Path) -> None:
    has_gpu = Path("/proc/driver/nvidia/version").exists()
    if has_gpu:
        pytest.skip("this host has an NVIDIA driver")
    r = verify_image(
        f"docker-archive:{archive}", engine=podman_env, port=PORT, health="/health",
        smoke=[], gpu=True,
    )  # fmt: skip
    assert not r.ok and r.cause_kind == "driver" and r.exit_code() == 4
    assert "no NVIDIA driver is loaded" in (r.cause or "")
    assert _leftovers() == []


# ---------------------------------------------------------------- GPU path, recorded engine output

GPU_OK = (
    'TORCHSLIM-GPU {"torch": "2.9.0+cu128", "cuda": "12.8", "available": true, '
    '"device": "NVIDIA H100 80GB HBM3", "count": 1, "matmul": [[2.0, 3.0], [6.0, 11.0]]}'
)
GPU_CPU_BUILD = (
    'TORCHSLIM-GPU {"torch": "2.13.0+cpu", "cuda": null, "available": false, '
    '"error": "Torch not compiled with CUDA enabled"}'
)
GPU_OLD_DRIVER = (
    'TORCHSLIM-GPU {"torch": "2.9.0+cu130", "cuda": "13.0", "available": false, '
    '"error": "The NVIDIA driver on your system is too old (found version 12020)."}'
)
GPU_BAD_MATH = GPU_OK.replace("11.0", "12.0")


def recorded_engine(tmp: Path, name: str, gpu_line: str, torch_label: str) -> Engine:
    """An engine executable that answers like podman/docker with recorded output, logging argv."""
    (tmp / "gpu.out").write_text(gpu_line + "\n")
    script = tmp / name
    script.write_text(
        f"""#!/bin/sh
echo "$*" >> "{tmp}/argv.log"
case "$1 $2" in
  "image inspect") echo '[{{"Config": {{"Labels": {{"dev.torchslim.torch": "{torch_label}"}},
                           "Env": ["PATH=/usr/bin"]}}}}]' ;;
  "run --rm") cat "{tmp}/gpu.out" ;;
esac
"""
    )
    script.chmod(0o755)
    return Engine(name, str(script))  # type: ignore[arg-type]


@pytest.mark.parametrize(("engine_name", "flags"), [("podman", "--device nvidia.com/gpu=all"),
                                                    ("docker", "--gpus all")])  # fmt: skip
def test_gpu_ok_with_recorded_engine(tmp_path: Path, engine_name: str, flags: str) -> None:
    engine = recorded_engine(tmp_path, engine_name, GPU_OK, "2.9.0+cu128")
    r = verify_image("img:1", engine=engine, port=None, health=None, smoke=[], gpu=True)
    assert r.ok, r.cause
    assert r.gpu is not None and r.gpu["device"] == "NVIDIA H100 80GB HBM3"
    log = (tmp_path / "argv.log").read_text()
    assert f"run --rm {flags} --entrypoint python3 img:1 -c" in log
    text = rendered(r)
    assert "torch.cuda.is_available(): True  device: NVIDIA H100 80GB HBM3" in text


def test_gpu_with_cpu_torch(tmp_path: Path) -> None:
    engine = recorded_engine(tmp_path, "podman", GPU_CPU_BUILD, "2.13.0+cpu")
    r = verify_image("img:1", engine=engine, port=None, health=None, smoke=[], gpu=True)
    assert not r.ok and r.cause_kind == "image" and "CPU build" in (r.cause or "")


def test_gpu_driver_older_than_image(tmp_path: Path) -> None:
    engine = recorded_engine(tmp_path, "docker", GPU_OLD_DRIVER, "2.9.0+cu130")
    host = healthy(tmp_path / "host", proc=PROC_535, smi=SMI_535)
    r = verify_image(
        "img:1", engine=engine, port=None, health=None, smoke=[], gpu=True, host=host.probe()
    )
    assert not r.ok and r.cause_kind == "driver" and r.exit_code() == 4
    assert "driver 535.104.05 is older than the image's CUDA 13.0" in (r.cause or "")


def test_gpu_wrong_matmul(tmp_path: Path) -> None:
    engine = recorded_engine(tmp_path, "podman", GPU_BAD_MATH, "2.9.0+cu128")
    r = verify_image("img:1", engine=engine, port=None, health=None, smoke=[], gpu=True)
    assert not r.ok and "matmul on the GPU gave" in (r.cause or "")


def test_image_cuda_from_archive_and_layout(tmp_path: Path) -> None:
    img = with_config(build_image(tmp_path), labels={"dev.torchslim.torch": "2.9.0+cu130"})
    tar = save_archive(img, tmp_path / "cu.tar", "x/y:1")
    layout = save_layout(img, tmp_path / "cu-layout", ref="v1")
    assert image_cuda(f"docker-archive:{tar}") == "13.0"
    assert image_cuda(str(tar)) == "13.0"
    assert image_cuda(f"oci:{layout}:v1") == "13.0"
    assert image_cuda(f"docker-archive:{tmp_path}/missing.tar") is None
