"""Fixtures shared by every test package.

Podman: tests/podman/containers.conf makes podman work inside this sandbox
(runc, cgroupfs, file events, ulimits a container may set). ``run_podman``
and the ``podman`` / ``podman_env`` fixtures point CONTAINERS_CONF at it.
Every image a test loads goes into a storage of the session's own (under pytest's
temporary folder, removed with it): a run leaves no gigabytes behind and never touches
the images of the user running it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.images import analyze_layers

PODMAN_CONF = Path(__file__).parent / "podman" / "containers.conf"

PodmanRunner = Callable[..., "subprocess.CompletedProcess[str]"]


def podman_environ() -> dict[str, str]:
    """The current environment with CONTAINERS_CONF set to the test config."""
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(PODMAN_CONF)
    return env


def run_podman(
    *args: str,
    check: bool = True,
    timeout: float = 300,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS`` with the test config; on failure the error shows podman's stderr."""
    proc = subprocess.run(
        ["podman", *args],
        env=podman_environ(),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} exited {proc.returncode}\n"
            f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}"
        )
    return proc


@pytest.fixture(scope="session", autouse=True)
def podman_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A podman storage for this session only (CONTAINERS_STORAGE_CONF), emptied at the end."""
    root = tmp_path_factory.mktemp("podman-storage")
    conf = root / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root / "graph"}"\n'
        f'runroot = "{root / "run"}"\n'
    )
    old = os.environ.get("CONTAINERS_STORAGE_CONF")
    os.environ["CONTAINERS_STORAGE_CONF"] = str(conf)
    try:
        yield root
    finally:
        if shutil.which("podman") is not None and (root / "graph").exists():
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                run_podman("rm", "-a", "-f", check=False, timeout=120)
                run_podman("rmi", "-a", "-f", check=False, timeout=300)
        overlay = root / "graph" / "overlay"
        if os.path.ismount(overlay):  # containers/storage binds it onto itself, as root
            subprocess.run(["umount", str(overlay)], check=False, capture_output=True)
        if old is None:
            os.environ.pop("CONTAINERS_STORAGE_CONF", None)
        else:
            os.environ["CONTAINERS_STORAGE_CONF"] = old


@functools.cache
def _podman_problem() -> str | None:
    """Why podman cannot be used here, or None when it can."""
    if shutil.which("podman") is None:
        return "podman is not installed (apt-get install podman)"
    try:
        proc = run_podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"podman info failed: {exc}"
    if proc.returncode != 0:
        return f"podman info failed: {proc.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="session")
def ts_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One torchslim cache for the run (TORCHSLIM_TEST_CACHE reuses one across runs); with
    `pytest -n`, the workers share it, as CI runners of one machine would."""
    shared = tmp_path_factory.getbasetemp().parent / "ts-cache"
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared.mkdir(exist_ok=True)
    else:
        shared = tmp_path_factory.mktemp("cache")
    path = Path(os.environ.get("TORCHSLIM_TEST_CACHE") or shared)
    old = os.environ.get("TORCHSLIM_CACHE")
    os.environ["TORCHSLIM_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("TORCHSLIM_CACHE", None)
    else:
        os.environ["TORCHSLIM_CACHE"] = old


@pytest.fixture(scope="session")
def podman_env() -> Iterator[dict[str, str]]:
    """Env dict for subprocesses that run podman (skips when podman is unusable).

    Also exports CONTAINERS_CONF into this process for the session, so code
    under test that shells out to podman uses the same config.
    """
    problem = _podman_problem()
    if problem is not None:
        pytest.skip(problem)
    old = os.environ.get("CONTAINERS_CONF")
    os.environ["CONTAINERS_CONF"] = str(PODMAN_CONF)
    try:
        yield podman_environ()
    finally:
        if old is None:
            os.environ.pop("CONTAINERS_CONF", None)
        else:
            os.environ["CONTAINERS_CONF"] = old


@pytest.fixture(scope="session")
def podman(podman_env: dict[str, str]) -> PodmanRunner:
    """``run_podman``, available once podman is known to work here."""
    return run_podman


__all__ = ["analyze_layers"]
