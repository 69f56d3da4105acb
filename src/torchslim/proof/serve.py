"""The served proof, the verdict: the image's own command starts, listens, answers, stops.

``serve`` starts the command in the sandbox exactly as a runtime would (the image's env,
user, working directory, read-only root with only /tmp and the writable paths writable,
loopback only, and as PID 1: a service that installs no SIGTERM handler does not stop on
it, as under podman or Kubernetes without an init), runs ``prober`` in the sandbox's
network namespace to wait for the port, ask the health path (2xx) and the smoke
requests, then sends SIGTERM and waits a grace period, as Kubernetes does before SIGKILL
(not stopping is a warning, not a failure). Every process of the service is killed at
the end, whatever happens.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchslim.proof import prober
from torchslim.proof.census import census_folder
from torchslim.proof.refusals import (
    format_listeners,
    listen_failure,
    loopback_only,
    request_failure,
    start_failure,
)
from torchslim.proof.tagged import parse_tagged
from torchslim.sandbox.run import Emulation, Limits, Sandboxed, start_in_root

PROBER = Path(prober.__file__).read_text(encoding="utf-8")
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL


@dataclass(frozen=True)
class SmokeRequest:
    """One request the proof sends after the health path, and the status it expects."""

    method: str
    path: str
    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def label(self) -> str:
        return f"{self.method} {self.path}"

    def to_wire(self) -> dict[str, Any]:
        body = base64.b64encode(self.body).decode() if self.body is not None else None
        return {"method": self.method, "path": self.path, "body": body, "headers": self.headers}


_TOKEN = re.compile(r"((?:^|[?&])token=)[^&]+")


@dataclass(frozen=True)
class ServeSpec:
    """What the served proof checks: the port, the health path, the smoke requests."""

    port: int
    health: str | None = None
    requests: tuple[SmokeRequest, ...] = ()
    writable: tuple[str, ...] = ()
    timeout: float = 180.0
    grace: float = STOP_GRACE
    # Record the Python files the service opens (``Served.opened``, ``proof.census``).
    census: bool = False

    def shown_health(self) -> str:
        """The health path as printed: a ``token=`` in it (the notebook's) is not shown."""
        return _TOKEN.sub(r"\1…", self.health or "/")


@dataclass(frozen=True)
class Served:
    """What the served proof saw. ``failure`` is one line; ``warnings`` do not fail."""

    command: str
    port: int
    failure: str | None = None
    listening: tuple[str, ...] = ()
    health: str | None = None  # "/health 200 after 3.1 s"
    requests: int = 0  # smoke requests that answered as expected
    stopped: str | None = None  # "on SIGTERM in 0.4 s"
    warnings: tuple[str, ...] = ()
    output: str = ""  # the service's last lines (shown with -v)
    seconds: float = 0.0
    opened: tuple[str, ...] = ()  # .py/.pyc files the service opened (ServeSpec.census)
    ran: tuple[str, ...] = ()  # .py files whose code ran (ServeSpec.census)

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "port": self.port,
            "failure": self.failure,
            "listening": list(self.listening),
            "health": self.health,
            "requests": self.requests,
            "stopped": self.stopped,
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 3),
            "opened": list(self.opened),
            "ran": list(self.ran),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Served:
        return cls(
            command=str(d["command"]),
            port=int(d["port"]),
            failure=d.get("failure"),
            listening=tuple(d.get("listening") or ()),
            health=d.get("health"),
            requests=int(d.get("requests") or 0),
            stopped=d.get("stopped"),
            warnings=tuple(d.get("warnings") or ()),
            seconds=float(d.get("seconds") or 0.0),
            opened=tuple(str(m) for m in d.get("opened") or ()),
            ran=tuple(str(m) for m in d.get("ran") or ()),
        )


def _nsenter(pid: int) -> list[str]:
    tool = shutil.which("nsenter") or "nsenter"
    if os.geteuid() == 0:
        return [tool, f"--target={pid}", "--net"]
    return [tool, f"--target={pid}", "--user", "--net", "--preserve-credentials"]


@dataclass
class _Watch:
    """What the prober reported so far."""

    listeners: list[list[Any]] = field(default_factory=list)
    health: dict[str, Any] | None = None
    answers: dict[int, dict[str, Any]] = field(default_factory=dict)
    timed_out: Any = None
    done: bool = False
    broken: str | None = None  # the client itself failed (it could not join the namespace)

    def feed(self, line: str) -> None:
        parsed = parse_tagged(line)
        if parsed is None:
            return
        tag, value = parsed
        if tag == "L" and isinstance(value, list):
            self.listeners = value
        elif tag == "H" and isinstance(value, dict):
            self.health = value
        elif tag == "Q" and isinstance(value, dict):
            self.answers[int(value.get("i", -1))] = value
        elif tag == "T":
            self.timed_out = value or True
        elif tag == "D":
            self.done = True


