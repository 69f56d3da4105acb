"""``torchslim verify``: load an image into docker or podman, run it, prove it serves.

Steps: load (if given as a file or OCI layout), run detached on a loopback
port, wait for HTTP 200 on the health path, ``exec`` the smoke command, and
for ``--gpu`` run a few lines of torch on the GPU. The container is always
removed. A failure names its likely cause: the image, the driver, or the
container toolkit.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from torchslim.display import safe
from torchslim.runtime.cuda import cuda_of_image, driver_at_least, need_for
from torchslim.runtime.engine import Engine
from torchslim.runtime.load import (
    TEMP_REPO,
    CauseKind,
    EngineCli,
    Failed,
    inspect_image,
    resolve_image,
    tail,
)
from torchslim.runtime.probe import HostProbe

# Exit codes (docs/gpu.md): driver and toolkit match `doctor`; everything else is 1.
EXIT_FAILED = 1
_EXIT = {"driver": 4, "toolkit": 5}

GPU_MARK = "TORCHSLIM-GPU "
EXPECTED_MATMUL = [[2.0, 3.0], [6.0, 11.0]]

# Runs inside the image: JSON on one marked line, so warnings on stdout do not break parsing.
GPU_SNIPPET = f"""
import json, torch
r = {{"torch": torch.__version__, "cuda": torch.version.cuda,
     "available": torch.cuda.is_available()}}
if r["available"]:
    a = torch.arange(4.0, device="cuda").reshape(2, 2)
    r["device"] = torch.cuda.get_device_name(0)
    r["count"] = torch.cuda.device_count()
    r["matmul"] = (a @ a).cpu().tolist()
else:
    try:
        torch.cuda.init()
    except Exception as e:
        r["error"] = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
