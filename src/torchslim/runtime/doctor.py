"""``torchslim doctor``: can this host run a GPU image? Each check names the problem and the fix."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from torchslim.runtime.cuda import cuda_of_variant, driver_at_least, need_for, parse_driver
from torchslim.runtime.probe import HostProbe

# Exit codes; documented in docs/gpu.md.
EXIT_OK = 0
EXIT_NO_GPU = 3
EXIT_DRIVER = 4
EXIT_TOOLKIT = 5

# Which exit code a failing check maps to.
_DRIVER_CHECKS = {"driver", "driver-cuda", "device-nodes"}
_TOOLKIT_CHECKS = {"toolkit", "docker-runtime", "podman-cdi"}

_INSTALL_TOOLKIT = (
    "install the NVIDIA Container Toolkit: add NVIDIA's apt repository "
    "(docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html), "
    "then `sudo apt-get install -y nvidia-container-toolkit`"
)
_CDI_GENERATE = "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"


@dataclass(frozen=True)
class Check:
    id: str
    ok: bool | None  # None: not applicable on this host
    summary: str
    fix: str | None


@dataclass
class DoctorReport:
    checks: list[Check]
    gpu_present: bool
    driver_version: str | None
    gpus: list[str] = field(default_factory=list)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    def exit_code(self) -> int:
        """0 all good; 3 no GPU; 4 driver missing/too old; 5 toolkit or engine config missing."""
        if not self.gpu_present:
            return EXIT_NO_GPU
        ids = {c.id for c in self.failed()}
        if ids & _DRIVER_CHECKS:
            return EXIT_DRIVER
        if ids & _TOOLKIT_CHECKS:
            return EXIT_TOOLKIT
        return EXIT_OK


def _driver_install_fix(minimum: str | None = None) -> str:
    branch = parse_driver(minimum)[0] if minimum else None
    want = f"NVIDIA driver >= {minimum}" if minimum else "the NVIDIA driver"
    pkg = f"nvidia-driver-{branch}" if branch else "nvidia-driver"
    return (
        f"install {want} (Ubuntu: `sudo apt-get install -y {pkg}-server`, Debian: "
        f"`sudo apt-get install -y nvidia-driver`, or from https://www.nvidia.com/drivers), "
        "then reboot"
    )


def _check_driver(host: HostProbe, gpu_seen: bool) -> tuple[Check, str | None, list[str]]:
    smi = host.nvidia_smi()
    names = [name for _, name in smi.gpus] if smi else []
    version = smi.gpus[0][0] if smi and smi.gpus else None
    source = "nvidia-smi"
    if version is None:
        version = host.proc_driver_version()
        source = "/proc/driver/nvidia/version"
    if version is not None:
        gpus = f"; {len(names)} GPU(s): {', '.join(sorted(set(names)))}" if names else ""
        return (
            Check("driver", True, f"NVIDIA driver {version} (from {source}){gpus}", None),
            (version),
            names,
        )
    if not gpu_seen:
        return Check("driver", None, "no NVIDIA GPU, so no driver to check", None), None, names
    why = f"nvidia-smi: {smi.error}" if smi and smi.error else "nvidia-smi is not installed"
    return (
        Check(
            "driver",
            False,
            f"an NVIDIA GPU is present but no driver is loaded ({why}; "
            "no /proc/driver/nvidia/version)",
            _driver_install_fix(),
        ),
        None,
        names,
    )


def _check_driver_cuda(version: str | None, cuda: str | None, what: str) -> Check:
    if cuda is None:
        return Check("driver-cuda", None, f"{what} needs no CUDA driver", None)
    need = need_for(cuda)
    if need is None:
        return Check(
            "driver-cuda",
            None,
            f"no driver table entry for CUDA {cuda}; upgrade torchslim",
            None,
        )
    if version is None:
        return Check(
            "driver-cuda",
            False,
            f"{what} (CUDA {cuda}) needs NVIDIA driver >= {need.minor_compat}; none is loaded",
            _driver_install_fix(need.toolkit),
        )
    if not driver_at_least(version, need.minor_compat):
        full = "" if need.toolkit == need.minor_compat else f" (>= {need.toolkit} for full support)"
        return Check(
            "driver-cuda",
            False,
            f"driver {version} is too old for {what} (CUDA {cuda}): "
            f"it needs >= {need.minor_compat}{full}",
            _driver_install_fix(need.toolkit),
        )
    if not driver_at_least(version, need.toolkit):
        return Check(
            "driver-cuda",
            True,
            f"driver {version} runs {what} (CUDA {cuda}) through minor-version compatibility; "
            f">= {need.toolkit} is needed for JIT of newer PTX",
            None,
        )
    return Check("driver-cuda", True, f"driver {version} supports {what} (CUDA {cuda})", None)


def _check_device_nodes(host: HostProbe, driver: str | None) -> Check:
    if driver is None:
        return Check("device-nodes", None, "no driver loaded, so no device nodes expected", None)
    nodes = host.device_nodes()
    missing = [n for n in ("nvidiactl", "nvidia-uvm") if n not in nodes]
    if not any(re.fullmatch(r"nvidia\d+", n) for n in nodes):
        missing.insert(0, "nvidia0")
    if missing:
        return Check(
            "device-nodes",
            False,
            f"/dev is missing {', '.join('/dev/' + m for m in missing)}",
            "sudo nvidia-modprobe -u -c=0  (creates nvidia-uvm and the device nodes)",
        )
    return Check("device-nodes", True, f"device nodes: {', '.join(nodes)}", None)


def _check_toolkit(host: HostProbe) -> Check:
    found = {t: host.tool(t) for t in ("nvidia-ctk", "nvidia-container-runtime")}
    have = [t for t, p in found.items() if p]
    missing = [t for t, p in found.items() if not p]
    cli = host.tool("nvidia-container-cli")
    extra = "; nvidia-container-cli present" if cli else ""
    if missing:
        return Check(
            "toolkit",
            False,
            f"NVIDIA Container Toolkit: {', '.join(missing)} not on PATH{extra}",
            _INSTALL_TOOLKIT,
        )
    return Check("toolkit", True, f"NVIDIA Container Toolkit: {', '.join(have)}{extra}", None)


def _check_docker(host: HostProbe, want_default: bool) -> Check:
    if host.tool("docker") is None:
        return Check("docker-runtime", None, "docker is not installed", None)
    configure = "sudo nvidia-ctk runtime configure --runtime=docker"
    if want_default:
        configure += " --set-as-default"
    fix = f"{configure} && sudo systemctl restart docker"
    dj = host.daemon_json()
    if dj is None:
        return Check(
            "docker-runtime",
            False,
            "docker: /etc/docker/daemon.json does not exist, so the nvidia runtime is not "
            "registered",
            fix,
        )
    if dj.data is None:
        return Check("docker-runtime", False, f"docker: {dj.path} is {dj.error}", fix)
    runtimes = dj.data.get("runtimes")
    nvidia = runtimes.get("nvidia") if isinstance(runtimes, dict) else None
    if not isinstance(nvidia, dict) or not nvidia.get("path"):
        return Check(
            "docker-runtime",
            False,
            f"docker: {dj.path} registers no `nvidia` runtime",
            fix,
        )
    default = dj.data.get("default-runtime")
    if want_default and default != "nvidia":
        return Check(
            "docker-runtime",
            False,
            f"docker: default-runtime is {default or 'runc'!r}, not 'nvidia'",
            fix,
        )
    tail = ", default-runtime nvidia" if default == "nvidia" else ""
    return Check(
        "docker-runtime", True, f"docker: nvidia runtime registered ({nvidia['path']}){tail}", None
    )


_CDI_KIND = re.compile(r"""["']?kind["']?\s*:\s*["']?nvidia\.com/gpu["']?""")
_CDI_ALL = re.compile(r"""["']?name["']?\s*:\s*["']?all["']?\s*[,}\n]""")
_LIBCUDA = re.compile(r"libcuda\.so\.(\d+\.\d+(?:\.\d+)?)")


