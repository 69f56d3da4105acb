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
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from rich.console import Console
from rich.markup import escape

from torchslim.errors import ConfigError
from torchslim.oci.transport import Location, parse_location
from torchslim.runtime.cuda import cuda_of_image, driver_at_least, need_for
from torchslim.runtime.engine import Engine
from torchslim.runtime.probe import HostProbe

CauseKind = Literal["input", "engine", "image", "driver", "toolkit"]

# Exit codes (docs/gpu.md): driver and toolkit match `doctor`; everything else is 1.
EXIT_FAILED = 1
_EXIT = {"driver": 4, "toolkit": 5}

LOAD_TIMEOUT = 1800.0
GPU_MARK = "TORCHSLIM-GPU "
TEMP_REPO = "localhost/torchslim-verify"  # images verify names itself, and removes after
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


class _Failed(Exception):
    def __init__(self, kind: CauseKind, cause: str) -> None:
        super().__init__(cause)
        self.kind: CauseKind = kind
        self.cause = cause


def _tail(text: str, n: int = 6) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


class _Cli:
    """Runs ``<engine> ...``; an engine that cannot start is a failure of kind ``engine``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [self.engine.path, *args]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError as exc:
            raise _Failed(
                "engine",
                f"{self.engine.name} not found at {self.engine.path}; install it or pick "
                "another with --engine",
            ) from exc
        except OSError as exc:
            raise _Failed(
                "engine", f"{self.engine.name} at {self.engine.path} cannot run: {exc}"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise _Failed(
                "engine",
                f"`{self.engine.name} {' '.join(args[:2])}` did not finish in {timeout:.0f}s",
            ) from exc


# ------------------------------------------------------------------ load


_LOADED = re.compile(r"^Loaded image(?:\(s\))?:\s*(\S+)", re.M)
_LOADED_ID = re.compile(r"^Loaded image ID:\s*(\S+)", re.M)


def _load_archive(cli: _Cli, path: Path) -> str:
    proc = cli("load", "-i", str(path), timeout=LOAD_TIMEOUT)
    if proc.returncode != 0:
        raise _Failed(
            "image",
            f"{cli.engine.name} load -i {path} failed: {_tail(proc.stderr or proc.stdout, 2)}",
        )
    out = proc.stdout + "\n" + proc.stderr
    m = _LOADED.search(out) or _LOADED_ID.search(out)
    if not m:
        raise _Failed("image", f"{cli.engine.name} load -i {path} named no image: {_tail(out, 2)}")
    return m.group(1).split(",")[0]


def _load_oci(cli: _Cli, loc: Location) -> str:
    path, ref, spec = loc.path, loc.ref, loc.target
    if not (path / "index.json").is_file():
        raise _Failed("input", f"oci:{path}: no OCI image layout there (no index.json)")
    name = f"{TEMP_REPO}:{secrets.token_hex(6)}"
    skopeo = shutil.which("skopeo")
    if cli.engine.name == "podman" and skopeo:
        # podman load does not read layout directories; skopeo copies straight into its storage.
        src = f"oci:{path}" + (f":{ref}" if ref else "")
        try:
            proc = subprocess.run(
                [skopeo, "copy", "--quiet", src, f"containers-storage:{name}"],
                capture_output=True,
                text=True,
                timeout=LOAD_TIMEOUT,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise _Failed("engine", f"skopeo copy {src} failed: {exc}") from exc
        if proc.returncode != 0:
            raise _Failed("image", f"skopeo copy {src} failed: {_tail(proc.stderr, 2)}")
        return name
    # docker (or podman without skopeo): re-pack as a docker-archive with torchslim's writers.
    from torchslim.errors import TorchslimError
    from torchslim.oci.archive import write_docker_archive
    from torchslim.oci.layout import read_oci_layout

    with tempfile.TemporaryDirectory(prefix="torchslim-verify-") as tmp:
        archive = Path(tmp) / "image.tar"
        try:
            write_docker_archive(read_oci_layout(path, ref), archive, repo_tags=[name])
        except TorchslimError as exc:
            raise _Failed("image", f"oci:{spec}: {exc}") from exc
        _load_archive(cli, archive)
    return name


def _location(image: str) -> Location | None:
    """An ``oci:`` / ``docker-archive:`` location or an existing file; None for an engine name."""
    if image.startswith(("oci:", "docker-archive:")):
        return parse_location(image, allowed=("oci", "docker-archive"))
    if Path(image).is_file():
        return Location("docker-archive", image)
    return None


def _resolve(cli: _Cli, image: str, load_from: Path | None) -> str:
    """Get the image into the engine; return the reference to run."""
    if load_from is not None:
        src = Path(load_from)
        if src.is_dir():
            loaded = _load_oci(cli, Location("oci", str(src)))
        elif src.is_file():
            loaded = _load_archive(cli, src)
        else:
            raise _Failed("input", f"image file {src} does not exist; build it or fix the path")
        return image or loaded
    try:
        loc = _location(image)
    except ConfigError as exc:
        raise _Failed("input", str(exc)) from exc
    if loc is not None and loc.transport == "docker-archive":
        if not loc.path.is_file():
            raise _Failed(
                "input", f"image file {loc.path} does not exist; build it or fix the path"
            )
        return _load_archive(cli, loc.path)
    if loc is not None:
        if not loc.path.is_dir():
            raise _Failed("input", f"OCI layout {loc.path} does not exist")
        return _load_oci(cli, loc)
    if image.endswith((".tar", ".tar.gz")):
        raise _Failed("input", f"image file {image} does not exist; build it or fix the path")
    if cli("image", "inspect", image).returncode != 0:
        raise _Failed(
            "input",
            f"image {image!r} is not in {cli.engine.name}'s storage; pass docker-archive:FILE "
            f"or oci:DIR, or pull it first",
        )
    return image


def _inspect(cli: _Cli, ref: str) -> tuple[dict[str, str], list[str]]:
    proc = cli("image", "inspect", ref)
    try:
        data = json.loads(proc.stdout)[0]
    except (ValueError, IndexError, KeyError, TypeError):
        return {}, []
    config = data.get("Config") or {}
    return dict(config.get("Labels") or {}), list(config.get("Env") or [])


def image_cuda(image: str, engine: Engine | None = None) -> str | None:
    """The CUDA version ``image`` was built for (for ``doctor --image``); None for CPU/unknown.

    Archives and layouts are read directly; a name is asked of ``engine``.
    """
    from torchslim.errors import TorchslimError
    from torchslim.oci.transport import open_image

    try:
        loc = _location(image)
        if loc is not None:
            cfg = open_image(loc).config()
        elif engine is not None:
            labels, env = _inspect(_Cli(engine), image)
            return cuda_of_image(labels, env)
        else:
            return None
    except (TorchslimError, OSError, _Failed):
        return None
    c = cfg.get("config") or {}
    return cuda_of_image(dict(c.get("Labels") or {}), list(c.get("Env") or []))


# ------------------------------------------------------------------ run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gpu_args(engine: Engine) -> list[str]:
    # podman reads the CDI spec nvidia-ctk generates; docker goes through the nvidia hook.
    return ["--device", "nvidia.com/gpu=all"] if engine.name == "podman" else ["--gpus", "all"]


def _state(cli: _Cli, name: str) -> tuple[str, int | None]:
    proc = cli("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name, timeout=30)
    parts = proc.stdout.split()
    if proc.returncode != 0 or not parts:
        return "gone", None
    code = int(parts[1]) if len(parts) > 1 and parts[1].lstrip("-").isdigit() else None
    return parts[0], code


def _logs(cli: _Cli, name: str) -> str:
    proc = cli("logs", "--tail", "20", name, timeout=30)
    return _tail(proc.stdout + proc.stderr)


def _wait_health(cli: _Cli, name: str, host_port: int, health: str | None, timeout: float) -> float:
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
                raise _Failed(
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
    raise _Failed(
        "image",
        f"{health or f'port {host_port}'} did not answer 200 within {timeout:.0f}s "
        f"(last: {last}); logs: {_logs(cli, name) or '(none)'}",
    )


def _run_in(
    cli: _Cli, name: str | None, ref: str, argv: list[str], gpu: bool, timeout: float
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


def _smoke(cli: _Cli, name: str | None, ref: str, smoke: list[str], timeout: float) -> str:
    proc = _run_in(cli, name, ref, smoke, False, timeout)
    if proc.returncode != 0:
        raise _Failed(
            "image",
            f"smoke command `{shlex.join(smoke)}` exited {proc.returncode}: "
            f"{_tail(proc.stderr + proc.stdout, 4) or '(no output)'}",
        )
    return proc.stdout.strip()


def _gpu_probe(cli: _Cli, name: str | None, ref: str, timeout: float) -> tuple[dict[str, Any], str]:
    # torchslim images have python3 (Debian's layout); other images may have only python.
    proc = _run_in(cli, name, ref, ["python3", "-c", GPU_SNIPPET], True, timeout)
    if _not_found(proc):
        proc = _run_in(cli, name, ref, ["python", "-c", GPU_SNIPPET], True, timeout)
    text = proc.stdout + proc.stderr
    for line in proc.stdout.splitlines():
        if line.startswith(GPU_MARK):
            return dict(json.loads(line[len(GPU_MARK) :])), text
    raise _Failed("image", f"the GPU check did not run (exit {proc.returncode}): {_tail(text, 4)}")


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
    return "image", f"torch in the image cannot use the GPU: {_tail(text, 3) or 'no output'}"


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
    cli = _Cli(engine)
    result = VerifyResult(False, None, None, None, None)
    name: str | None = None
    image_cuda: str | None = None
    try:
        if health is not None and port is None:
            raise _Failed(
                "input", f"health path {health} needs a port; set `port` in torchslim.toml"
            )
        ref = _resolve(cli, image, load_from)
        result.image = ref
        result.steps.append(f"image {ref} in {engine.name}")
        labels, env = _inspect(cli, ref)
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
                    raise _Failed(*gpu_cause(engine, text, image_cuda, host or HostProbe()))
                raise _Failed("image", f"{engine.name} run failed: {_tail(text, 3)}")
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
                raise _Failed(
                    "image",
                    f"torch {info.get('torch')} in the image is a CPU build; build the image "
                    'with `variant = "cuXYZ"` in torchslim.toml to use the GPU',
                )
            if not info.get("available"):
                why = text + "\n" + str(info.get("error", ""))
                raise _Failed(*gpu_cause(engine, why, image_cuda, host or HostProbe()))
            if info.get("matmul") != EXPECTED_MATMUL:
                got = info.get("matmul")
                raise _Failed("image", f"matmul on the GPU gave {got}, not {EXPECTED_MATMUL}")
            result.steps.append(f"GPU {info.get('device')}: matmul ok")
        result.ok = True
    except _Failed as f:
        result.cause, result.cause_kind = f.cause, f.kind
    finally:
        if name is not None:
            # podman waits 10s for a polite stop by default; -t 0 kills at once.
            stop = ["-t", "0"] if engine.name == "podman" else []
            with contextlib.suppress(_Failed):
                cli("rm", "-f", *stop, name, timeout=60)
        if result.image and result.image.startswith(TEMP_REPO + ":"):
            with contextlib.suppress(_Failed):
                cli("rmi", "-f", result.image, timeout=120)
    return result


def render_verify(result: VerifyResult, console: Console) -> None:
    for step in result.steps:
        console.print(f"[green]ok[/]   {escape(step)}", highlight=False)
    if result.smoke_output:
        console.print(f"smoke output: {escape(_tail(result.smoke_output, 5))}", highlight=False)
    if result.gpu is not None:
        g = result.gpu
        console.print(
            f"torch.cuda.is_available(): {g.get('available')}  device: {g.get('device', '-')}  "
            f"torch {g.get('torch')} (CUDA {g.get('cuda')})  matmul: {g.get('matmul', '-')}",
            highlight=False,
        )
    if result.ok:
        console.print(f"[green]verified[/] {escape(result.image or '')}", highlight=False)
    else:
        console.print(
            f"[red]verify failed[/] ({result.cause_kind}): {escape(result.cause or '')}",
            highlight=False,
        )
