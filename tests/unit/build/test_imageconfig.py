"""The image config is a pure function of the plan and a few facts of the base."""

from __future__ import annotations

from pathlib import Path

from torchslim.build.imageconfig import ImageFacts, image_config
from torchslim.build.plan import BuildOptions, Plan, plan_build
from torchslim.config import parse_config
from torchslim.debian import RootfsInfo
from torchslim.deps.pipconf import IndexSettings
from torchslim.torchmeta import LABEL_CUDA, LABEL_MIN_DRIVER, LABEL_PROFILE, LABEL_TORCH

ROOTFS = RootfsInfo("/usr/bin/python3.11", "3.11", "/usr/lib/python3/dist-packages", "2.36", [])
FACTS = ImageFacts("2024-01-01T00:00:00Z", "debian:bookworm", None, "abc123")


def plan(tmp_path: Path, opts: BuildOptions = BuildOptions(), **keys: object) -> Plan:  # noqa: B008
    data: dict[str, object] = {"name": "svc", "version": "1", "torch": "2.13.0", "cmd": ["x"]}
    data.update(keys)
    cfg = parse_config(data, file=tmp_path / "torchslim.toml", root=tmp_path)
    return plan_build(cfg, opts, IndexSettings(), environ={}).plans[0]


def test_service_config(tmp_path: Path) -> None:
    c = image_config(plan(tmp_path, port=8000, health="/health", env={"A": "1"}), ROOTFS, FACTS)
    assert c["user"] == "1000:1000" and c["cmd"] == ["x"] and c["working_dir"] == "/app"
    assert c["exposed_ports"] == ["8000/tcp"]
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in c["env"] and "A=1" in c["env"]
    assert not any(e.startswith("NVIDIA_") for e in c["env"])
    assert c["healthcheck"]["Test"][:2] == ["CMD", "/usr/bin/python3.11"]
    assert "http://127.0.0.1:8000/health" in c["healthcheck"]["Test"][3]
    labels = c["labels"]
    assert labels[LABEL_TORCH] == "2.13.0+cpu" and labels[LABEL_PROFILE] == "inference"
    assert labels["org.opencontainers.image.revision"] == "abc123"
    assert LABEL_CUDA not in labels


def test_cuda_variant_asks_for_the_driver(tmp_path: Path) -> None:
    c = image_config(plan(tmp_path, torch="2.14.1", variant="cu130"), ROOTFS, FACTS)
    assert "NVIDIA_VISIBLE_DEVICES=all" in c["env"]
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in c["env"]
    assert c["labels"][LABEL_CUDA] == "13.0" and c["labels"][LABEL_MIN_DRIVER]


def test_shared_base_runs_python_and_exposes_nothing(tmp_path: Path) -> None:
    p = plan(tmp_path, BuildOptions(target="base", no_slim=True), port=8000, health="/h")
    c = image_config(p, ROOTFS, FACTS)
    assert c["cmd"] == ["/usr/bin/python3.11"]
    assert c["exposed_ports"] is None and c["healthcheck"] is None
    assert c["labels"][LABEL_PROFILE] == "none"


def test_external_base_keeps_its_path(tmp_path: Path) -> None:
    facts = ImageFacts("2024-01-01T00:00:00Z", "python:3.11-slim", "sha256:" + "a" * 64, None)
    c = image_config(plan(tmp_path, base="python:3.11-slim"), ROOTFS, facts)
    assert not any(e.startswith("PATH=") for e in c["env"])
    assert c["labels"]["org.opencontainers.image.base.digest"] == "sha256:" + "a" * 64


def test_env_that_overrides_what_runs_is_warned(tmp_path: Path) -> None:
    from torchslim.build.imageconfig import risky_env

    env = {"PATH": "/evil", "LD_PRELOAD": "/x.so", "PYTHONPATH": "/p", "LD_LIBRARY_PATH": "/l"}
    warnings = risky_env(plan(tmp_path, env={**env, "APP_MODE": "prod"}))
    assert len(warnings) == 4
    for key in env:
        assert any(f"sets {key} " in w for w in warnings)
    assert all("key `env`" in w and str(tmp_path) in w for w in warnings)
    assert risky_env(plan(tmp_path, env={"APP_MODE": "prod"})) == []


def test_pythonpath_inside_the_app_files_is_not_warned(tmp_path: Path) -> None:
    from torchslim.build.imageconfig import risky_env

    assert risky_env(plan(tmp_path, env={"PYTHONPATH": "/app/src:/app"})) == []
    for value, writable in (
        ("/app/src:/tmp", []),
        ("/app/../etc", []),
        ("/app/data", ["/app/data"]),
    ):
        warned = risky_env(plan(tmp_path, env={"PYTHONPATH": value}, writable=writable))
        assert len(warned) == 1 and "sets PYTHONPATH" in warned[0], value


def test_licenses_and_description_labels_unless_the_user_sets_them(tmp_path: Path) -> None:
    from dataclasses import replace

    facts = replace(FACTS, licenses="Apache-2.0", description="A service.")
    labels = image_config(plan(tmp_path), ROOTFS, facts)["labels"]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.description"] == "A service."
    mine = {"org.opencontainers.image.licenses": "LicenseRef-Proprietary"}
    labels = image_config(plan(tmp_path, labels=mine), ROOTFS, facts)["labels"]
    assert labels["org.opencontainers.image.licenses"] == "LicenseRef-Proprietary"
    assert (
        "org.opencontainers.image.licenses"
        not in image_config(plan(tmp_path), ROOTFS, FACTS)["labels"]
    )
