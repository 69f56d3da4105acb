"""Engine detection with fake engines on a private PATH, and for real on this host."""

from __future__ import annotations

import os
import shutil
import stat
from functools import partial
from pathlib import Path

import pytest

from torchslim.runtime.engine import EngineError, detect_engine


def make_bin(tmp: Path, **scripts: str) -> partial[str | None]:
    for name, body in scripts.items():
        p = tmp / name
        p.write_text("#!/bin/sh\n" + body)
        p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return partial(shutil.which, path=str(tmp))


DAEMON_DOWN = (
    'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. '
    'Is the docker daemon running?" >&2; exit 1\n'
)


def test_podman_first(tmp_path: Path) -> None:
    which = make_bin(tmp_path, podman="exit 0\n", docker="exit 0\n")
    e = detect_engine(environ={}, which=which)
    assert e.name == "podman" and e.path == str(tmp_path / "podman")


def test_unusable_podman_falls_back_to_docker(tmp_path: Path) -> None:
    which = make_bin(tmp_path, podman="echo 'storage is broken' >&2; exit 125\n", docker="exit 0\n")
    assert detect_engine(environ={}, which=which).name == "docker"


def test_docker_without_daemon_is_refused(tmp_path: Path) -> None:
    which = make_bin(tmp_path, docker=DAEMON_DOWN)
    with pytest.raises(EngineError) as exc:
        detect_engine(environ={}, which=which)
    msg = str(exc.value)
    assert "podman is not on PATH" in msg and "its daemon does not answer" in msg
    assert "\n" not in msg and exc.value.exit_code == 6


def test_none_installed(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="podman is not on PATH; docker is not on PATH"):
        detect_engine(environ={}, which=make_bin(tmp_path))


def test_explicit_choice_and_env(tmp_path: Path) -> None:
    which = make_bin(tmp_path, podman="exit 0\n", docker="exit 0\n")
    assert detect_engine("docker", environ={}, which=which).name == "docker"
    assert detect_engine(environ={"TORCHSLIM_ENGINE": "docker"}, which=which).name == "docker"
    with pytest.raises(EngineError, match="unknown engine 'containerd'"):
        detect_engine("containerd", environ={}, which=which)


def test_explicit_docker_does_not_fall_back(tmp_path: Path) -> None:
    which = make_bin(tmp_path, podman="exit 0\n", docker=DAEMON_DOWN)
    with pytest.raises(EngineError, match="docker is installed but its daemon"):
        detect_engine("docker", environ={}, which=which)


@pytest.mark.e2e
def test_real_podman_detected() -> None:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    conf = Path(__file__).resolve().parents[2] / "podman" / "containers.conf"
    e = detect_engine("podman", environ={**os.environ, "CONTAINERS_CONF": str(conf)})
    assert e.name == "podman"
