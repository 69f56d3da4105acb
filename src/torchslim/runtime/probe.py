"""Every host read ``doctor`` makes, behind one class so tests can point it at a fake root."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchslim.runtime.engine import Runner, Which

# "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 ..." and the
# open-module form "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  ...".
_NVRM = re.compile(r"NVRM version:.*?Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)\s")
_NVIDIA_VENDOR = "0x10de"
_DISPLAY_CLASS = "0x03"  # PCI class 03xxxx: VGA / 3D controller / display

CDI_DIRS = ("etc/cdi", "var/run/cdi")
DAEMON_JSON = "etc/docker/daemon.json"
TOOLKIT_TOOLS = ("nvidia-ctk", "nvidia-container-runtime", "nvidia-container-cli")


@dataclass(frozen=True)
class SmiResult:
    """``nvidia-smi`` output: GPUs as (driver, name), or the error it printed."""

    gpus: tuple[tuple[str, str], ...]
    error: str | None


@dataclass(frozen=True)
class DaemonJson:
    path: Path
    data: dict[str, Any] | None  # None: the file exists but is not a JSON object
    error: str | None


@dataclass(frozen=True)
class CdiSpec:
    path: Path
    text: str


class HostProbe:
    """Reads under ``root`` and runs tools found with ``which``; nothing else touches the host."""

    def __init__(
        self, root: Path = Path("/"), which: Which = shutil.which, run: Runner = subprocess.run
    ) -> None:
        self.root = Path(root)
        self.which = which
        self.run = run

    def _path(self, rel: str) -> Path:
        return self.root / rel

    def proc_driver_version(self) -> str | None:
        """Kernel module version from ``/proc/driver/nvidia/version``; None when not loaded."""
        try:
            text = self._path("proc/driver/nvidia/version").read_text(errors="replace")
        except OSError:
            return None
        m = _NVRM.search(text)
        return m.group(1) if m else None

    def nvidia_smi(self) -> SmiResult | None:
        """None when ``nvidia-smi`` is not installed."""
        exe = self.which("nvidia-smi")
        if exe is None:
            return None
        argv = [exe, "--query-gpu=driver_version,name", "--format=csv,noheader"]
        try:
            proc = self.run(argv, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return SmiResult((), f"nvidia-smi could not run: {exc}")
        if proc.returncode != 0:
            lines = (proc.stdout + proc.stderr).strip().splitlines()
            return SmiResult((), lines[0] if lines else f"nvidia-smi exited {proc.returncode}")
        gpus = []
        for line in proc.stdout.splitlines():
            driver, _, name = line.partition(",")
            if driver.strip() and name.strip():
                gpus.append((driver.strip(), name.strip()))
        return SmiResult(tuple(gpus), None)

    def pci_nvidia_gpus(self) -> int:
        """NVIDIA display-class PCI functions; sees a GPU even when no driver is loaded."""
        base = self._path("sys/bus/pci/devices")
        count = 0
        try:
            devices = sorted(base.iterdir())
        except OSError:
            return 0
        for dev in devices:
            try:
                vendor = (dev / "vendor").read_text().strip().lower()
                cls = (dev / "class").read_text().strip().lower()
            except OSError:
                continue
            if vendor == _NVIDIA_VENDOR and cls.startswith(_DISPLAY_CLASS):
                count += 1
        return count

    def device_nodes(self) -> list[str]:
        """``/dev/nvidia*`` names (nvidia0, nvidiactl, nvidia-uvm, ...)."""
        try:
            return sorted(p.name for p in self._path("dev").glob("nvidia*"))
        except OSError:
            return []

    def tool(self, name: str) -> str | None:
        return self.which(name)

    def daemon_json(self) -> DaemonJson | None:
        """Docker's daemon config; None when the file does not exist."""
        path = self._path(DAEMON_JSON)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return DaemonJson(path, None, f"cannot read it: {exc.strerror}")
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            return DaemonJson(path, None, f"not valid JSON (line {exc.lineno}: {exc.msg})")
        if not isinstance(data, dict):
            return DaemonJson(path, None, "not a JSON object")
        return DaemonJson(path, data, None)

    def cdi_specs(self) -> list[CdiSpec]:
        """CDI spec files (``*.yaml``, ``*.yml``, ``*.json``) podman would read."""
        specs = []
        for rel in CDI_DIRS:
            d = self._path(rel)
            try:
                files = sorted(d.iterdir())
            except OSError:
                continue
            for f in files:
                if f.suffix in (".yaml", ".yml", ".json") and f.is_file():
                    try:
                        specs.append(CdiSpec(f, f.read_text(errors="replace")))
                    except OSError:
                        continue
        return specs
