"""The served proof, the verdict: the image's own command starts, listens, answers, stops.

``serve`` starts the command in the sandbox exactly as a runtime would (the image's env,
user, working directory, read-only root with only /tmp and the writable paths writable,
loopback only), runs ``prober`` in the sandbox's network namespace to wait for the
port, ask the health path (2xx) and the smoke requests, then sends SIGTERM and waits a
grace period, as Kubernetes does before SIGKILL (not stopping is a warning, not a
failure). Every process of the service is killed at the end, whatever happens.
"""

from __future__ import annotations

import base64
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
from torchslim.sandbox.run import Emulation, Limits, Sandboxed, SandboxResult, start_in_root

PROBER = Path(prober.__file__).read_text(encoding="utf-8")
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
LOOPBACK = re.compile(r"^(127\.|::1$|::ffff:127\.)")
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b.*)$")
_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)')
_NETWORK = re.compile(
    r"name resolution|Name or service not known|Network is unreachable|"
    r"Temporary failure in name resolution|couldn't connect to|offline mode|"
    r"Max retries exceeded with url|LocalEntryNotFoundError",
    re.IGNORECASE,
)


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


@dataclass(frozen=True)
class ServeSpec:
    """What the served proof checks: the port, the health path, the smoke requests."""

    port: int
    health: str | None = None
    requests: tuple[SmokeRequest, ...] = ()
    writable: tuple[str, ...] = ()
    timeout: float = 180.0
    grace: float = STOP_GRACE


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
        )


def listen_setting(cmd: list[str], port: int) -> str:
    """The setting that makes the framework ``cmd`` runs listen on every address."""
    words = " ".join(cmd).lower()
    for name, setting in (
        ("gradio", "env GRADIO_SERVER_NAME = '0.0.0.0'"),
        ("streamlit", "--server.address 0.0.0.0"),
        ("gunicorn", f"--bind 0.0.0.0:{port}"),
        ("uvicorn", "--host 0.0.0.0"),
        ("hypercorn", f"--bind 0.0.0.0:{port}"),
        ("waitress", f"--listen 0.0.0.0:{port}"),
        ("flask", "--host 0.0.0.0 (or app.run(host='0.0.0.0'))"),
    ):
        if name in words:
            return setting
    return "bind to 0.0.0.0 (for Flask: app.run(host='0.0.0.0'); Gradio: GRADIO_SERVER_NAME)"


def error_line(output: str) -> str:
    """The service's own last error: ``ImportError: … (flask/helpers.py, line 16)``, else
    its last line of output."""
    lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    for i in range(len(lines) - 1, -1, -1):
        m = _EXCEPTION.match(lines[i].strip())
        if not m:
            continue
        frames = [_FRAME.match(ln) for ln in lines[:i]]
        last = next((f for f in reversed(frames) if f), None)
        where = f" ({_short(last[1])}, line {last[2]})" if last else ""
        return (m[1][:300] + where).strip()
    return lines[-1][:300] if lines else "(no output)"


def _short(path: str) -> str:
    """``/usr/lib/python3.11/site-packages/flask/helpers.py`` → ``flask/helpers.py``; the
    app's own files keep their image path."""
    return path.split("-packages/", 1)[1] if "-packages/" in path else path


def _nsenter(pid: int) -> list[str]:
    tool = shutil.which("nsenter") or "nsenter"
    if os.geteuid() == 0:
        return [tool, f"--target={pid}", "--net"]
    return [tool, f"--target={pid}", "--user", "--net", "--preserve-credentials"]


def _format_listeners(rows: list[list[Any]]) -> tuple[str, ...]:
    out = []
    for proto, addr, port in rows:
        if proto == "unix":
            out.append(f"unix:{addr}")
        else:
            out.append(f"[{addr}]:{port}" if ":" in str(addr) else f"{addr}:{port}")
    return tuple(out)


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
        tag, _, payload = line.partition(" ")
        try:
            value = json.loads(payload) if payload else None
        except ValueError:
            return
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
        f"the service did not stop within {grace:.0f} s of SIGTERM (Kubernetes then kills "
        "it): handle SIGTERM, or run it under an init such as tini",
    )


