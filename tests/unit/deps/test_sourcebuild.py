"""No project code runs on the host: local paths and allowed sdists are built in the
sandbox, other sdists are refused in one line. Offline: uv reads a local find-links folder
holding a setuptools wheel (from the host's own wheel folders); skipped without one."""

from __future__ import annotations

import io
import os
import socket
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from torchslim.config import ProjectConfig
from torchslim.deps import lock as deplock
from torchslim.deps.localpaths import _rewrite
from torchslim.deps.lock import Target, resolve
from torchslim.deps.pipconf import IndexSettings
from torchslim.deps.sourcebuild import (
    DEFAULT_BACKEND,
    BuildRefused,
    build_system,
    unpack_sdist,
)
from torchslim.errors import ResolveError
from torchslim.sandbox.run import sandbox_available

SECRET = "hunter2-registry-secret"
WHEEL_DIRS = (Path("/opt/pypi/files"), Path("/usr/share/python-wheels"))

EVIL_SETUP = """\
import os, socket
from setuptools import setup
log = []
try:
    open("/tmp/../{outside}", "w").write("pwned")
    log.append("wrote outside")
except OSError as exc:
    log.append("no write: %s" % exc.strerror)
log.append("env: %s" % os.environ.get("REGISTRY_PASSWORD"))
for path in ("{secret_file}", "/root/.bash_history", "/etc/shadow"):
    try:
        log.append("read: %s" % open(path).read())
    except OSError as exc:
        log.append("no read: %s" % exc.strerror)
try:
    log.append("root: %s" % os.listdir("/root"))
except OSError as exc:
    log.append("root: %s" % exc.strerror)
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"hello")
    log.append("connected")
except OSError as exc:
    log.append("no connection: %s" % exc.strerror)
os.makedirs("evil", exist_ok=True)
open("evil/__init__.py", "w").write("LOG = %r\\n" % log)
print("\\n".join(log))
setup(name="evil", version="{version}", packages=["evil"])
"""


def _setuptools_wheel() -> Path | None:
    """A setuptools wheel new enough to build without ``wheel`` (70.1+), from this host."""
    found = []
    for d in WHEEL_DIRS:
        for w in d.glob("setuptools-*.whl") if d.is_dir() else []:
            version = parse_wheel_filename(w.name)[1]
            if version.release >= (70, 1):
                found.append((version, w))
    return max(found)[1] if found else None


@pytest.fixture
def links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A find-links folder with setuptools; the cache in tmp; the builder's secret set."""
    reason = sandbox_available()
    if reason is not None:
        pytest.skip(f"no sandbox on this host: {reason}")
    wheel = _setuptools_wheel()
    if wheel is None:
        pytest.skip("no setuptools>=70.1 wheel on this host")
    folder = tmp_path / "links"
    folder.mkdir()
    (folder / wheel.name).write_bytes(wheel.read_bytes())
    monkeypatch.setenv("TORCHSLIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REGISTRY_PASSWORD", SECRET)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    yield folder


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port on the host's loopback that the build tries to reach."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    yield server
    server.close()


def _evil_setup(tmp_path: Path, port: int, version: str = "0.1") -> tuple[str, Path]:
    outside = f"torchslim-evil-{os.getpid()}-{version}"
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET)
    text = EVIL_SETUP.format(outside=outside, secret_file=secret_file, port=port, version=version)
    return text, Path("/") / outside


def _settings(links: Path) -> IndexSettings:
    return IndexSettings(no_index=True, find_links=(str(links),))


def _wheel_text(url: str) -> str:
    path = Path(url.removeprefix("file://"))
    with zipfile.ZipFile(path) as zf:
        return "\n".join(zf.read(n).decode("utf-8", "replace") for n in zf.namelist())


def _assert_held(log: str, outside: Path, listener: socket.socket) -> None:
    assert SECRET not in log
    assert "no write: Read-only file system" in log
    assert "env: None" in log
    assert "connected" not in log.replace("no connection", "")
    assert not outside.exists()
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_a_hostile_local_package_is_built_in_the_sandbox(
    tmp_path: Path, links: Path, listener: socket.socket
) -> None:
    setup, outside = _evil_setup(tmp_path, listener.getsockname()[1])
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil/setup.py").write_text(setup)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib/pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=70.1"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "lib"\nversion = "2.0"\n'
    )
    (tmp_path / "lib/lib.py").write_text("X = 1\n")
    req = tmp_path / "requirements.txt"
    req.write_text("# comment\n./evil\n-e ./lib\n")
    lock = resolve([req], Target(), _settings(links), out=tmp_path / "pylock.toml")
    evil, lib = lock.get("evil"), lock.get("lib")
    assert evil is not None and evil.filename == "evil-0.1-py3-none-any.whl"
    assert lib is not None and lib.filename == "lib-2.0-py3-none-any.whl"
    assert evil.url.startswith((tmp_path / "cache/built-wheels").as_uri())
    assert lock.parents["evil"] == ("-r requirements.txt",)
    _assert_held(_wheel_text(evil.url), outside, listener)
    text = (tmp_path / "pylock.toml").read_text()
    assert SECRET not in text and "built-locally = true" in text
    assert req.read_text() == "# comment\n./evil\n-e ./lib\n"  # the project's file as it was


