"""The notebook target's one extra layer: JupyterLab and ipykernel beside the service.

``build --target notebook`` is the service image plus this layer (every service layer the
same blob) and Jupyter's command, as the Jupyter Docker stacks run it: the image's non-root
user, port 8888, a notebook folder that is a volume, runtime, config and data dirs under
/tmp so a read-only root works. The kernel is ipykernel on the image's Python, so a notebook
imports the service's torch.

- The wheels are resolved wheels-only for the image's target with the lock machinery
  (uv), constrained to the service lock's versions: a package both need is the service's
  file, and only the others go into this layer (installed with ``installer`` into the
  image's site-packages, precompiled). The resolution is kept in the cache per service
  lock until ``--relock``.
- The command is a tiny launcher (``torchslim_notebook``, shipped in the layer) that
  refuses to start without a token (``JUPYTER_TOKEN`` or a mounted secret file); no token
  is ever in the image config.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchslim.atomic import write_atomic
from torchslim.build import notebook_launcher
from torchslim.build.layercache import LayerCache, input_key, staging
from torchslim.build.plan import Plan
from torchslim.build.python import scheme_for
from torchslim.build.report import LayerReport
from torchslim.cache import BlobStore, cache_root
from torchslim.config import Steps
from torchslim.debian import RootfsInfo
from torchslim.deps.install import install_wheel
from torchslim.deps.lock import resolve as uv_resolve
from torchslim.deps.pylock import Lock, LockedWheel, Target, read_lock
from torchslim.deps.wheels import fetch_wheels
from torchslim.errors import BuildError
from torchslim.oci.layer import Layer, Ownership
from torchslim.slim.pyc import precompile

LAYER = "jupyter"
PORT = notebook_launcher.PORT
NOTEBOOK_DIR = notebook_launcher.NOTEBOOK_DIR
TOKEN_FILE = notebook_launcher.TOKEN_FILE
LAUNCHER = "torchslim_notebook"
REQUIREMENTS = ("jupyterlab>=4.2,<5", "ipykernel>=6.29,<8")
HEALTH = "/api"  # the image's HEALTHCHECK: Jupyter's version, the one answer without a token
JUPYTER_DIR = "/tmp/jupyter"
LAUNCHER_SOURCE = Path(notebook_launcher.__file__).read_text(encoding="utf-8")


@dataclass(frozen=True)
class NotebookInputs:
    """The wheels of the layer: those of the notebook lock the service lock does not have."""

    wheels: tuple[LockedWheel, ...]
    paths: Mapping[str, Path]  # name → fetched wheel


def environment(data_prefix: str) -> dict[str, str]:
    """Where Jupyter writes (all under /tmp) and where JupyterLab's assets are."""
    return {
        "JUPYTER_RUNTIME_DIR": f"{JUPYTER_DIR}/runtime",
        "JUPYTER_CONFIG_DIR": f"{JUPYTER_DIR}/config",
        "JUPYTER_DATA_DIR": f"{JUPYTER_DIR}/data",
        "JUPYTERLAB_SETTINGS_DIR": f"{JUPYTER_DIR}/config/lab/user-settings",
        "JUPYTERLAB_WORKSPACES_DIR": f"{JUPYTER_DIR}/config/lab/workspaces",
        "JUPYTERLAB_DIR": f"{data_prefix}/share/jupyter/lab",
        "IPYTHONDIR": "/tmp/.ipython",
    }


def command(python_exe: str) -> list[str]:
    """The image's command: the launcher, which checks the token and execs JupyterLab."""
    return [python_exe, "-m", LAUNCHER]


def proof_token(image_digest: str) -> str:
    """The token the served proof gives (in the sandbox's env only; never in the image)."""
    return hashlib.sha256(f"torchslim notebook proof {image_digest}".encode()).hexdigest()[:32]


def constraints(service: Lock) -> list[str]:
    """The service's versions, as constraints: a package both need stays the service's."""
    return [f"{w.name}=={w.version}" for w in service.packages]


def _lock_path(key: str) -> Path:
    return cache_root() / "notebook" / f"{key.removeprefix('sha256:')}.toml"


