"""The image config: user, env, command, ports, health check, labels. Pure.

A Debian base gets a fixed ``PATH``; a pulled base keeps its own (conda's
``/opt/conda/bin``, a venv's ``bin`` …). CUDA variants ask the NVIDIA container
toolkit for the driver (it injects it only into containers whose env asks).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from torchslim.build import notebook
from torchslim.build.plan import APP_ROOT, INIT_ENTRYPOINT, Plan
from torchslim.config import duration_ns
from torchslim.debian import RootfsInfo
from torchslim.torchmeta import torch_labels

DEBIAN_PATH = "/usr/local/bin:/usr/bin:/bin"
GPU_ENV = {"NVIDIA_VISIBLE_DEVICES": "all", "NVIDIA_DRIVER_CAPABILITIES": "compute,utility"}
# Where programs write by default, all under /tmp: the one place a read-only root
# filesystem (podman run --read-only, readOnlyRootFilesystem: true) leaves writable.
WRITABLE_ENV = {
    "HOME": "/tmp",
    "XDG_CACHE_HOME": "/tmp/.cache",
    "HF_HOME": "/tmp/.cache/huggingface",
    "TORCH_HOME": "/tmp/.cache/torch",
    "TRITON_CACHE_DIR": "/tmp/.cache/triton",
}


@dataclass(frozen=True)
class ImageFacts:
    """What the config needs that the plan cannot know: the base and the checkout."""

    created: str  # RFC 3339
    base_name: str  # "debian:bookworm", or the configured base
    base_digest: str | None  # an external base's manifest digest
    revision: str | None  # git HEAD of the project
    licenses: str | None = None  # SPDX expression (config `license`, or pyproject's)
    description: str | None = None


def environment(plan: Plan) -> dict[str, str]:
    path = {"PATH": DEBIAN_PATH} if plan.debian_base else {}
    gpu = GPU_ENV if plan.torch.cuda else {}
    return {
        **path,
        **gpu,
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
        **WRITABLE_ENV,
        **plan.cfg.env,
    }


# Variables that decide which programs and libraries the image runs; `env` may set them,
# but a build says so: a typo or a hostile config there changes what every process loads.
RISKY_ENV = {
    "PATH": "which executables run",
    "LD_PRELOAD": "a library loaded into every process",
    "LD_LIBRARY_PATH": "where every process finds its shared libraries",
    "PYTHONPATH": "where Python imports modules from, before site-packages",
}


def risky_env(plan: Plan) -> list[str]:
    """One warning per ``env`` key that overrides PATH, LD_PRELOAD, LD_LIBRARY_PATH or
    PYTHONPATH (what the image would run or load is then decided by that value). A
    PYTHONPATH inside the app's own read-only files (``/app/src``) is the project's layout,
    not a risk."""
    return [
        f"{plan.cfg.file}: key `env` sets {key} ({why}) to {value!r}; make sure that is meant"
        for key, why in RISKY_ENV.items()
        if (value := plan.cfg.env.get(key)) is not None
        and not (key == "PYTHONPATH" and _in_app_files(value, plan.cfg.writable))
    ]


def _in_app_files(search_path: str, writable: list[str]) -> bool:
    """Every entry of ``search_path`` is under /app and in no writable path."""
    entries = [posixpath.normpath(e) for e in search_path.split(":")]
    dirs = [posixpath.normpath(w) for w in writable]
    return all(
        (e == APP_ROOT or e.startswith(APP_ROOT + "/"))
        and not any(e == w or e.startswith(w + "/") for w in dirs)
        for e in entries
    )


def labels(plan: Plan, facts: ImageFacts) -> dict[str, str]:
    cfg = plan.cfg
    out = {
        "org.opencontainers.image.title": cfg.name,
        "org.opencontainers.image.version": cfg.version,
        "org.opencontainers.image.created": facts.created,
        "org.opencontainers.image.base.name": facts.base_name,
        **torch_labels(plan.torch, plan.profile if plan.slim else "none"),
        **cfg.labels,
    }
    if facts.base_digest:
        out["org.opencontainers.image.base.digest"] = facts.base_digest
    for key, value in (("licenses", facts.licenses), ("description", facts.description)):
        if value and f"org.opencontainers.image.{key}" not in cfg.labels:
            out[f"org.opencontainers.image.{key}"] = value
    if cfg.source:
        out["org.opencontainers.image.source"] = cfg.source
    if facts.revision:
        out["org.opencontainers.image.revision"] = facts.revision
    return out


def healthcheck(plan: Plan, python_exe: str, url: str | None = None) -> dict[str, Any] | None:
    """Exec form with the image's Python (no shell, no curl): GET the health path, 200 or fail
    (``url``: another one, the notebook target's)."""
    cfg = plan.cfg
    if url is None:
        if not (cfg.health and cfg.port and plan.service):
            return None
        url = f"http://127.0.0.1:{cfg.port}{cfg.health}"
    probe = (
        "import sys, urllib.request\n"
        f"sys.exit(0 if urllib.request.urlopen({url!r}, timeout=2).status == 200 else 1)"
    )
    hc = cfg.healthcheck
    return {
        "Test": ["CMD", python_exe, "-c", probe],
        "Interval": duration_ns(hc.interval),
        "Timeout": duration_ns(hc.timeout),
        "StartPeriod": duration_ns(hc.start_period),
        "Retries": hc.retries,
    }


def image_config(plan: Plan, rootfs: RootfsInfo, facts: ImageFacts) -> dict[str, Any]:
    """Keyword arguments for ``oci.mutate.with_config``."""
    cfg = plan.cfg
    config = {
        "user": f"{cfg.user}:{cfg.user}",
        "env": [f"{k}={v}" for k, v in environment(plan).items()],
        "cmd": list(cfg.cmd) if plan.service else [rootfs.python_exe],
        "entrypoint": INIT_ENTRYPOINT.get(cfg.init) if plan.service else None,
        "working_dir": APP_ROOT,
        "exposed_ports": [f"{cfg.port}/tcp"] if cfg.port and plan.service else None,
        "healthcheck": healthcheck(plan, rootfs.python_exe),
        "labels": labels(plan, facts),
        "created": facts.created,
        # A runtime mounts a volume on each (docker/podman: an anonymous one, filled from the
        # image, owned by the app user), so they stay writable under --read-only.
        "volumes": list(plan.cfg.writable) if plan.service else None,
    }
    if plan.notebook:
        config.update(_notebook(plan, rootfs))
    return config


def _notebook(plan: Plan, rootfs: RootfsInfo) -> dict[str, Any]:
    """The notebook target's command, port, env, volumes and health check (no token)."""
    nb = notebook.notebook_config(plan, rootfs)
    env = {**environment(plan), **nb["extra_env"]}
    return {
        "cmd": nb["cmd"],
        "exposed_ports": nb["exposed_ports"],
        "env": [f"{k}={v}" for k, v in env.items()],
        "volumes": nb["volumes"],
        "healthcheck": healthcheck(plan, rootfs.python_exe, nb["health_url"]),
    }