def _start_failure(cmd: str, port: int, result: SandboxResult) -> str:
    if result.setup_error:
        return f"{cmd} could not start: {result.setup_error}"
    why = error_line(result.stdout + "\n" + result.stderr)
    text = f"{cmd} {result.exit_text()} before listening on :{port}: {why}"
    if _NETWORK.search(result.stdout + result.stderr):
        text += (
            "; it reached for the network at start (a model download?), and the proof "
            "has none: ship the weights in the image (`model`) and load them from there"
        )
    return text


def _listen_failure(cmd: list[str], spec: ServeSpec, watch: _Watch, seconds: float) -> str:
    """Out of time: never listened, listened elsewhere, or never answered the health path."""
    command = shlex.join(cmd)
    tcp = [s for s in watch.listeners if s[0] != "unix"]
    unix = [s[1] for s in watch.listeners if s[0] == "unix"]
    if isinstance(watch.timed_out, dict) and "health" in watch.timed_out:
        got = watch.timed_out["health"]
        answer = f"HTTP {got['status']}" if got.get("status") else got.get("error", "no answer")
        return (
            f"{command} listened on :{spec.port} but {spec.health or '/'} did not answer 2xx "
            f"within {seconds:.0f} s (last: {answer}); set `health` to a path that does"
        )
    if tcp:
        ports = ", ".join(sorted({f":{s[2]}" for s in tcp}))
        return (
            f"{command} listened on {ports}, not on port {spec.port}: set port = "
            f"{tcp[0][2]} in the config, or make the service listen on {spec.port}"
        )
    if unix:
        return (
            f"{command} listened only on the unix socket {unix[0]}, not on port "
            f"{spec.port}: bind a TCP port (e.g. gunicorn --bind 0.0.0.0:{spec.port})"
        )
    return (
        f"{command} did not listen on port {spec.port} within {seconds:.0f} s: check `port`, "
        "or raise `proof_timeout` if it loads a large model at start"
    )


def _loopback_only(cmd: list[str], spec: ServeSpec, listening: list[list[Any]]) -> str | None:
    mine = [s for s in listening if s[0] != "unix" and s[2] == spec.port]
    if not mine or not all(LOOPBACK.match(str(s[1])) for s in mine):
        return None
    addr = _format_listeners(mine)[0]
    return (
        f"{shlex.join(cmd)} listens only on {addr}, which nothing outside the container "
        f"reaches: {listen_setting(cmd, spec.port)}"
    )


def _request_failure(spec: ServeSpec, watch: _Watch) -> tuple[int, str | None]:
    """How many smoke requests answered as expected; the first that did not, in one line."""
    passed = 0
    for i, request in enumerate(spec.requests):
        answer = watch.answers.get(i)
        if answer is None:
            return passed, f"smoke request {request.label()} got no answer"
        status = int(answer.get("status") or 0)
        if status != request.status:
            got = f"HTTP {status}" if status else str(answer.get("error"))
            body = str(answer.get("body") or "").strip().replace("\n", " ")[:200]
            return passed, (
                f"smoke request {request.label()} answered {got}, expected {request.status}"
                + (f": {body}" if body else "")
            )
        passed += 1
    return passed, None


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
    box = start_in_root(
        root, cmd, env=env, user=user, cwd=workdir, emulation=emulation,
        writable=list(spec.writable), limits=limits,
    )  # fmt: skip
    warnings: list[str] = []
    stopped: str | None = None
    try:
        watch, exited = _watch(box, spec, progress)
        failure: str | None = None
        if not exited:
            stopped, warning = _stop(box, spec.grace)
            warnings += [warning] if warning else []
    finally:
        result = box.result()
    seconds = result.seconds
    listening = _format_listeners(watch.listeners)
    if watch.broken is not None:
        failure = f"the proof could not ask {command}: its client failed: {watch.broken}"
    elif exited and watch.health is None:
        failure = _start_failure(command, spec.port, result)
    elif watch.health is None:
        failure = _listen_failure(cmd, spec, watch, seconds)
    else:
        failure = _loopback_only(cmd, spec, watch.listeners)
    passed, bad = _request_failure(spec, watch) if watch.health else (0, None)
    failure = failure or bad
    health = None
    if watch.health is not None:
        status, took = watch.health.get("status"), watch.health.get("seconds", 0.0)
        health = f"{spec.health or '/'} {status} after {took:.1f} s"
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
    )
