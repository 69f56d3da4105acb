"""run_in_root on a real root filesystem (the host's Python, linked into a directory)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.proofroot import ENV, USER, make_root, processes_with, snapshot

from torchslim.sandbox import emulation
from torchslim.sandbox import run as sandbox
from torchslim.sandbox.result import split_status
from torchslim.sandbox.run import (
    Emulation,
    SandboxError,
    emulation_for,
    host_arch,
    image_user,
    run_in_root,
    sandbox_available,
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    reason = sandbox_available()
    if reason is not None:
        pytest.skip(f"no sandbox on this host: {reason}")
    yield make_root(tmp_path_factory.mktemp("sb") / "root")


def py(root: Path, code: str, **kw: object) -> sandbox.SandboxResult:
    opts: dict[str, object] = {"env": ENV, "user": USER, "cwd": "/app", "timeout": 60.0, **kw}
    return run_in_root(root, ["python3", "-c", code], **opts)  # type: ignore[arg-type]


def test_runs_as_the_image_user_in_its_workdir_with_its_env(root: Path) -> None:
    code = (
        "import os; print(os.getuid(), os.getgid(), os.getcwd(), os.environ['HOME'], os.getpid())"
    )
    result = py(root, code, env={**ENV, "GREETING": "hi"})
    assert result.returncode == 0, result.stderr
    uid, gid, cwd, home, pid = result.stdout.split()
    assert (uid, gid, cwd, home) == ("1000", "1000", "/app", "/home/app")
    assert pid == "2"  # its own pid namespace; pid 1 is the sandbox's init
    assert (
        py(root, "import os; print(os.environ['GREETING'])", env={**ENV, "GREETING": "hi"}).stdout
        == "hi\n"
    )
    assert result.method in ("userns+chroot", "chroot")


def test_root_is_read_only_tmp_and_dev_work_and_nothing_changes_on_disk(root: Path) -> None:
    before = snapshot(root)
    code = """
import os
for path in ("/app/new", "/usr/x"):
    try:
        open(path, "w")
        print("wrote", path)
    except OSError as e:
        print(path, e.strerror)
