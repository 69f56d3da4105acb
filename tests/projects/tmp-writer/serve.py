"""A service on Python's own HTTP server that writes files while it runs.

GET  /health             → {"status": "ok"}
POST /scratch  {"values": [...]}      torch.save to a temporary file in /tmp, load it back
POST /state/KEY {"values": [...]}     torch.save to $STATE_DIR/KEY.pt (a declared writable path)
GET  /state/KEY                       the saved tensor's values
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch

STATE_DIR = Path(os.environ.get("STATE_DIR", "/var/lib/tmp-writer"))
PORT = int(os.environ.get("PORT", "8080"))


def scratch_roundtrip(values: list[float]) -> dict[str, Any]:
    """Save and reload through a temporary file, as services buffer uploads."""
    with tempfile.NamedTemporaryFile(suffix=".pt") as f:
        torch.save(torch.tensor(values), f.name)
        size = os.path.getsize(f.name)
        back = torch.load(f.name)
    return {"sum": float(back.sum()), "bytes": size, "dir": tempfile.gettempdir()}


class Handler(BaseHTTPRequestHandler):
    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, {"status": "ok"})
        elif self.path.startswith("/state/"):
            path = STATE_DIR / f"{Path(self.path).name}.pt"
            if not path.exists():
                self._send(404, {"error": "not found"})
            else:
                self._send(200, {"values": torch.load(path).tolist()})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        try:
            values = self._json()["values"]
            if self.path == "/scratch":
                self._send(200, scratch_roundtrip(values))
            elif self.path.startswith("/state/"):
                path = STATE_DIR / f"{Path(self.path).name}.pt"
                torch.save(torch.tensor(values), path)
                self._send(200, {"path": str(path), "bytes": path.stat().st_size})
            else:
                self._send(404, {"error": "not found"})
        except Exception as exc:  # the client sees why a write failed
            self._send(500, {"error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    # As PID 1 in a container, SIGTERM has no default action: exit on it, as servers do.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
