"""The sandbox's init: runs inside fresh namespaces, prepares the root, then execs the command.

``sandbox.run_in_root`` starts this file's source with the *host's* Python under
util-linux ``unshare`` (mount, pid, net, ipc and usually user namespaces). Here, as
root of those namespaces, it binds the image's root filesystem onto itself, mounts
/proc, /sys, a small /dev (null, zero, full, random, urandom, shm) and a tmpfs on
/tmp, remounts the root read-only, chroots into it, and forks: the child drops every
capability and execs the command with the image's environment, this process stays
as the namespace's init and exits as the command did. Nothing is written to the root
directory on disk: every mount lives in the private mount namespace.

Errors of the sandbox itself exit 125 with one ``torchslim-sandbox:`` line on
stderr; a missing working directory or command exits 126 / 127 (as runc does).
Only the standard library: it runs before the chroot with ``python -I -S``.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from typing import Any, NoReturn

MARK = "torchslim-sandbox: "
EXIT_SETUP, EXIT_CANNOT_RUN, EXIT_NOT_FOUND = 125, 126, 127
SIGNALED = "killed by signal "  # then the number; the exit status is 128 + it

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_RELATIME = 1 << 21
ST_RELATIME = 4096  # statvfs's bit for relatime differs from mount(2)'s
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")

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


def _dev(root: str, emulator: str | None) -> str | None:
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
    _must(_mount("tmpfs", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"), "/dev/shm")
    os.mkdir(dev + "/pts")
    os.mkdir(dev + "/mqueue")
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ):
        os.symlink(target, dev + "/" + name)
    if emulator is None:
        return None
    inside = "/dev/.torchslim-emulator"
    with open(root + inside, "w"):
        pass
    _must(_mount(emulator, root + inside, None, MS_BIND), f"bind {emulator}")
    return inside


def _tmp(root: str) -> None:
    if os.path.isdir(root + "/tmp"):
        _must(_mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"), "/tmp")


def _which(name: str, path: str) -> str | None:
    if "/" in name:
        return name
    for d in path.split(":"):
        candidate = os.path.join(d or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _drop_privileges(spec: dict[str, Any]) -> None:
    if spec["set_ids"]:  # real root without a user namespace: become the image's user
        os.setgroups([])
        os.setgid(int(spec["gid"]))
        os.setuid(int(spec["uid"]))
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def _exec(spec: dict[str, Any], emulator: str | None) -> NoReturn:
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


def _init(child: int) -> NoReturn:
    """PID 1 of the namespace: reap every process, exit as the command did.

    The command does not run as PID 1, where the kernel drops the signals a process
    sends itself (``raise(SIGSEGV)``, ``abort``) instead of letting them kill it.
    """
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(EXIT_SETUP)
        if pid != child:
            continue
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            sys.stderr.write(f"{MARK}{SIGNALED}{sig}\n")
            sys.stderr.flush()
            os._exit(128 + sig)
        os._exit(os.WEXITSTATUS(status))


def main(spec: dict[str, Any]) -> NoReturn:
    root = os.path.realpath(spec["root"])
    _must(_mount(root, root, None, MS_BIND | MS_REC), f"bind {root}")
    _proc(root)
    _sys(root)
    emulator = _dev(root, spec.get("emulator"))
    _tmp(root)
    _must(
        _mount(None, root, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _locked_flags(root)),
        "remount the root read-only",
    )
    os.chdir(root)
    os.chroot(".")
    try:
        os.chdir(spec["cwd"])
    except OSError as exc:
        _die(EXIT_CANNOT_RUN, f"working directory {spec['cwd']}: {exc.strerror}")
    child = os.fork()
    if child == 0:
        _exec(spec, emulator)
    _init(child)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
