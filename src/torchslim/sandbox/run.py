"""Run a command inside an image's root filesystem, without a daemon.

``run_in_root(root, argv, ...)`` runs ``argv`` chrooted into ``root`` (a plain
directory holding the image's files) as the image's uid:gid with the image's
environment and working directory; ``start_in_root`` starts it and hands back a
``Sandboxed`` to talk to while it runs (a server). ``inner`` makes the namespaces:
user, mount, pid, network (loopback only), IPC and UTS. Inside, it mounts /proc (runc's
masked and read-only paths), a read-only /sys, a minimal /dev, bounded tmpfs on /tmp,
/dev/shm and the writable paths, makes the root read-only and execs. The directory on
disk is never written to.

The image's user never maps to a host uid that owns anything: as root, the namespace's
ids 0-65535 map to an unused subordinate range (``subordinate_base``: root's line in
/etc/subuid, else 2,000,000,000 on); rootless, the caller's own uid is the only one
mapped. Where user namespaces are off and the caller is root, the same namespaces run
without one and the command runs as the subordinate host uid (method ``chroot``).
``sandbox_available()`` says, once per process, why neither works. A
foreign-architecture root runs under qemu-user (``emulation_for``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from torchslim.sandbox import inner as sandboxinit
from torchslim.sandbox.emulation import QEMU_NAMES, Emulation, emulation_for, host_arch
from torchslim.sandbox.errors import SandboxError
from torchslim.sandbox.result import SandboxResult, split_status
from torchslim.sandbox.users import home_of, image_user

__all__ = [
    "QEMU_NAMES",
    "Bind",
    "Emulation",
    "Limits",
    "SandboxError",
    "SandboxResult",
    "Sandboxed",
    "emulation_for",
    "home_of",
    "host_arch",
    "image_user",
    "run_in_root",
    "sandbox_available",
    "sandbox_method",
    "start_in_root",
]

METHOD_USERNS = "userns+chroot"
METHOD_ROOT = "chroot"  # root without a user namespace
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # as runc sets
MAX_OUTPUT = 1 << 20
SUBORDINATE_DEFAULT = 2_000_000_000
ID_RANGE = 65536
_HELPER = Path(sandboxinit.__file__).read_text(encoding="utf-8")


def subordinate_base(subuid: Path = Path("/etc/subuid")) -> int:
    """Where root's sandboxes map their ids: root's own /etc/subuid range when it holds
    65,536 ids, else 2,000,000,000 (far above any uid that owns files on a host)."""
    try:
        lines = subuid.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        name, _, rest = line.partition(":")
        start, _, count = rest.partition(":")
        if name in ("root", "0") and start.isdigit() and count.isdigit() and int(count) >= ID_RANGE:
            return int(start)
    return SUBORDINATE_DEFAULT


def _id_map(inside: int, base: int) -> str:
    """Root's map: 0-65535 onto the subordinate range, and ``inside`` when it is above."""
    extra = f"{inside} {base + ID_RANGE} 1\n" if inside >= ID_RANGE else ""
    return f"0 {base} {ID_RANGE}\n{extra}"


def _ids(method: str, uid: int, gid: int) -> dict[str, Any]:
    """The spec's ids: who the command runs as, and the maps the launcher writes."""
    if method == METHOD_ROOT:  # no user namespace: a subordinate host uid itself
        base = subordinate_base()
        return {"userns": False, "set_ids": True, "uid": base + uid, "gid": base + gid}
    if os.geteuid() == 0:
        base = subordinate_base()
        return {
            "userns": True, "set_ids": True, "uid": uid, "gid": gid, "setgroups_deny": False,
            "uid_map": _id_map(uid, base), "gid_map": _id_map(gid, base),
        }  # fmt: skip
    return {
        "userns": True, "set_ids": False, "uid": uid, "gid": gid, "setgroups_deny": True,
        "uid_map": f"{uid} {os.geteuid()} 1\n", "gid_map": f"{gid} {os.getegid()} 1\n",
    }  # fmt: skip


def _userns_hint() -> str:
    for path, want in (
        ("/proc/sys/user/max_user_namespaces", "a positive number"),
        ("/proc/sys/kernel/unprivileged_userns_clone", "1"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "0"),
    ):
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        bad = value == "0" if want != "0" else value != "0"
        if bad:
            return f" ({path.removeprefix('/proc/sys/').replace('/', '.')} = {value}; needs {want})"
    return ""


