"""doctor against recorded host states (fake roots, a fake nvidia-smi), and against this host."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from support.hosts import (
    DAEMON_DEFAULT,
    DAEMON_NVIDIA,
    DAEMON_PLAIN,
    PROC_535,
    PROC_550,
    PROC_580,
    SMI_535,
    SMI_580,
    SMI_NO_DRIVER,
    cdi_yaml,
    fake_host,
    healthy,
)

from torchslim.errors import ConfigError
from torchslim.runtime.doctor import (
    EXIT_DRIVER,
    EXIT_NO_GPU,
    EXIT_OK,
    EXIT_TOOLKIT,
    Check,
    DoctorReport,
    render_doctor,
    run_doctor,
)
from torchslim.runtime.probe import HostProbe


def check(report: DoctorReport, cid: str) -> Check:
    return next(c for c in report.checks if c.id == cid)


def rendered(report: DoctorReport) -> str:
    console = Console(record=True, width=200, color_system=None)
    render_doctor(report, console)
    return console.export_text()


def test_healthy_host_passes(tmp_path: Path) -> None:
    report = run_doctor(variant="cu124", host=healthy(tmp_path).probe())
    assert report.exit_code() == EXIT_OK, report.checks
    assert report.driver_version == "550.54.15"
    assert report.gpus == ["NVIDIA H100 80GB HBM3"] * 2
    assert all(c.ok is not False for c in report.checks)
    assert "this host can run GPU images" in rendered(report)


def test_empty_host_has_no_gpu(tmp_path: Path) -> None:
    host = fake_host(tmp_path, pci=False, nodes=(), tools=("docker", "podman"))
    report = run_doctor(variant="cu128", host=host.probe())
    assert not report.gpu_present
    assert report.exit_code() == EXIT_NO_GPU == 3
    assert "no NVIDIA GPU on this host" in rendered(report)


def test_smi_installed_but_no_gpu_and_no_driver(tmp_path: Path) -> None:
    # A CPU cloud image with the driver utilities installed but nothing to drive.
    host = fake_host(tmp_path, smi=SMI_NO_DRIVER, smi_rc=9, pci=False, nodes=())
    assert run_doctor(host=host.probe()).exit_code() == EXIT_NO_GPU


def test_this_host_real_probe() -> None:
    """The real doctor on this machine: without a GPU it must say so plainly and exit 3."""
    report = run_doctor(variant="cu128")
    has_gpu = Path("/proc/driver/nvidia/version").exists() or any(Path("/dev").glob("nvidia[0-9]"))
    if has_gpu:
        assert report.gpu_present and report.exit_code() != EXIT_NO_GPU
    else:
        assert report.exit_code() == EXIT_NO_GPU
        text = rendered(report)
        assert "no NVIDIA GPU on this host" in text and "(exit 3)" in text


def test_driver_too_old_for_cu130(tmp_path: Path) -> None:
    host = healthy(tmp_path, proc=PROC_535, smi=SMI_535, cdi=cdi_yaml("535.104.05"))
    report = run_doctor(variant="cu130", host=host.probe())
    c = check(report, "driver-cuda")
    assert c.ok is False
    assert "535.104.05 is too old" in c.summary and "580.65.06" in c.summary
    assert c.fix is not None and "580.65.06" in c.fix and "nvidia-driver-580" in c.fix
    assert report.exit_code() == EXIT_DRIVER == 4
    assert "fix: install NVIDIA driver >= 580.65.06" in rendered(report)


def test_older_cuda12_runs_by_minor_version_compat(tmp_path: Path) -> None:
    host = healthy(tmp_path, proc=PROC_535, smi=SMI_535, cdi=cdi_yaml("535.104.05"))
    report = run_doctor(variant="cu128", host=host.probe())
    c = check(report, "driver-cuda")
    assert c.ok is True and "minor-version compatibility" in c.summary and "570.26" in c.summary
    assert report.exit_code() == EXIT_OK


def test_image_cuda_wins_over_variant(tmp_path: Path) -> None:
    host = healthy(tmp_path, proc=PROC_535, smi=SMI_535, cdi=cdi_yaml("535.104.05"))
    report = run_doctor(variant="cu118", image_cuda="13.0", host=host.probe())
    assert check(report, "driver-cuda").ok is False


def test_driver_read_from_proc_without_nvidia_smi(tmp_path: Path) -> None:
    host = healthy(tmp_path, proc=PROC_580, smi=None, cdi=cdi_yaml("580.65.06"))
    report = run_doctor(variant="cu130", host=host.probe())
    assert report.driver_version == "580.65.06"
    assert "/proc/driver/nvidia/version" in check(report, "driver").summary
    assert report.exit_code() == EXIT_OK


def test_nvidia_smi_preferred_over_proc(tmp_path: Path) -> None:
    host = healthy(tmp_path, proc=PROC_550, smi=SMI_580, cdi=cdi_yaml("580.65.06"))
    assert run_doctor(host=host.probe()).driver_version == "580.65.06"


def test_gpu_without_driver(tmp_path: Path) -> None:
    host = fake_host(tmp_path, smi=SMI_NO_DRIVER, smi_rc=9, nodes=())
    report = run_doctor(variant="cu128", host=host.probe())
    assert report.gpu_present
    c = check(report, "driver")
    assert c.ok is False and "no driver is loaded" in c.summary
    assert "couldn't communicate with the NVIDIA driver" in c.summary
    assert check(report, "driver-cuda").ok is False
    assert report.exit_code() == EXIT_DRIVER


def test_missing_uvm_node(tmp_path: Path) -> None:
    host = healthy(tmp_path, nodes=("nvidia0", "nvidiactl"))
    report = run_doctor(host=host.probe())
    c = check(report, "device-nodes")
    assert c.ok is False and "/dev/nvidia-uvm" in c.summary
    assert c.fix is not None and "nvidia-modprobe -u" in c.fix
    assert report.exit_code() == EXIT_DRIVER


def test_toolkit_missing(tmp_path: Path) -> None:
    host = healthy(tmp_path, tools=("docker", "podman"))
    report = run_doctor(host=host.probe())
    c = check(report, "toolkit")
    assert c.ok is False and "nvidia-ctk" in c.summary and "nvidia-container-runtime" in c.summary
    assert c.fix is not None and "nvidia-container-toolkit" in c.fix
    assert report.exit_code() == EXIT_TOOLKIT == 5


@pytest.mark.parametrize(
    ("daemon", "want_default", "ok", "words"),
    [
        (None, False, False, "does not exist"),
        (DAEMON_PLAIN, False, False, "registers no `nvidia` runtime"),
        ("{not json", False, False, "not valid JSON"),
        (DAEMON_NVIDIA, False, True, "nvidia runtime registered"),
        (DAEMON_NVIDIA, True, False, "default-runtime is 'runc'"),
        (DAEMON_DEFAULT, True, True, "default-runtime nvidia"),
    ],
)
def test_docker_daemon_json(
    tmp_path: Path, daemon: object, want_default: bool, ok: bool, words: str
) -> None:
    host = healthy(tmp_path, daemon=daemon)
    report = run_doctor(default_runtime=want_default, host=host.probe())
    c = check(report, "docker-runtime")
    assert c.ok is ok and words in c.summary, c
    if not ok:
        assert c.fix is not None and "nvidia-ctk runtime configure --runtime=docker" in c.fix
        assert ("--set-as-default" in c.fix) is want_default
        assert report.exit_code() == EXIT_TOOLKIT
    else:
        assert report.exit_code() == EXIT_OK


def test_no_docker_means_not_applicable(tmp_path: Path) -> None:
    tools = ("nvidia-ctk", "nvidia-container-runtime", "podman")
    host = healthy(tmp_path, daemon=None, tools=tools)
    report = run_doctor(host=host.probe())
    assert check(report, "docker-runtime").ok is None
    assert report.exit_code() == EXIT_OK


def test_cdi_spec_missing(tmp_path: Path) -> None:
    report = run_doctor(host=healthy(tmp_path, cdi=None).probe())
    c = check(report, "podman-cdi")
    assert c.ok is False and c.fix == "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"
    assert report.exit_code() == EXIT_TOOLKIT


def test_cdi_spec_in_var_run_as_json(tmp_path: Path) -> None:
    host = healthy(tmp_path, cdi=None)
    host.file(
        "var/run/cdi/nvidia.json",
        '{"cdiVersion":"0.5.0","kind":"nvidia.com/gpu","devices":[{"name":"all",'
        '"containerEdits":{}}],"containerEdits":{}}',
    )
    c = check(run_doctor(host=host.probe()), "podman-cdi")
    assert c.ok is True and "var/run/cdi/nvidia.json" in c.summary


def test_cdi_spec_stale_after_driver_upgrade(tmp_path: Path) -> None:
    host = healthy(tmp_path, cdi=cdi_yaml("535.104.05"))
    c = check(run_doctor(host=host.probe()), "podman-cdi")
    assert c.ok is False and "generated for driver 535.104.05" in c.summary
    assert "550.54.15" in c.summary


def test_no_podman_means_cdi_not_applicable(tmp_path: Path) -> None:
    host = healthy(tmp_path, cdi=None, tools=("nvidia-ctk", "nvidia-container-runtime", "docker"))
    assert check(run_doctor(host=host.probe()), "podman-cdi").ok is None


def test_cpu_variant_needs_no_driver(tmp_path: Path) -> None:
    c = check(run_doctor(variant="cpu", host=healthy(tmp_path).probe()), "driver-cuda")
    assert c.ok is None


def test_bad_variant_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'cuda12'"):
        run_doctor(variant="cuda12", host=fake_host(tmp_path, pci=False, nodes=()).probe())


@pytest.mark.parametrize(("text", "want"), [(PROC_535, "535.104.05"), (PROC_550, "550.54.15")])
def test_proc_version_parses_both_module_kinds(tmp_path: Path, text: str, want: str) -> None:
    host = fake_host(tmp_path, proc=text)
    assert HostProbe(host.root).proc_driver_version() == want