open("/tmp/t", "w").write("x"); open("/dev/shm/s", "w").write("y")
rnd, zero = open("/dev/urandom", "rb").read(8), open("/dev/zero", "rb").read(2)
print(len(rnd), zero, open("/dev/null").read())
import service.main  # would write __pycache__ if it could
print(sorted(os.listdir("/proc/self/fd"))[:3])
"""
    result = py(root, code)
    assert result.returncode == 0, result.stderr
    assert "/app/new Read-only file system" in result.stdout
    assert "/usr/x Read-only file system" in result.stdout
    assert "8 b'\\x00\\x00' " in result.stdout
    assert snapshot(root) == before
    assert not (root / "app/service/__pycache__").exists()


def test_no_network_but_loopback_device(root: Path) -> None:
    code = "print(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]))"
    assert py(root, code).stdout.strip() == "['lo']"


def test_exit_codes_signals_and_the_sandboxs_own_errors(root: Path) -> None:
    assert py(root, "raise SystemExit(3)").returncode == 3
    crashed = py(root, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert crashed.returncode == -signal.SIGSEGV
    assert crashed.exit_text() == "killed by SIGSEGV"
    assert "torchslim-sandbox" not in crashed.stderr
    missing = run_in_root(root, ["python"], env=ENV, user=USER, cwd="/app")
    assert missing.returncode == 127
    assert missing.setup_error == "'python' is not on PATH (/usr/local/bin:/usr/bin:/bin)"
    nowd = run_in_root(root, ["python3", "-V"], env=ENV, user=USER, cwd="/srv")
    assert (nowd.returncode, nowd.setup_error) == (
        126,
        "working directory /srv: No such file or directory",
    )


def test_timeout_kills_every_process_inside(root: Path) -> None:
    marker = f"torchslim-sleeper-{os.getpid()}"
    code = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', '{marker}'])\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    result = py(root, code, timeout=1.5)
    assert result.stdout == "started\n"
    assert result.timed_out and result.exit_text() == f"timed out after {result.seconds:.0f}s"
    assert result.seconds < 10
    assert processes_with(marker) == []


def test_stdin_goes_in_and_output_is_bounded_to_its_tail(root: Path) -> None:
    code = "import sys; data = sys.stdin.read(); print('x' * 3_000_000); print('last', len(data))"
    result = py(root, code, stdin=b"y" * 200_000, max_output=4096)
    assert result.returncode == 0
    assert len(result.stdout) == 4096
    assert result.stdout.endswith("last 200000\n")


def test_unavailable_sandbox_raises_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    why = "cannot create a user namespace: unshare failed: Operation not permitted"
    monkeypatch.setattr(sandbox, "_probe", lambda: (None, why))
    assert sandbox_available() == why
    with pytest.raises(SandboxError, match="cannot run in the image's root: cannot create"):
        run_in_root(tmp_path, ["true"], env={}, user=(1000, 1000))


def test_the_image_user_maps_to_no_host_uid_that_owns_files(root: Path) -> None:
    """As root, ids map to an unused subordinate range, never to host uid 0 (issue 21)."""
    code = (
        "print(open('/proc/self/uid_map').read().split()); print(open('/proc/self/status').read())"
    )
    result = py(root, code)
    assert result.returncode == 0, result.stderr
    mapped = result.stdout.splitlines()[0]
    if os.geteuid() == 0 and result.method == "userns+chroot":
        base = sandbox.subordinate_base()
        assert mapped == str(["0", str(base), "65536"])
    elif os.geteuid() != 0:
        assert mapped == str(["1000", str(os.geteuid()), "1"])
    caps = [ln for ln in result.stdout.splitlines() if ln.startswith(("CapEff", "NoNewPrivs"))]
    assert caps == ["CapEff:\t0000000000000000", "NoNewPrivs:\t1"]
    # On the host, the command's processes belong to the subordinate uid, not to root.
    box = sandbox.start_in_root(
        root, ["python3", "-c", "import time; time.sleep(30)"], env=ENV, user=USER, cwd="/app"
    )
    try:
        init = box.init_pid()
        assert init is not None
        deadline = 50
        while deadline and not (Path(f"/proc/{init}/task/{init}/children").read_text().strip()):
            deadline -= 1
            __import__("time").sleep(0.1)
        child = Path(f"/proc/{init}/task/{init}/children").read_text().split()[0]
        host_uid = int(Path(f"/proc/{child}/status").read_text().split("Uid:")[1].split()[0])
        if os.geteuid() == 0:
            assert (
                host_uid >= 1_000_000
                and host_uid == sandbox.subordinate_base() + 1000
                or (box.method == "chroot")
            )
        else:
            assert host_uid == os.geteuid()
    finally:
        box.kill()


def test_proc_sys_and_kernel_files_are_read_only_or_masked(root: Path) -> None:
    code = """
import errno
for path in ("/proc/sys/kernel/core_pattern", "/proc/sys/vm/drop_caches", "/proc/sysrq-trigger"):
    try:
        open(path, "w").write("x")
        print("WROTE", path)
    except OSError as e:
        print(path, errno.errorcode[e.errno])
import os
for path in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"):
    if os.path.exists(path):
        print("masked", path, len(open(path, "rb").read(16)))
"""
    result = py(root, code)
    assert result.returncode == 0, result.stderr
    assert "WROTE" not in result.stdout
    for path in ("core_pattern", "drop_caches", "sysrq-trigger"):
        assert any(
            path in ln and ln.split()[-1] in ("EROFS", "EACCES", "ENOENT")
            for ln in result.stdout.splitlines()
        )
    masked = [ln.split() for ln in result.stdout.splitlines() if ln.startswith("masked")]
    assert masked and all(size == "0" for _, _, size in masked), result.stdout


def test_tmp_shm_and_writable_paths_are_bounded_tmpfs(root: Path) -> None:
    (root / "var/lib/state").mkdir(parents=True, exist_ok=True)
    code = """