@functools.cache
def _probe() -> tuple[str | None, str | None]:
    """(method, None) or (None, why the sandbox cannot run on this host)."""
    methods = [METHOD_USERNS] + ([METHOD_ROOT] if os.geteuid() == 0 else [])
    error = ""
    for method in methods:
        # Namespaces whose mounts fail (AppArmor's userns restriction) are no use either.
        spec = {"probe": True, "root": "/", **_ids(method, 1000, 1000)}
        argv = [sys.executable, "-I", "-S", "-c", _HELPER, json.dumps(spec)]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            error = str(exc)
            continue
        if proc.returncode == 0:
            return method, None
        lines = [ln.removeprefix(sandboxinit.MARK) for ln in proc.stderr.strip().splitlines()]
        error = (lines or [f"exit {proc.returncode}"])[-1]
    return None, f"cannot create a user namespace: {error}{_userns_hint()}"


def sandbox_available() -> str | None:
    """None when ``run_in_root`` can run here; else one line saying why not (probed once)."""
    return _probe()[1]


def sandbox_method() -> str | None:
    """``userns+chroot`` or ``chroot`` (root without user namespaces); None when unavailable."""
    return _probe()[0]


class _Tail:
    """Reads a pipe to its end, keeping only the last ``limit`` bytes."""

    def __init__(self, pipe: IO[bytes] | None, limit: int) -> None:
        self.data = bytearray()
        self.limit = limit
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe: IO[bytes] | None) -> None:
        if pipe is None:
            return
        fd = pipe.fileno()
        while chunk := os.read(fd, 1 << 16):
            self.data += chunk
            if len(self.data) > 2 * self.limit:
                del self.data[: len(self.data) - self.limit]

    def text(self) -> str:
        self.thread.join()
        return bytes(self.data[-self.limit :]).decode("utf-8", "replace")


@dataclass(frozen=True)
class Bind:
    """A host folder mounted at ``inside`` (a folder the root has): read-only unless
    ``writable``, when it is handed to the command's user first (chown, as root)."""

    host: Path
    inside: str
    writable: bool = False


def _three_quarters_of_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 3 // 4
    except (OSError, ValueError):
        return 0


@dataclass(frozen=True)
class Limits:
    """What a sandboxed command may use: tmpfs sizes (/tmp, /dev/shm and each writable
    path), processes of its user, and data memory per process (``RLIMIT_DATA``: private
    writable memory, what a leak or a bomb grows; 0: unbounded). The default leaves the
    builder a quarter of the machine."""

    tmp_bytes: int = 1 << 30
    max_procs: int = 4096
    max_memory: int = field(default_factory=_three_quarters_of_memory)


class Sandboxed:
    """A command running in the sandbox: its host pids, signals, and its result."""

    def __init__(
        self, proc: subprocess.Popen[bytes], status: int, argv: list[str], method: str,
        max_output: int,
    ) -> None:  # fmt: skip
        self.proc = proc
        self.argv = argv
        self.method = method
        self.started = time.monotonic()
        self._status = status
        self._init: int | None = None
        self.out = _Tail(proc.stdout, max_output)
        self.err = _Tail(proc.stderr, max_output)
        self.timed_out = False

    def init_pid(self, timeout: float = 30.0) -> int | None:
        """The host pid of the namespace's init (PID 1 inside); None if it never started."""
        if self._init is None and self._status >= 0:
            ready, _, _ = select.select([self._status], [], [], timeout)
            data = os.read(self._status, 64) if ready else b""
            os.close(self._status)
            self._status = -1
            self._init = int(data) if data.strip().isdigit() else None
        return self._init

    def running(self) -> bool:
        return self.proc.poll() is None

    def terminate(self) -> None:
        """SIGTERM to the command (the init forwards it), as a runtime stops a container."""
        pid = self.init_pid(0)
        if pid is not None and self.running():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)

    def kill(self) -> None:
        """Every process of it: the init dies, and the kernel kills its namespace."""
        if self.running():
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether it ended within ``timeout``."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def result(self) -> SandboxResult:
        """Wait for the end (kill first if needed) and what it did."""
        self.kill()
        if self._status >= 0:
            os.close(self._status)
            self._status = -1
        returncode, stderr = split_status(self.proc.returncode, self.err.text())
        return SandboxResult(
            argv=tuple(self.argv),
            returncode=returncode,
            stdout=self.out.text(),
            stderr=stderr,
            seconds=time.monotonic() - self.started,
            timed_out=self.timed_out,
            method=self.method,
        )


