"""Recorded host states for doctor tests: a fake root and a PATH of fake tools."""

from __future__ import annotations

import json
import shutil
import stat
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from torchslim.runtime.probe import HostProbe

# /proc/driver/nvidia/version as the proprietary and the open kernel modules print it.
PROC_535 = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
    "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14) \n"
)
PROC_550 = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build  "
    "(dvs-builder@U16-T02-35-3)  Mon Feb 19 23:36:40 UTC 2024\n"
    "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04) \n"
)
PROC_580 = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  "
    "(dvs-builder@U16-I3-B03-4-3)  Sun Jul 27 06:54:38 UTC 2025\n"
    "GCC version:  gcc version 13.3.0 (Ubuntu 13.3.0-6ubuntu2~24.04) \n"
)
# nvidia-smi --query-gpu=driver_version,name --format=csv,noheader
SMI_535 = "535.104.05, NVIDIA A10G\n"
SMI_550 = "550.54.15, NVIDIA H100 80GB HBM3\n550.54.15, NVIDIA H100 80GB HBM3\n"
SMI_580 = "580.65.06, NVIDIA L4\n"
SMI_NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n"
)

DAEMON_PLAIN = {"log-driver": "json-file"}
DAEMON_NVIDIA = {"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}
DAEMON_DEFAULT = {**DAEMON_NVIDIA, "default-runtime": "nvidia"}


def cdi_yaml(driver: str) -> str:
    """Shape of `nvidia-ctk cdi generate` output, abbreviated."""
    return f"""---
cdiVersion: 0.5.0
containerEdits:
  deviceNodes:
  - path: /dev/nvidiactl
  - path: /dev/nvidia-uvm
  hooks:
  - args:
    - nvidia-ctk
    - hook
    - update-ldcache
    hookName: createContainer
    path: /usr/bin/nvidia-ctk
  mounts:
  - containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.{driver}
    hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.{driver}
    options: [ro, nosuid, nodev, bind]
devices:
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
  name: "0"
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
  name: all
kind: nvidia.com/gpu
"""


GPU_NODES = ("nvidia0", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools")
TOOLKIT = ("nvidia-ctk", "nvidia-container-runtime", "nvidia-container-cli")


@dataclass
class FakeHost:
    root: Path
    bin: Path

    def probe(self) -> HostProbe:
        return HostProbe(self.root, which=partial(shutil.which, path=str(self.bin)))

    def tool(self, name: str, script: str = "exit 0\n") -> None:
        path = self.bin / name
        path.write_text("#!/bin/sh\n" + script)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def smi(self, output: str, rc: int = 0) -> None:
        (self.bin / "smi.out").write_text(output)
        self.tool("nvidia-smi", f'cat "{self.bin}/smi.out"\nexit {rc}\n')

    def file(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def pci_gpu(self, slot: str = "0000:00:1e.0", cls: str = "0x030200") -> None:
        self.file(f"sys/bus/pci/devices/{slot}/vendor", "0x10de\n")
        self.file(f"sys/bus/pci/devices/{slot}/class", cls + "\n")

    def nodes(self, *names: str) -> None:
        for n in names:
            self.file(f"dev/{n}", "")


def fake_host(
    tmp: Path,
    *,
    proc: str | None = None,
    smi: str | None = None,
    smi_rc: int = 0,
    pci: bool = True,
    nodes: tuple[str, ...] = GPU_NODES,
    tools: tuple[str, ...] = (*TOOLKIT, "docker", "podman"),
    daemon: dict[str, object] | str | None = None,
    cdi: str | None = None,
) -> FakeHost:
    h = FakeHost(tmp / "root", tmp / "bin")
    h.root.mkdir(parents=True)
    h.bin.mkdir()
    if proc is not None:
        h.file("proc/driver/nvidia/version", proc)
    if smi is not None:
        h.smi(smi, smi_rc)
    if pci:
        h.pci_gpu()
    h.nodes(*nodes)
    for t in tools:
        h.tool(t)
    if daemon is not None:
        h.file("etc/docker/daemon.json", daemon if isinstance(daemon, str) else json.dumps(daemon))
    if cdi is not None:
        h.file("etc/cdi/nvidia.yaml", cdi)
    return h


def healthy(tmp: Path, **kw: object) -> FakeHost:
    """A GPU host with driver 550.54.15 where everything is set up."""
    args: dict[str, object] = {
        "proc": PROC_550,
        "smi": SMI_550,
        "daemon": DAEMON_NVIDIA,
        "cdi": cdi_yaml("550.54.15"),
    }
    args.update(kw)
    return fake_host(tmp, **args)  # type: ignore[arg-type]