import os
for p in ("/tmp", "/dev/shm", "/var/lib/state"):
    st = os.statvfs(p)
    print(p, st.f_blocks * st.f_frsize)
open("/var/lib/state/x", "w").write("ok")
print(os.stat("/var/lib/state").st_uid)
"""
    limits = sandbox.Limits(tmp_bytes=64 << 20)
    result = py(root, code, writable=["/var/lib/state"], limits=limits)
    assert result.returncode == 0, result.stderr
    sizes = dict(ln.split() for ln in result.stdout.splitlines()[:3])
    assert all(int(v) == 64 << 20 for v in sizes.values()), sizes
    assert result.stdout.splitlines()[-1] == "1000"
    assert not (root / "var/lib/state/x").exists()


def test_process_count_is_bounded(root: Path) -> None:
    code = """
import os
kids = 0
try:
    for _ in range(200):
        if os.fork() == 0:
            import time; time.sleep(5); os._exit(0)
        kids += 1
except OSError as e:
    print("stopped at", kids, e.strerror)
"""
    result = py(root, code, limits=sandbox.Limits(max_procs=20))
    assert "stopped at" in result.stdout, result.stdout + result.stderr
    assert int(result.stdout.split()[2]) < 25


def test_loopback_is_up_and_nothing_else_exists(root: Path) -> None:
    code = """
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
c = socket.create_connection(srv.getsockname(), timeout=2); print("loopback ok")
try:
    socket.create_connection(("192.0.2.1", 80), timeout=1)
    print("REACHED")
except OSError as e:
    print("outside", e.strerror)
"""
    result = py(root, code)
    assert "loopback ok" in result.stdout, result.stderr
    assert "REACHED" not in result.stdout and "outside" in result.stdout


def test_localhost_and_the_host_name_resolve_as_in_a_runtime(root: Path) -> None:
    """A runtime writes /etc/hosts and sets a host name; Gradio asks for localhost by name
    at launch. The sandbox binds its own file over the image's: the disk keeps its bytes."""
    hosts = root / "etc" / "hosts"
    hosts.parent.mkdir(exist_ok=True)
    hosts.write_text("")
    try:
        code = (
            "import socket; print(socket.gethostname(), socket.gethostbyname('localhost'),"
            " socket.gethostbyname(socket.gethostname()))"
        )
        result = py(root, code)
        assert result.stdout.split() == ["torchslim", "127.0.0.1", "127.0.1.1"], result.stderr
        assert hosts.read_text() == ""
    finally:
        hosts.unlink()


@pytest.mark.parametrize(("handler", "stops"), [(False, False), (True, True)])
def test_as_pid1_sigterm_needs_a_handler_as_in_a_container(
    root: Path, handler: bool, stops: bool
) -> None:
    """``pid1``: the command is PID 1 of its namespace, as under a runtime without --init:
    the kernel delivers SIGTERM to it only when it has a handler."""
    from torchslim.sandbox.run import start_in_root

    code = "import os, signal, sys, time\n"
    if handler:
        code += "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    code += "print(os.getpid(), flush=True)\ntime.sleep(30)\n"
    box = start_in_root(root, ["python3", "-c", code], env=ENV, user=USER, cwd="/app", pid1=True)
    try:
        assert box.init_pid(20) is not None
        time.sleep(1.5)  # python3 starts and sets its handler
        box.terminate()
        assert box.wait(3) is stops
    finally:
        box.kill()
        result = box.result()
    assert result.stdout.split()[:1] == ["1"], result.stderr


