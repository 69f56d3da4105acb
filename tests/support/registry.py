"""Start Debian's real ``docker-registry`` on a free loopback port (tests and bench/ use it).

Test files import shared names from here, not from ``conftest`` (that name is
shared by every test directory).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from torchslim.oci.image import Image

REGISTRY_BIN = "docker-registry"
USER = "alice"
PASSWORD = "Tr0ub4dor&3-not-a-real-secret"
ImageMaker = Callable[..., Image]


def write_docker_config(cfg_dir: Path, content: dict[str, object]) -> None:
    """Write ``cfg_dir/config.json`` (point ``DOCKER_CONFIG`` at ``cfg_dir``)."""
    (cfg_dir / "config.json").write_text(json.dumps(content))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd line: ``htpasswd -Bbn`` (apache2-utils) if present, else PyPI bcrypt."""
    tool = shutil.which("htpasswd")
    if tool is not None:
        out = subprocess.run(
            [tool, "-Bbn", user, password], capture_output=True, text=True, check=True
        ).stdout
        return out.strip()
    import bcrypt

    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}"


@dataclass
class Registry:
    """A running registry: ``host`` is ``127.0.0.1:PORT``, ``storage`` its blob directory."""

    host: str
    storage: Path
    log: Path
    proc: subprocess.Popen[bytes]
    user: str | None = None
    password: str | None = None

    def blob_data(self, digest: str) -> Path:
        hexpart = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_registry(
    workdir: Path,
    *,
    user: str | None = None,
    password: str | None = None,
    access_log: bool = False,
) -> Registry:
    """Run ``docker-registry serve`` with filesystem storage under ``workdir``;
    ``access_log`` writes a line per request to ``Registry.log`` (see ``served``)."""
    exe = shutil.which(REGISTRY_BIN)
    if exe is None:
        raise RuntimeError("docker-registry is not installed (apt-get install docker-registry)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    storage = workdir / "storage"
    auth = ""
    if user is not None and password is not None:
        (workdir / "htpasswd").write_text(htpasswd_line(user, password) + "\n")
        auth = f"auth:\n  htpasswd:\n    realm: torchslim-test\n    path: {workdir / 'htpasswd'}\n"
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"log:\n  level: warn\n  accesslog:\n    disabled: {'false' if access_log else 'true'}\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: torchslim-test-secret\n" + auth
    )
    log = workdir / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([exe, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT)
    reg = Registry(f"127.0.0.1:{port}", storage, log, proc, user, password)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-500:]}")
        try:
            httpx.get(f"http://{reg.host}/v2/", timeout=1)
            return reg
        except httpx.TransportError:
            time.sleep(0.1)
    reg.stop()
    raise RuntimeError("docker-registry did not start within 20 s")


_ACCESS = re.compile(
    r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) (?P<size>\d+|-)'
)


@dataclass
class Served:
    """What the registry sent, from its access log: one (method, path, status, bytes) each."""

    requests: list[tuple[str, str, int, int]]

    @property
    def bytes(self) -> int:
        return sum(size for *_, size in self.requests)

    @property
    def ranged(self) -> int:
        """Responses with part of a blob (206): a partial pull's range requests."""
        return sum(1 for _, _, status, _ in self.requests if status == 206)

    def blobs(self) -> set[str]:
        """The blob digests fetched."""
        return {
            p.rsplit("/", 1)[1] for m, p, _, _ in self.requests if "/blobs/" in p and m == "GET"
        }


def log_mark(reg: Registry) -> int:
    """Where the access log ends now: pass it to ``served``."""
    return len(reg.log.read_bytes())


def served(reg: Registry, since: int) -> Served:
    """The requests the registry answered after ``since`` (a ``log_mark``)."""
    text = reg.log.read_bytes()[since:].decode(errors="replace")
    out = []
    for m in _ACCESS.finditer(text):
        size = 0 if m["size"] == "-" else int(m["size"])
        out.append((m["method"], m["path"], int(m["status"]), size))
    return Served(out)