def test_a_failing_local_build_is_one_line(tmp_path: Path, links: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken/setup.py").write_text(
        "import os\nraise SystemExit('boom ' + str(os.environ.get('REGISTRY_PASSWORD')))\n"
    )
    req = tmp_path / "requirements.txt"
    req.write_text("./broken\n")
    with pytest.raises(ResolveError) as info:
        resolve([req], Target(), _settings(links), out=tmp_path / "pylock.toml")
    message = str(info.value)
    assert "\n" not in message and SECRET not in message
    assert message.startswith("./broken: building it in the sandbox failed (exited 1")
    assert "boom None" in message
    assert not (tmp_path / "pylock.toml").exists()


def _sdist(folder: Path, name: str, version: str, setup: str) -> Path:
    path = folder / f"{name}-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for member, text in (
            ("setup.py", setup),
            ("PKG-INFO", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-{version}/{member}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_a_hostile_sdist_is_refused_unless_allowed_then_built_in_the_sandbox(
    tmp_path: Path, links: Path, listener: socket.socket
) -> None:
    setup, outside = _evil_setup(tmp_path, listener.getsockname()[1], "1.0")
    _sdist(links, "evil", "1.0", setup)
    req = tmp_path / "requirements.txt"
    req.write_text("evil\n")
    settings = IndexSettings(no_index=True, find_links=(links.as_uri(),))
    with pytest.raises(ResolveError) as info:
        resolve([req], Target(), settings, out=tmp_path / "a.toml")
    assert str(info.value) == (
        'evil 1.0 is published only as an sdist, whose build runs its code: add "evil" to '
        "build-from-source in the torchslim config to build it in the sandbox, or pin a "
        "version that ships a wheel for linux/amd64 cp311 glibc 2.36"
    )
    assert not outside.exists() and not (tmp_path / "cache/built-wheels").exists()
    lock = resolve([req], Target(), settings, out=tmp_path / "b.toml", build_from_source=["Evil"])
    evil = lock.get("evil")
    assert evil is not None and evil.filename == "evil-1.0-py3-none-any.whl"
    _assert_held(_wheel_text(evil.url), outside, listener)
    assert "built-locally = true" in (tmp_path / "b.toml").read_text()


def test_an_sdist_with_members_outside_its_folder_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bad-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "out").mkdir()
    with pytest.raises(BuildRefused, match="member '../escaped.txt' leaves the sdist"):
        unpack_sdist(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_build_system_is_read_as_text_with_pep_518_defaults(tmp_path: Path) -> None:
    assert build_system(tmp_path) == (["setuptools>=40.8.0"], DEFAULT_BACKEND, [])
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["flit_core>=3"]\nbuild-backend = "flit_core.buildapi"\n'
        'backend-path = ["_build"]\n'
    )
    assert build_system(tmp_path) == (["flit_core>=3"], "flit_core.buildapi", ["_build"])


def test_uv_naming_a_package_it_may_not_build_is_recognised() -> None:
    pinned = (
        "error: No solution found when resolving dependencies\n  cause: Because evil==1.0 "
        "has no usable wheels and you require evil==1.0, we can conclude that ...\n\nhint: "
        "Wheels are required for `evil` because building from source is disabled for all "
        "packages (i.e., with `--no-build`)\n"
    )
    assert deplock._sdist_needed(pinned) == ("evil", "1.0")
    every = pinned.replace("evil==1.0 has no usable wheels", "all versions of evil have no")
    assert deplock._sdist_needed(every) == ("evil", None)
    assert deplock._sdist_needed("error: No solution found\n  cause: x was not found") is None


def test_rewritten_lines_keep_their_numbers() -> None:
    text = "a\n./pkg \\\n  [x]\nb\n"
    assert _rewrite(text, {2: "pkg @ file:///w.whl"}) == "a\npkg @ file:///w.whl\n\nb\n"


def test_build_from_source_is_a_config_key() -> None:
    cfg = ProjectConfig.model_validate(
        {"name": "x", "torch": "2.13", "cmd": ["x"], "build-from-source": ["evil", "lib_a"]}
    )
    assert cfg.build_from_source == ["evil", "lib_a"]
    with pytest.raises(ValueError, match="build-from-source"):
        ProjectConfig.model_validate(
            {"name": "x", "torch": "2.13", "cmd": ["x"], "build-from-source": ["../x"]}
        )