def _check_cdi(host: HostProbe, driver: str | None) -> Check:
    if host.tool("podman") is None:
        return Check("podman-cdi", None, "podman is not installed", None)
    specs = [s for s in host.cdi_specs() if _CDI_KIND.search(s.text)]
    if not specs:
        return Check(
            "podman-cdi",
            False,
            "podman: no CDI spec for nvidia.com/gpu in /etc/cdi or /var/run/cdi",
            _CDI_GENERATE,
        )
    spec = specs[0]
    if not _CDI_ALL.search(spec.text):
        return Check(
            "podman-cdi",
            False,
            f"podman: {spec.path} has no device `all` (nvidia.com/gpu=all)",
            _CDI_GENERATE,
        )
    libcuda = _LIBCUDA.search(spec.text)
    if driver and libcuda and libcuda.group(1) != driver:
        return Check(
            "podman-cdi",
            False,
            f"podman: {spec.path} was generated for driver {libcuda.group(1)}, "
            f"the loaded driver is {driver}",
            _CDI_GENERATE,
        )
    return Check("podman-cdi", True, f"podman: CDI spec {spec.path} (nvidia.com/gpu=all)", None)


def run_doctor(
    *,
    variant: str | None = None,
    image_cuda: str | None = None,
    default_runtime: bool = False,
    host: HostProbe | None = None,
) -> DoctorReport:
    """Check the host; ``image_cuda`` ("12.8") wins over ``variant`` ("cu128") for the driver."""
    host = host or HostProbe()
    # Validate the variant first: a typo is an error even on a host without a GPU.
    cuda: str | None = None
    what = ""
    if image_cuda is not None:
        cuda, what = image_cuda, "the image"
    elif variant is not None:
        cuda, what = cuda_of_variant(variant), f"variant {variant}"
    pci = host.pci_nvidia_gpus()
    nodes = host.device_nodes()
    driver_check, driver, names = _check_driver(
        host, gpu_seen=pci > 0 or any(re.fullmatch(r"nvidia\d+", n) for n in nodes)
    )
    gpu_present = bool(pci or names or driver or any(re.fullmatch(r"nvidia\d+", n) for n in nodes))
    if not gpu_present:
        summary = "no NVIDIA GPU on this host (no NVIDIA PCI device, /dev/nvidia*, or driver)"
        return DoctorReport(
            [Check("gpu", False, summary, None)],
            gpu_present=False,
            driver_version=None,
        )
    gpu_check = Check("gpu", True, f"NVIDIA GPU present ({pci or len(names)} found)", None)
    if variant is None and image_cuda is None:
        cuda_check = Check("driver-cuda", None, "no --variant or image given to compare", None)
    else:
        cuda_check = _check_driver_cuda(driver, cuda, what)
    checks = [
        gpu_check,
        driver_check,
        cuda_check,
        _check_device_nodes(host, driver),
        _check_toolkit(host),
        _check_docker(host, default_runtime),
        _check_cdi(host, driver),
    ]
    return DoctorReport(checks, gpu_present=True, driver_version=driver, gpus=names)


_MARK = {True: "[green]ok[/]", False: "[red]FAIL[/]", None: "[dim]n/a[/]"}
_VERDICT = {
    EXIT_OK: "[green]this host can run GPU images[/]",
    EXIT_NO_GPU: "[yellow]no NVIDIA GPU on this host: it can run CPU images only[/]",
    EXIT_DRIVER: "[red]the NVIDIA driver is missing or too old[/]",
    EXIT_TOOLKIT: "[red]the NVIDIA container toolkit or engine config is missing[/]",
}


def render_doctor(report: DoctorReport, console: Console) -> None:
    """One row per check, the fix under each failing one, then what the exit code means."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(justify="right", no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column()
    for c in report.checks:
        grid.add_row(_MARK[c.ok], c.id, escape(c.summary))
        if c.ok is False and c.fix:
            grid.add_row("", "", f"[bold]fix:[/] {escape(c.fix)}")
    console.print(grid)
    code = report.exit_code()
    console.print(f"{_VERDICT[code]} (exit {code})", highlight=False)