def start_in_root(
    root: Path,
    argv: list[str],
    *,
    env: dict[str, str],
    user: tuple[int, int],
    cwd: str = "/",
    stdin: bytes | None = None,
    max_output: int = MAX_OUTPUT,
    emulation: Emulation | None = None,
    writable: list[str] | None = None,
    limits: Limits | None = None,
    binds: list[Bind] | None = None,
    pid1: bool = False,
) -> Sandboxed:
    """Start ``argv`` in ``root`` as ``user`` with ``env`` (PATH lookup inside the root).

    ``pid1``: ``argv`` is the namespace's PID 1, as in a container run without an init:
    the kernel then delivers SIGTERM only when it has a handler. Else an init runs it,
    reaps and forwards SIGTERM.

    Raises SandboxError when no sandbox can run on this host.
    """
    method = sandbox_method()
    if method is None:
        raise SandboxError(f"cannot run in the image's root: {sandbox_available()}")
    if not argv:
        raise ValueError("argv is empty")
    uid, gid = user
    limits = limits or Limits()
    full_env = {"PATH": DEFAULT_PATH, "HOME": home_of(root, uid), **env}
    full_env["PYTHONDONTWRITEBYTECODE"] = "1"  # the root is read-only; never try to write
    status_r, status_w = os.pipe()
    spec = {
        "root": str(root),
        "cwd": cwd or "/",
        "argv": list(argv),
        "env": full_env,
        "emulator": emulation.binary if emulation else None,
        "status_fd": status_w,
        "writable": list(writable or []),
        "tmp_size": limits.tmp_bytes,
        "max_procs": limits.max_procs,
        "max_memory": limits.max_memory,
        "binds": [[str(b.host), b.inside, b.writable] for b in binds or []],
        "pid1": pid1,
        **_ids(method, uid, gid),
    }
    if os.geteuid() == 0:  # rootless, the caller's own folders are already the user's
        shift = 0 if method == METHOD_ROOT else subordinate_base()
        for b in binds or []:
            if b.writable:
                os.chown(b.host, int(spec["uid"]) + shift, int(spec["gid"]) + shift)
    if emulation is not None:
        method += "+" + emulation.method
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _HELPER, json.dumps(spec)],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", DEFAULT_PATH), "LANG": "C.UTF-8"},
            start_new_session=True,
            pass_fds=(status_w,),
        )
    finally:
        os.close(status_w)
    if stdin is not None and proc.stdin is not None:
        threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()
    return Sandboxed(proc, status_r, argv, method, max_output)


def run_in_root(
    root: Path,
    argv: list[str],
    *,
    env: dict[str, str],
    user: tuple[int, int],
    cwd: str = "/",
    timeout: float = 120.0,
    stdin: bytes | None = None,
    max_output: int = MAX_OUTPUT,
    emulation: Emulation | None = None,
    writable: list[str] | None = None,
    limits: Limits | None = None,
    binds: list[Bind] | None = None,
) -> SandboxResult:
    """Run ``argv`` in ``root`` to its end (see ``start_in_root``).

    Raises SandboxError when no sandbox can run on this host or the root cannot be
    mounted (exit 125); a command that fails or cannot be found is a result (exit
    126/127 with ``setup_error``), not an exception.
    """
    box = start_in_root(
        root, argv, env=env, user=user, cwd=cwd, stdin=stdin, max_output=max_output,
        emulation=emulation, writable=writable, limits=limits, binds=binds,
    )  # fmt: skip
    if not box.wait(timeout):
        box.timed_out = True
    result = box.result()
    if result.returncode == sandboxinit.EXIT_SETUP and result.setup_error:
        raise SandboxError(f"cannot run in {root}: {result.setup_error}")
    return result


def _feed(pipe: IO[bytes], data: bytes) -> None:
    try:
        pipe.write(data)
        pipe.close()
    except OSError:  # the command exited without reading it all
        pass
