"""The sandbox's own processes: create the namespaces, prepare the root, exec the command.

``sandbox.run`` starts this file's source with the *host's* Python (``-I -S``, standard
library only). Three processes, as runc has them: (1) the **launcher**, in the host's
namespaces, forks (2) and writes its uid/gid maps once (2) has made its namespaces (as
root, an unused subordinate range: the image user never maps to host uid 0 or to a uid
that owns host files; rootless, the caller's uid only), reports (3)'s host pid on the
status pipe and exits as (2) does; (2) the **namespace holder** unshares user, mount,
pid, network, IPC and UTS namespaces and forks (3); (3) the **init**, PID 1 inside,
mounts the root read-only with /proc (runc's masked and read-only paths), a read-only
/sys, a small /dev, bounded tmpfs on /tmp, /dev/shm and each writable path, brings up
``lo`` (the only network), chroots, forks the command as the image's user (no
capabilities, no_new_privs, rlimits), forwards SIGTERM/SIGINT to it, reaps every process
and exits as the command did; when it dies, the kernel kills the whole namespace.

Nothing is written to the root directory on disk: every mount lives in the private
mount namespace. Errors of the sandbox itself exit 125 with one ``torchslim-sandbox:``
line on stderr; a missing working directory or command exits 126 / 127 (as runc does).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import resource
import signal
import socket
import struct
import sys
from typing import Any, NoReturn

MARK = "torchslim-sandbox: "
EXIT_SETUP, EXIT_CANNOT_RUN, EXIT_NOT_FOUND = 125, 126, 127
SIGNALED = "killed by signal "  # then the number; the exit status is 128 + it

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
ST_RELATIME = 4096  # statvfs's bit for relatime differs from mount(2)'s
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
SIOCSIFFLAGS, IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x8914, 0x1, 0x8, 0x40

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
# What runc masks (bind /dev/null or an empty read-only tmpfs over) and makes read-only.
MASKED = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)  # fmt: skip
READ_ONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
NEW_ROOT = "/tmp/.torchslim-root"  # in the private mount namespace's own tmpfs
# What a runtime writes into a container's /etc/hosts (podman, Kubernetes): a service may
# ask for localhost by name (Gradio does at launch) or resolve its own host name.
HOSTNAME = "torchslim"
HOSTS = f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{HOSTNAME}\n"

_libc = ctypes.CDLL(None, use_errno=True)


def _die(code: int, text: str) -> NoReturn:
    sys.stderr.write(MARK + text + "\n")
    sys.stderr.flush()
    os._exit(code)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> int:
    """mount(2); 0 or the errno."""
    rc = _libc.mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    return 0 if rc == 0 else ctypes.get_errno()


def _must(errno: int, what: str) -> None:
    if errno:
        _die(EXIT_SETUP, f"{what}: {os.strerror(errno)}")


def _locked_flags(path: str) -> int:
    """The flags a bind mount of ``path`` must keep when remounted inside a user namespace."""
    f = os.statvfs(path).f_flag
    flags = f & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME)
    return flags | (MS_RELATIME if f & ST_RELATIME else 0)


def _read_only(path: str) -> None:
    """Bind ``path`` onto itself, read-only (runc's readonlyPaths)."""
    if os.path.lexists(path) and _mount(path, path, None, MS_BIND | MS_REC) == 0:
        _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _locked_flags(path))


def _mask(path: str) -> None:
    """Hide ``path`` (runc's maskedPaths): /dev/null over a file, an empty tmpfs over a dir."""
    if os.path.isdir(path):
        _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
    elif os.path.exists(path):
        _mount("/dev/null", path, None, MS_BIND)


def _proc(root: str) -> None:
    target = root + "/proc"
    if not os.path.isdir(target):
        return
    # A fresh proc shows only this pid namespace; where the kernel refuses (a masked /proc
    # in an outer container), the host's is the fallback.
    if _mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC):
        _must(_mount("/proc", target, None, MS_BIND | MS_REC), "mount /proc")


def _sys(root: str) -> None:
    target = root + "/sys"
    if not os.path.isdir(target):
        return
    if _mount("sysfs", target, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC) == 0:
        return
    # torch and OpenBLAS read /sys/devices/system/cpu; without it they still work.
    if _mount("/sys", target, None, MS_BIND | MS_REC) == 0:
        _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _locked_flags("/sys"))


def _dev(root: str, emulator: str | None, shm: str) -> str | None:
    """A tmpfs /dev with the host's harmless nodes bound in; returns the emulator's path."""
    dev = root + "/dev"
    if not os.path.isdir(dev):
        return None
    _must(_mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=65536k"), "mount tmpfs on /dev")
    for name in DEV_NODES:
        host = "/dev/" + name
        if not os.path.exists(host):
            continue
        with open(dev + "/" + name, "w"):
            pass
        if _mount(host, dev + "/" + name, None, MS_BIND):
            os.unlink(dev + "/" + name)  # /dev/tty when there is no terminal
    os.mkdir(dev + "/shm")
    _must(_mount("tmpfs", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV, shm), "/dev/shm")
    os.mkdir(dev + "/pts")
    os.mkdir(dev + "/mqueue")
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, dev + "/" + name)
    if emulator is None:
        return None
    inside = "/dev/.torchslim-emulator"
    with open(root + inside, "w"):
        pass
    _must(_mount(emulator, root + inside, None, MS_BIND), f"bind {emulator}")
    return inside