def test_signal_status_from_the_init_becomes_negative() -> None:
    mark = "torchslim-sandbox: killed by signal 11\n"
    assert split_status(139, "Fatal Python error\n" + mark) == (-11, "Fatal Python error\n")
    assert split_status(139, "exit(139) of its own\n") == (139, "exit(139) of its own\n")


def test_emulation_native_binfmt_or_why_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert emulation_for(host_arch()) is None
    assert emulation_for(f"linux/{host_arch()}") is None
    foreign = "arm64" if host_arch() != "arm64" else "amd64"
    qemu = sandbox.QEMU_NAMES[foreign]
    (tmp_path / f"qemu-{qemu}").write_text(
        f"enabled\ninterpreter /usr/bin/qemu-{qemu}-static\nflags: OCF\n"
    )
    assert emulation_for(foreign, binfmt=tmp_path) == Emulation(qemu, None)
    monkeypatch.setattr(emulation.shutil, "which", lambda name: None)
    (tmp_path / f"qemu-{qemu}").write_text("enabled\nflags: \n")  # no F: the chroot lacks qemu
    why = emulation_for(f"linux/{foreign}", binfmt=tmp_path)
    assert isinstance(why, str) and f"qemu-{qemu}-static" in why and f"linux/{foreign}" in why
    assert (
        emulation_for("mips64", binfmt=tmp_path)
        == "no qemu-user emulator is known for architecture mips64"
    )


def test_a_root_that_cannot_be_mounted_is_the_sandboxs_error(tmp_path: Path) -> None:
    if sandbox_available() is not None:
        pytest.skip(f"no sandbox on this host: {sandbox_available()}")
    with pytest.raises(SandboxError, match=r"cannot run in .*missing: open .*No such file"):
        run_in_root(tmp_path / "missing", ["true"], env={}, user=(1000, 1000))


def test_image_user_like_runc(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/x\napp:x:1000:1001::/home/app:/x\n")
    (tmp_path / "etc/group").write_text("root:x:0:\nstaff:x:50:\n")
    assert image_user(tmp_path, "") == (0, 0)
    assert image_user(tmp_path, "app") == (1000, 1001)
    assert image_user(tmp_path, "1000") == (1000, 1001)
    assert image_user(tmp_path, "1000:1000") == (1000, 1000)
    assert image_user(tmp_path, "app:staff") == (1000, 50)
    assert image_user(tmp_path, "4242") == (4242, 4242)  # numeric and unknown: runc allows it
    with pytest.raises(SandboxError, match="image user 'bob' is not in the image's /etc/passwd"):
        image_user(tmp_path, "bob")
    assert sandbox.home_of(tmp_path, 1000) == "/home/app"
    assert sandbox.home_of(tmp_path, 4242) == "/"


def test_binds_hand_in_host_folders_read_only_or_writable(root: Path, tmp_path: Path) -> None:
    (root / "src").mkdir(exist_ok=True)
    (root / "out").mkdir(exist_ok=True)
    source, out = tmp_path / "source", tmp_path / "out"
    source.mkdir()
    out.mkdir()
    (source / "in.txt").write_text("hello")
    code = """
data = open("/src/in.txt").read()
open("/out/result.txt", "w").write(data.upper())
try:
    open("/src/x", "w")
    print("WROTE")
except OSError as e:
    print("source", e.strerror)
"""
    binds = [sandbox.Bind(source, "/src"), sandbox.Bind(out, "/out", writable=True)]
    result = py(root, code, binds=binds)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "source Read-only file system"
    assert (out / "result.txt").read_text() == "HELLO"
    assert not (source / "x").exists()


def test_memory_is_bounded(root: Path) -> None:
    code = "data = bytearray(512 << 20); print('allocated')"
    bounded = py(root, code, limits=sandbox.Limits(max_memory=256 << 20))
    assert bounded.returncode == 1 and "MemoryError" in bounded.stderr, bounded.stderr
    assert sandbox.Limits().max_memory > 0  # bounded by default too
    assert py(root, code).stdout == "allocated\n"