def _watch(
    box: Sandboxed, spec: ServeSpec, progress: Callable[[float], None] | None
) -> tuple[_Watch, bool]:
    """Run the prober until it is done, the service exits or time runs out; returns what
    it saw and whether the service exited on its own."""
    watch = _Watch()
    pid = box.init_pid(30)
    if pid is None:
        return watch, True
    request = {
        "port": spec.port,
        "health": spec.health,
        "requests": [r.to_wire() for r in spec.requests],
        "timeout": spec.timeout,
    }
    probe = subprocess.Popen(
        [*_nsenter(pid), sys.executable, "-I", "-S", "-c", PROBER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"},
    )
    assert probe.stdin is not None and probe.stdout is not None
    probe.stdin.write(json.dumps(request).encode())
    probe.stdin.close()
    deadline = time.monotonic() + spec.timeout + 15
    buffer = b""
    ticked = time.monotonic()
    try:
        while not watch.done and watch.timed_out is None:
            ready, _, _ = select.select([probe.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(probe.stdout.fileno(), 1 << 16)
                if not chunk:
                    break
                buffer += chunk
                *lines, rest = buffer.split(b"\n")
                buffer = rest[-(1 << 20) :]
                for line in lines:
                    watch.feed(line.decode("utf-8", "replace"))
            if not box.running():
                return watch, True
            now = time.monotonic()
            if now > deadline:
                watch.timed_out = watch.timed_out or True
                break
            if progress is not None and now - ticked >= 5:
                ticked = now
                progress(now - box.started)
    finally:
        if probe.poll() is None:
            probe.kill()
        probe.wait()
    if not watch.done and watch.timed_out is None and probe.returncode:
        err = (probe.stderr.read(4096) if probe.stderr else b"").decode("utf-8", "replace")
        watch.broken = (err.strip().splitlines() or [f"exit {probe.returncode}"])[-1][:200]
    if probe.stderr:
        probe.stderr.close()
    return watch, False


def _stop(box: Sandboxed, grace: float) -> tuple[str, str | None]:
    """SIGTERM, then the grace period: (how it stopped, a warning or None)."""
    started = time.monotonic()
    box.terminate()
    if box.wait(grace):
        return f"on SIGTERM in {time.monotonic() - started:.1f} s", None
    return (
        f"killed after {grace:.0f} s",
        f"the service did not stop within {grace:.0f} s of SIGTERM as PID 1 (Kubernetes "
        'then kills it): handle SIGTERM, or set init = "tini" (Debian\'s tini forwards it)',
    )


def serve(
    root: Path,
    cmd: list[str],
    spec: ServeSpec,
    *,
    env: dict[str, str],
    user: tuple[int, int],
    workdir: str,
    emulation: Emulation | None = None,
    limits: Limits | None = None,
    progress: Callable[[float], None] | None = None,
) -> Served:
    """Start ``cmd`` in ``root`` and ask it (see the module docstring)."""
    command = shlex.join(cmd)
    warnings: list[str] = []
    stopped: str | None = None
    with contextlib.ExitStack() as stack:
        census = stack.enter_context(census_folder()) if spec.census else None
        box = start_in_root(
            root, cmd, env=census.env(env) if census else env, user=user, cwd=workdir,
            emulation=emulation, writable=list(spec.writable), limits=limits, pid1=True,
            binds=[census.bind()] if census else None,
        )  # fmt: skip
        try:
            watch, exited = _watch(box, spec, progress)
            failure: str | None = None
            if not exited:
                stopped, warning = _stop(box, spec.grace)
                warnings += [warning] if warning else []
        finally:
            result = box.result()
        opened, ran = census.read() if census is not None else ((), ())
    seconds = result.seconds
    listening = format_listeners(watch.listeners)
    if watch.broken is not None:
        failure = f"the proof could not ask {command}: its client failed: {watch.broken}"
    elif exited and watch.health is None:
        failure = start_failure(command, spec.port, result)
    elif watch.health is None:
        failure = listen_failure(cmd, spec, watch, seconds)
    else:
        failure = loopback_only(cmd, spec, watch.listeners)
    passed, bad = request_failure(spec, watch) if watch.health else (0, None)
    failure = failure or bad
    health = None
    if watch.health is not None:
        status, took = watch.health.get("status"), watch.health.get("seconds", 0.0)
        health = f"{spec.shown_health()} {status} after {took:.1f} s"
    if exited and failure is None:
        warnings.append(f"the service exited ({result.exit_text()}) while it was asked")
    return Served(
        command=command,
        port=spec.port,
        failure=failure,
        listening=listening,
        health=health,
        requests=passed,
        stopped=stopped,
        warnings=tuple(warnings),
        output=result.tail(20),
        seconds=seconds,
        opened=opened,
        ran=ran,
    )
