"""The served proof's refusals: what happened, in one line, with the way out.

Each names the command and what the proof saw: the error it died of (its innermost
frame), that it listened elsewhere or only on loopback (and the framework's setting),
that it never listened or never answered 2xx, that a smoke request got another status.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING, Any

from torchslim.sandbox.result import SandboxResult

if TYPE_CHECKING:
    from torchslim.proof.serve import ServeSpec, _Watch

LOOPBACK = re.compile(r"^(127\.|::1$|::ffff:127\.)")
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b.*)$")
_STDLIB = re.compile(r"^<|/lib/python3\.\d+/(?!.*-packages/)")
_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)')
_NETWORK = re.compile(
    r"name resolution|Name or service not known|Network is unreachable|"
    r"Temporary failure in name resolution|couldn't connect to|offline mode|"
    r"Max retries exceeded with url|LocalEntryNotFoundError",
    re.IGNORECASE,
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
        frames = [f for f in (_FRAME.match(ln) for ln in lines[:i]) if f]
        # The standard library's frames (importlib, <frozen …>) say nothing of the cause:
        # the innermost frame of a package or of the app does.
        last = next((f for f in reversed(frames) if not _STDLIB.search(f[1])), None)
        where = f" ({_short(last[1])}, line {last[2]})" if last else ""
        return (m[1][:300] + where).strip()
    return lines[-1][:300] if lines else "(no output)"


def _short(path: str) -> str:
    """``/usr/lib/python3.11/site-packages/flask/helpers.py`` → ``flask/helpers.py``; the
    app's own files keep their image path."""
    return path.split("-packages/", 1)[1] if "-packages/" in path else path


def format_listeners(rows: list[list[Any]]) -> tuple[str, ...]:
    out = []
    for proto, addr, port in rows:
        if proto == "unix":
            out.append(f"unix:{addr}")
        else:
            out.append(f"[{addr}]:{port}" if ":" in str(addr) else f"{addr}:{port}")
    return tuple(out)


def start_failure(cmd: str, port: int, result: SandboxResult) -> str:
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


def listen_failure(cmd: list[str], spec: ServeSpec, watch: _Watch, seconds: float) -> str:
    """Out of time: never listened, listened elsewhere, or never answered the health path."""
    command = shlex.join(cmd)
    tcp = [s for s in watch.listeners if s[0] != "unix"]
    unix = [s[1] for s in watch.listeners if s[0] == "unix"]
    if isinstance(watch.timed_out, dict) and "health" in watch.timed_out:
        got = watch.timed_out["health"]
        answer = f"HTTP {got['status']}" if got.get("status") else got.get("error", "no answer")
        return (
            f"{command} listened on :{spec.port} but {spec.shown_health()} did not answer 2xx "
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


def loopback_only(cmd: list[str], spec: ServeSpec, listening: list[list[Any]]) -> str | None:
    mine = [s for s in listening if s[0] != "unix" and s[2] == spec.port]
    if not mine or not all(LOOPBACK.match(str(s[1])) for s in mine):
        return None
    addr = format_listeners(mine)[0]
    return (
        f"{shlex.join(cmd)} listens only on {addr}, which nothing outside the container "
        f"reaches: {listen_setting(cmd, spec.port)}"
    )


def request_failure(spec: ServeSpec, watch: _Watch) -> tuple[int, str | None]:
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