def _tmpfs(root: str, path: str, data: str) -> None:
    if os.path.isdir(root + path):
        _must(_mount("tmpfs", root + path, "tmpfs", MS_NOSUID | MS_NODEV, data), path)


def _hosts(root: str) -> None:
    """The host name and /etc/hosts a runtime gives a container. The hosts file is bound
    over the image's own (the build makes an empty one where the image has none); a link
    there is left alone, as it may lead anywhere."""
    socket.sethostname(HOSTNAME)
    target = root + "/etc/hosts"
    if os.path.islink(target) or not os.path.isfile(target):
        return
    source = "/tmp/hosts"  # the private scratch tmpfs, never the host's /tmp
    with open(source, "w") as out:
        out.write(HOSTS)
    _must(_mount(source, target, None, MS_BIND), "bind /etc/hosts")
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
    _must(_mount(None, target, None, flags | _locked_flags(target)), "/etc/hosts read-only")


def _loopback() -> None:
    """Bring up ``lo``, the namespace's only interface (a fresh network namespace has it down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags))


def _which(name: str, path: str) -> str | None:
    if "/" in name:
        return name
    for d in path.split(":"):
        candidate = os.path.join(d or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _limit(spec: dict[str, Any]) -> None:
    """Process count, core dumps and open files, per the spec (the caller's bounds)."""
    procs = int(spec.get("max_procs") or 0)
    if procs:
        resource.setrlimit(resource.RLIMIT_NPROC, (procs, procs))
    memory = int(spec.get("max_memory") or 0)
    if memory:
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _drop_privileges(spec: dict[str, Any]) -> None:
    if spec["set_ids"]:  # root of the namespace (or real root): become the image's user
        os.setgroups([])
        os.setresgid(int(spec["gid"]), int(spec["gid"]), int(spec["gid"]))
        os.setresuid(int(spec["uid"]), int(spec["uid"]), int(spec["uid"]))
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def _exec(spec: dict[str, Any], emulator: str | None) -> NoReturn:
    _limit(spec)
    _drop_privileges(spec)
    argv: list[str] = list(spec["argv"])
    env: dict[str, str] = dict(spec["env"])
    exe = _which(argv[0], env.get("PATH", ""))
    if exe is None or not os.path.lexists(exe):
        where = "does not exist" if "/" in argv[0] else f"is not on PATH ({env.get('PATH', '')})"
        _die(EXIT_NOT_FOUND, f"{argv[0]!r} {where}")
    try:
        if emulator is not None:
            os.execve(emulator, [emulator, "-0", argv[0], exe, *argv[1:]], env)
        os.execve(exe, argv, env)
    except FileNotFoundError:
        _die(EXIT_NOT_FOUND, f"{exe}: no such file (or its ELF interpreter is missing)")
    except OSError as exc:
        _die(EXIT_CANNOT_RUN, f"{exe}: {exc.strerror}")


def _reap(child: int) -> NoReturn:
    """PID 1 of the namespace: reap every process, forward SIGTERM/SIGINT to the command,
    exit as the command did.

    The command does not run as PID 1, where the kernel drops the signals a process
    sends itself (``raise(SIGSEGV)``, ``abort``) instead of letting them kill it.
    """

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(EXIT_SETUP)
        except InterruptedError:
            continue
        if pid != child:
            continue
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            sys.stderr.write(f"{MARK}{SIGNALED}{sig}\n")
            sys.stderr.flush()
            os._exit(128 + sig)
        os._exit(os.WEXITSTATUS(status))


def _private_tmp() -> None:
    """Our mounts never propagate to the host's; a scratch tmpfs to mount the root on."""
    _must(_mount(None, "/", None, MS_REC | MS_PRIVATE), "make mounts private")
    _must(_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=700"), "/tmp")


def _binds(root: str, binds: list[tuple[int, str, bool]]) -> None:
    """Host folders the caller hands in (a build's source and output), each opened before
    the ids changed; read-only unless the caller asked for writes."""
    for fd, inside, writable in binds:
        target = root + inside
        if inside.startswith("/tmp/") and not os.path.isdir(target):
            os.mkdir(target)  # on the /tmp this sandbox mounted: a mountpoint of its own
        _must(_mount(f"/proc/self/fd/{fd}", target, None, MS_BIND), f"bind {inside}")
        if not writable:
            flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
            _must(_mount(None, target, None, flags | _locked_flags(target)), f"{inside} read-only")


def _prepare_root(
    spec: dict[str, Any], source: str, binds: list[tuple[int, str, bool]]
) -> tuple[str, str | None]:
    """Mount everything the command sees; returns the new root and the emulator's path.

    ``source`` is ``/proc/self/fd/N`` of the root opened before the ids changed: it may
    lie under a folder only host root can enter (``/root/.cache``).
    """
    _private_tmp()
    os.mkdir(NEW_ROOT)
    _must(_mount(source, NEW_ROOT, None, MS_BIND | MS_REC), f"bind {spec['root']}")
    root = NEW_ROOT
    size = int(spec.get("tmp_size") or 0)
    tmp = "mode=1777" + (f",size={size}" if size else "")
    _proc(root)
    _sys(root)
    for path in MASKED:
        _mask(root + path)
    for path in READ_ONLY:
        _read_only(root + path)
    emulator = _dev(root, spec.get("emulator"), tmp)
    _tmpfs(root, "/tmp", tmp)
    owner = f"uid={spec['uid']},gid={spec['gid']},mode=755" + (f",size={size}" if size else "")
    for path in spec.get("writable") or []:
        _tmpfs(root, path, owner)
    _binds(root, binds)
    _hosts(root)
    _must(
        _mount(None, root, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _locked_flags(root)),
        "remount the root read-only",
    )
    return root, emulator


def _init(spec: dict[str, Any]) -> NoReturn:
    """PID 1: prepare the root, fork the command, reap."""
    try:
        fd = os.open(os.path.realpath(spec["root"]), os.O_PATH | os.O_DIRECTORY)
        binds = [
            (os.open(host, os.O_PATH | os.O_DIRECTORY), inside, bool(rw))
            for host, inside, rw in spec.get("binds") or []
        ]
    except OSError as exc:
        _die(EXIT_SETUP, f"open {exc.filename}: {exc.strerror}")
    if spec["userns"] and spec["set_ids"]:
        os.setresgid(0, 0, 0)  # host root → the namespace's root (a subordinate host uid)
        os.setresuid(0, 0, 0)
    if spec.get("probe"):
        _private_tmp()
        _loopback()
        os._exit(0)
    root, emulator = _prepare_root(spec, f"/proc/self/fd/{fd}", binds)
    os.close(fd)
    try:
        _loopback()
    except OSError as exc:
        _die(EXIT_SETUP, f"bring up lo: {exc.strerror}")
    os.chdir(root)
    os.chroot(".")
    try:
        os.chdir(spec["cwd"])
    except OSError as exc:
        _die(EXIT_CANNOT_RUN, f"working directory {spec['cwd']}: {exc.strerror}")
    if spec.get("pid1"):
        _exec(spec, emulator)  # as a runtime without --init: SIGTERM needs a handler
    child = os.fork()
    if child == 0:
        _exec(spec, emulator)
    _reap(child)


def _hold(spec: dict[str, Any], ready: int, go: int, status: int) -> NoReturn:
    """Process 2: make the namespaces, wait for the id maps, fork the init."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if _libc.unshare(flags | (CLONE_NEWUSER if spec["userns"] else 0)):
        _die(EXIT_SETUP, f"create namespaces: {os.strerror(ctypes.get_errno())}")
    os.write(ready, b"1")
    os.close(ready)
    if os.read(go, 1) != b"1":
        _die(EXIT_SETUP, "the user namespace's id maps could not be written")
    os.close(go)
    init = os.fork()
    if init == 0:
        os.close(status)
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        _init(spec)
    os.write(status, f"{init}\n".encode())
    os.close(status)
    _, code = os.waitpid(init, 0)
    os._exit(os.waitstatus_to_exitcode(code) if os.WIFEXITED(code) else 128 + os.WTERMSIG(code))


def _write_maps(pid: int, spec: dict[str, Any]) -> str | None:
    """Write ``pid``'s uid/gid maps; None, or why not."""
    files = [("setgroups", "deny")] if spec["setgroups_deny"] else []
    for name, text in [*files, ("uid_map", spec["uid_map"]), ("gid_map", spec["gid_map"])]:
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        except OSError as exc:
            return f"write /proc/{pid}/{name} ({text.strip()!r}): {exc.strerror}"
    return None


def main(spec: dict[str, Any]) -> NoReturn:
    """Process 1 (the launcher): fork the namespace holder, map its ids, exit as it does."""
    status = int(spec.get("status_fd") or -1)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    holder = os.fork()
    if holder == 0:
        os.close(ready_r)
        os.close(go_w)
        _hold(spec, ready_w, go_r, status if status >= 0 else os.open(os.devnull, os.O_WRONLY))
    os.close(ready_w)
    os.close(go_r)
    if status >= 0:
        os.close(status)
    why = None
    if os.read(ready_r, 1) == b"1" and spec["userns"]:
        why = _write_maps(holder, spec)
    if why:
        sys.stderr.write(MARK + why + "\n")
    with contextlib.suppress(OSError):
        os.write(go_w, b"0" if why else b"1")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the host signals the init directly
    _, code = os.waitpid(holder, 0)
    os._exit(os.waitstatus_to_exitcode(code) if os.WIFEXITED(code) else 128 + os.WTERMSIG(code))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
