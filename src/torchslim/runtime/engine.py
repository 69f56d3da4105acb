"""Find a container engine that can actually run an image: podman, or docker with a live daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from torchslim.errors import TorchslimError

EngineName = Literal["podman", "docker"]
Which = Callable[[str], str | None]
Runner = Callable[..., "subprocess.CompletedProcess[Any]"]

ENV_VAR = "TORCHSLIM_ENGINE"
EXIT_NO_ENGINE = 6


class EngineError(TorchslimError):
    """No usable docker or podman; the message says which was tried and how to get one."""

    exit_code = EXIT_NO_ENGINE


@dataclass(frozen=True)
class Engine:
    name: EngineName
    path: str


def _probe(
    name: EngineName, which: Which, run: Runner, env: Mapping[str, str]
) -> tuple[Engine | None, str]:
    """The engine if ``<engine> info`` succeeds, else why not (one short phrase)."""
    path = which(name)
    if path is None:
        return None, f"{name} is not on PATH"
    try:
        proc = run(
            [path, "info", "--format", "{{.Host.Arch}}" if name == "podman" else "{{.ID}}"],
            capture_output=True,
            text=True,
            timeout=30,
            env=dict(env),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"`{name} info` failed ({exc})"
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout or "").strip().splitlines()
        detail = lines[-1] if lines else f"exit {proc.returncode}"
        what = "its daemon does not answer" if name == "docker" else "it is not usable"
        return None, f"{name} is installed but {what} ({detail})"
    return Engine(name, path), ""


_FIX = {
    "podman": "install podman (apt-get install podman)",
    "docker": "start the daemon (sudo systemctl start docker) or install docker",
}


def detect_engine(
    prefer: str = "auto",
    *,
    environ: Mapping[str, str] = os.environ,
    which: Which = shutil.which,
    run: Runner = subprocess.run,
) -> Engine:
    """``auto`` (or ``$TORCHSLIM_ENGINE``): podman if usable, else docker whose daemon answers."""
    choice = prefer
    if choice == "auto":
        choice = environ.get(ENV_VAR, "auto") or "auto"
    if choice not in ("auto", "podman", "docker"):
        src = "--engine" if prefer != "auto" else f"${ENV_VAR}"
        raise EngineError(f"{src}: unknown engine {choice!r}; use auto, podman or docker")
    order: tuple[EngineName, ...] = ("podman", "docker")
    if choice != "auto":
        order = tuple(n for n in order if n == choice)
    reasons = []
    for name in order:
        engine, why = _probe(name, which, run, environ)
        if engine is not None:
            return engine
        reasons.append(why)
    fix = " or ".join(_FIX[n] for n in order)
    raise EngineError(f"no container engine to run the image: {'; '.join(reasons)}; {fix}")
