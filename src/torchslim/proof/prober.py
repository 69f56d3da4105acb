"""The served proof's client: asks the service from inside its network namespace.

``serve`` runs this file's source with the *host's* Python (``-I -S``, standard library
only) under ``nsenter --net`` into the sandbox's network namespace, where the service
is the only thing listening and ``lo`` the only interface. It never enters the image's
root. A JSON request on stdin names the port, the health path, the smoke requests and
the time left. It reports tagged lines on stdout: ``L`` the listening sockets whenever
they change (read from this namespace's /proc/net), ``H`` the health answer, ``Q`` one
smoke request's answer, ``T`` out of time, ``D`` done.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import sys
import time
from typing import Any

LISTEN, UNIX_ACCEPTING = "0A", 0x10000
MAX_BODY = 4096  # what is kept of an answer: enough for a message, never a flood


def _address(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def listeners() -> list[list[Any]]:
    """``[proto, address, port]`` of every listening TCP socket and unix socket path."""
    found: list[list[Any]] = []
    for proto in ("tcp", "tcp6"):
        try:
            with open("/proc/net/" + proto) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 3 and cols[3] == LISTEN:
                addr, _, port = cols[1].partition(":")
                found.append([proto, _address(addr), int(port, 16)])
    try:
        with open("/proc/net/unix") as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        rows = []
    for row in rows:
        cols = row.split()
        if len(cols) >= 8 and int(cols[3], 16) & UNIX_ACCEPTING:
            found.append(["unix", cols[7], 0])
    return sorted(found)


def emit(tag: str, value: Any) -> None:
    sys.stdout.write(tag + " " + json.dumps(value) + "\n")
    sys.stdout.flush()


def ask(host: str, port: int, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One HTTP request; its status and the start of its body, or the error."""
    body = base64.b64decode(request["body"]) if request.get("body") is not None else None
    headers = dict(request.get("headers") or {})
    conn = http.client.HTTPConnection(host, port, timeout=max(timeout, 1.0))
    try:
        conn.request(request["method"], request["path"], body=body, headers=headers)
        answer = conn.getresponse()
        text = answer.read(MAX_BODY).decode("utf-8", "replace")
        return {"status": answer.status, "body": text}
    except (OSError, http.client.HTTPException) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}
    finally:
        conn.close()


def main() -> None:
    req = json.loads(sys.stdin.read())
    port = int(req["port"])
    deadline = time.monotonic() + float(req["timeout"])
    seen: list[list[Any]] | None = None
    while True:
        now = listeners()
        if now != seen:
            emit("L", now)
            seen = now
        mine = [s for s in now if s[0] != "unix" and s[2] == port]
        if mine:
            break
        if time.monotonic() > deadline:
            emit("T", "listen")
            return
        time.sleep(0.1)
    host = "127.0.0.1" if any(s[0] == "tcp" for s in mine) else "::1"
    health = req.get("health")
    started = time.monotonic()
    last: dict[str, Any] = {}
    while True:
        left = deadline - time.monotonic()
        last = ask(host, port, {"method": "GET", "path": health or "/"}, min(left, 30.0))
        status = int(last.get("status") or 0)
        if (200 <= status < 300) or (health is None and 0 < status < 500):
            break
        if time.monotonic() > deadline:
            emit("T", {"health": last})
            return
        time.sleep(0.25)
    last["seconds"] = round(time.monotonic() - started, 3)
    emit("H", last)
    for i, request in enumerate(req.get("requests") or []):
        left = max(deadline - time.monotonic(), 5.0)
        answer = ask(host, port, request, left)
        answer["i"] = i
        emit("Q", answer)
    emit("D", None)


if __name__ == "__main__":
    main()