print({GPU_MARK!r} + json.dumps(r), flush=True)
"""


@dataclass
class VerifyResult:
    ok: bool
    health_seconds: float | None
    smoke_output: str | None
    gpu: dict[str, Any] | None
    cause: str | None
    cause_kind: CauseKind | None = None
    image: str | None = None  # the reference that was run
    steps: list[str] = field(default_factory=list)

    def exit_code(self) -> int:
        """0 passed; 4 driver missing/too old; 5 toolkit/runtime config; 1 any other failure."""
        if self.ok:
            return 0
        return _EXIT.get(self.cause_kind or "", EXIT_FAILED)


# ------------------------------------------------------------------ run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gpu_args(engine: Engine) -> list[str]:
    # podman reads the CDI spec nvidia-ctk generates; docker goes through the nvidia hook.
    return ["--device", "nvidia.com/gpu=all"] if engine.name == "podman" else ["--gpus", "all"]


def _state(cli: EngineCli, name: str) -> tuple[str, int | None]:
    proc = cli("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name, timeout=30)
    parts = proc.stdout.split()
    if proc.returncode != 0 or not parts:
        return "gone", None
    code = int(parts[1]) if len(parts) > 1 and parts[1].lstrip("-").isdigit() else None
    return parts[0], code


def _logs(cli: EngineCli, name: str) -> str:
    proc = cli("logs", "--tail", "20", name, timeout=30)
    return tail(proc.stdout + proc.stderr)


def _wait_health(
    cli: EngineCli, name: str, host_port: int, health: str | None, timeout: float
) -> float:
    url = f"http://127.0.0.1:{host_port}{health}" if health else None
    start = time.monotonic()
    last = "no answer"
    next_state = start
    while time.monotonic() - start < timeout:
        now = time.monotonic()
        if now >= next_state:
            next_state = now + 1.0
            status, code = _state(cli, name)
            if status not in ("running", "created", "configured", "initialized"):
                raise Failed(
                    "image",
                    f"the container exited with code {code} (state {status}) before "
                    f"{health or 'its port'} answered; logs: {_logs(cli, name) or '(none)'}",
                )
        try:
            if url is None:
                with socket.create_connection(("127.0.0.1", host_port), timeout=2):
                    return time.monotonic() - start
            r = httpx.get(url, timeout=2)
            if r.status_code == 200:
                return time.monotonic() - start
            last = f"HTTP {r.status_code}"
        except (httpx.HTTPError, OSError) as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise Failed(
        "image",
        f"{health or f'port {host_port}'} did not answer 200 within {timeout:.0f}s "
        f"(last: {last}); logs: {_logs(cli, name) or '(none)'}",
    )


def _run_in(
    cli: EngineCli, name: str | None, ref: str, argv: list[str], gpu: bool, timeout: float
) -> subprocess.CompletedProcess[str]:
    """``exec`` in the running container, or a one-off ``run --rm`` when there is none."""
    if name is not None:
        return cli("exec", name, *argv, timeout=timeout)
    extra = _gpu_args(cli.engine) if gpu else []
    return cli("run", "--rm", *extra, "--entrypoint", argv[0], ref, *argv[1:], timeout=timeout)


def _not_found(proc: subprocess.CompletedProcess[str]) -> bool:
    text = (proc.stderr + proc.stdout).lower()
    return proc.returncode in (126, 127) and (
        "not found" in text or "no such file" in text or "executable" in text
    )


def _smoke(cli: EngineCli, name: str | None, ref: str, smoke: list[str], timeout: float) -> str:
    proc = _run_in(cli, name, ref, smoke, False, timeout)
    if proc.returncode != 0:
        raise Failed(
            "image",
            f"smoke command `{shlex.join(smoke)}` exited {proc.returncode}: "
            f"{tail(proc.stderr + proc.stdout, 4) or '(no output)'}",
        )
    return proc.stdout.strip()


def _gpu_probe(
    cli: EngineCli, name: str | None, ref: str, timeout: float
) -> tuple[dict[str, Any], str]:
    # torchslim images have python3 (Debian's layout); other images may have only python.
    proc = _run_in(cli, name, ref, ["python3", "-c", GPU_SNIPPET], True, timeout)
    if _not_found(proc):
        proc = _run_in(cli, name, ref, ["python", "-c", GPU_SNIPPET], True, timeout)
    text = proc.stdout + proc.stderr
    for line in proc.stdout.splitlines():
        if line.startswith(GPU_MARK):
            return dict(json.loads(line[len(GPU_MARK) :])), text
    raise Failed("image", f"the GPU check did not run (exit {proc.returncode}): {tail(text, 4)}")


# ------------------------------------------------------------------ causes


def _host_driver(host: HostProbe) -> str | None:
    smi = host.nvidia_smi()
    if smi and smi.gpus:
        return smi.gpus[0][0]
    return host.proc_driver_version()


def gpu_cause(
    engine: Engine, text: str, image_cuda: str | None, host: HostProbe
) -> tuple[CauseKind, str]:
    """Name the likely reason a GPU run failed, from the engine's or torch's words and the host."""
    low = text.lower()
    driver = _host_driver(host)
    need = need_for(image_cuda) if image_cuda else None
    if driver and need and not driver_at_least(driver, need.minor_compat):
        return "driver", (
            f"the host driver {driver} is older than the image's CUDA {image_cuda} needs "
            f"(>= {need.minor_compat}; {need.toolkit} recommended); upgrade the NVIDIA driver"
        )
    if "unsatisfied condition: cuda" in low or "driver on your system is too old" in low:
        want = f" (CUDA {image_cuda} needs >= {need.minor_compat})" if need else ""
        return "driver", f"the NVIDIA driver is older than the image's CUDA{want}; upgrade it"
    if driver is None or "driver not loaded" in low or "found no nvidia driver" in low:
        return "driver", (
            "no NVIDIA driver is loaded on this host; install it, or run `torchslim doctor`"
        )
    if "cdi" in low and ("unresolvable" in low or "nvidia.com/gpu" in low):
        return "toolkit", (
            "podman finds no CDI spec for nvidia.com/gpu (container toolkit not configured); "
            "run `sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`"
        )
    if "could not select device driver" in low or "nvidia-container" in low:
        return "toolkit", (
            f"{engine.name} cannot hand the GPU to the container (NVIDIA container toolkit "
            "missing or not configured); install nvidia-container-toolkit and run "
            "`sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`"
        )
    return "image", f"torch in the image cannot use the GPU: {tail(text, 3) or 'no output'}"


# ------------------------------------------------------------------ main


def verify_image(
    image: str,
    *,
    engine: Engine,
    port: int | None,
    health: str | None,
    smoke: list[str],
    gpu: bool,
    timeout: float = 120,
    load_from: Path | None = None,
    host: HostProbe | None = None,
) -> VerifyResult:
    """Load, run, wait for health, smoke, GPU check; the container is removed whatever happens."""
    cli = EngineCli(engine)
    result = VerifyResult(False, None, None, None, None)
    name: str | None = None
    image_cuda: str | None = None
    try:
        if health is not None and port is None:
            raise Failed(
                "input", f"health path {health} needs a port; set `port` in torchslim.toml"
            )
        ref = resolve_image(cli, image, load_from)
        result.image = ref
        result.steps.append(f"image {ref} in {engine.name}")
        labels, env = inspect_image(cli, ref)
        image_cuda = cuda_of_image(labels, env)
        if port is not None:
            name = f"torchslim-verify-{secrets.token_hex(4)}"
            host_port = _free_port()
            args = ["run", "-d", "--name", name, "-p", f"127.0.0.1:{host_port}:{port}"]
            args += _gpu_args(engine) if gpu else []
            proc = cli(*args, ref, timeout=300)
            if proc.returncode != 0:
                name_run = name
                name = None  # nothing started, but `rm -f` below is harmless
                cli("rm", "-f", name_run, timeout=60)
                text = proc.stderr + proc.stdout
                if gpu:
                    raise Failed(*gpu_cause(engine, text, image_cuda, host or HostProbe()))
                raise Failed("image", f"{engine.name} run failed: {tail(text, 3)}")
            result.health_seconds = _wait_health(cli, name, host_port, health, timeout)
            result.steps.append(
                f"{health or 'port ' + str(port)} answered in {result.health_seconds:.1f}s"
            )
        if smoke:
            result.smoke_output = _smoke(cli, name, ref, smoke, timeout)
            result.steps.append(f"smoke `{shlex.join(smoke)}` passed")
        if gpu:
            info, text = _gpu_probe(cli, name, ref, timeout)
            result.gpu = info
            if not info.get("available") and info.get("cuda") is None:
                raise Failed(
                    "image",
                    f"torch {info.get('torch')} in the image is a CPU build; build the image "
                    'with `variant = "cuXYZ"` in torchslim.toml to use the GPU',
                )
            if not info.get("available"):
                why = text + "\n" + str(info.get("error", ""))
                raise Failed(*gpu_cause(engine, why, image_cuda, host or HostProbe()))
            if info.get("matmul") != EXPECTED_MATMUL:
                got = info.get("matmul")
                raise Failed("image", f"matmul on the GPU gave {got}, not {EXPECTED_MATMUL}")
            result.steps.append(f"GPU {info.get('device')}: matmul ok")
        result.ok = True
    except Failed as f:
        result.cause, result.cause_kind = f.cause, f.kind
    finally:
        if name is not None:
            # podman waits 10s for a polite stop by default; -t 0 kills at once.
            stop = ["-t", "0"] if engine.name == "podman" else []
            with contextlib.suppress(Failed):
                cli("rm", "-f", *stop, name, timeout=60)
        if result.image and result.image.startswith(TEMP_REPO + ":"):
            with contextlib.suppress(Failed):
                cli("rmi", "-f", result.image, timeout=120)
    return result


def render_verify(result: VerifyResult, console: Console) -> None:
    for step in result.steps:
        console.print(f"[green]ok[/]   {safe(step)}", highlight=False)
    if result.smoke_output:
        console.print(f"smoke output: {safe(tail(result.smoke_output, 5))}", highlight=False)
    if result.gpu is not None:
        g = result.gpu
        console.print(
            f"torch.cuda.is_available(): {safe(g.get('available'))}  "
            f"device: {safe(g.get('device', '-'))}  torch {safe(g.get('torch'))} "
            f"(CUDA {safe(g.get('cuda'))})  matmul: {safe(g.get('matmul', '-'))}",
            highlight=False,
        )
    if result.ok:
        console.print(f"[green]verified[/] {safe(result.image or '')}", highlight=False)
    else:
        console.print(
            f"[red]verify failed[/] ({result.cause_kind}): {safe(result.cause or '')}",
            highlight=False,
        )