def resolve_notebook(plan: Plan, service: Lock, target: Target, steps: Steps) -> Lock:
    """JupyterLab and ipykernel locked wheels-only for ``target``, kept in the cache per
    service lock (until ``--relock``)."""
    pins = constraints(service)
    key = input_key(LAYER, REQUIREMENTS, pins, repr(target), plan.settings.uv_args())
    path = _lock_path(key)
    if path.is_file() and not plan.relock:
        return read_lock(path, target)
    steps.step(f"Resolving JupyterLab and ipykernel for {plan.platform}")
    with staging("notebook-lock") as tmp:
        (tmp / "constraints.txt").write_text("".join(f"{p}\n" for p in pins), encoding="utf-8")
        reqs = tmp / "notebook-requirements.txt"
        reqs.write_text("-c constraints.txt\n" + "".join(f"{r}\n" for r in REQUIREMENTS))
        out = tmp / "pylock.notebook.toml"
        uv_resolve([reqs], target, plan.settings, out=out, extra_label="notebook target")
        write_atomic(path, out.read_text(encoding="utf-8"))
    return read_lock(path, target)


def layer_wheels(notebook: Lock, service: Lock) -> tuple[LockedWheel, ...]:
    """The notebook lock's wheels that are not the service's own files."""
    out = []
    for wheel in notebook.packages:
        have = service.get(wheel.name)
        if have is None:
            out.append(wheel)
        elif have.version != wheel.version:
            raise BuildError(
                f"--target notebook: Jupyter needs {wheel.name} {wheel.version} but the "
                f"service locks {have.version}; re-run with --relock"
            )
    return tuple(out)


def notebook_inputs(
    plan: Plan, service: Lock, target: Target, store: BlobStore, steps: Steps
) -> NotebookInputs:
    """Resolve and fetch the layer's wheels (each checked against its sha256)."""
    wheels = layer_wheels(resolve_notebook(plan, service, target, steps), service)
    steps.step(f"Fetching {len(wheels)} Jupyter wheels")
    paths = fetch_wheels(Lock(wheels), store, plan.settings, steps.progress)
    return NotebookInputs(wheels, paths)


def fill_notebook(root: Path, inputs: NotebookInputs, rootfs: RootfsInfo) -> dict[str, Any]:
    """The layer's files: the wheels, the launcher, the empty notebook folder."""
    scheme = scheme_for(rootfs)
    for wheel in inputs.wheels:
        install_wheel(inputs.paths[wheel.name], root, scheme, rootfs.python_exe)
    site = root / rootfs.site_packages.lstrip("/")
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{LAUNCHER}.py").write_text(LAUNCHER_SOURCE, encoding="utf-8")
    (root / NOTEBOOK_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for d in sorted(p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()):
        d.chmod(0o755)
    precompile(root, rootfs.site_packages, rootfs.python_version)
    return {"wheels": {w.name: w.version for w in inputs.wheels}}


def notebook_layer(
    plan: Plan,
    service: Lock,
    target: Target,
    rootfs: RootfsInfo,
    mtime: int,
    layers: LayerCache,
    store: BlobStore,
    steps: Steps,
    inputs: Callable[[Plan, Lock, Target, BlobStore, Steps], NotebookInputs] | None = None,
) -> tuple[Layer, LayerReport]:
    """The ``jupyter`` layer, cached by its wheels' digests, the launcher and the scheme
    (``inputs``: how the wheels are found, :func:`notebook_inputs` unless a caller says)."""
    got = (inputs or notebook_inputs)(plan, service, target, store, steps)
    key = layers.key(
        LAYER,
        mtime,
        sorted(w.digest for w in got.wheels),
        LAUNCHER_SOURCE,
        rootfs.site_packages,
        rootfs.python_exe,
        NOTEBOOK_DIR,
    )
    uid = layers.uid
    owner = Ownership(overrides={NOTEBOOK_DIR.strip("/"): (uid, uid)})
    layer, report, _ = layers.get_or_build(
        LAYER, key, lambda root: fill_notebook(root, got, rootfs), mtime=mtime, owner=owner
    )
    return layer, report


def notebook_config(plan: Plan, rootfs: RootfsInfo) -> dict[str, Any]:
    """What the notebook image's config says instead of the service's: the launcher, port
    8888, Jupyter's dirs, the notebook folder as a volume, a health check on ``/api``."""
    data_prefix = scheme_for(rootfs).data
    return {
        "cmd": command(rootfs.python_exe),
        "exposed_ports": [f"{PORT}/tcp"],
        "extra_env": environment(data_prefix),
        "volumes": [*plan.cfg.writable, NOTEBOOK_DIR],
        "health_url": f"http://127.0.0.1:{PORT}{HEALTH}",
    }


__all__ = [
    "HEALTH",
    "LAYER",
    "NOTEBOOK_DIR",
    "PORT",
    "NotebookInputs",
    "command",
    "layer_wheels",
    "notebook_inputs",
    "notebook_layer",
    "proof_token",
]
