"""The build pipeline: config → lock → base → wheels → slim → layers → image → output.

Each layer is cached by the digest of its inputs (see ``layercache``), so an
app-only change stages, compresses and writes one small layer.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from torchslim import debian
from torchslim.baseimage import cached_probe, is_registry_ref, open_base, user_files
from torchslim.cache import BlobStore, cache_root, sha256_file
from torchslim.config import ProjectConfig, duration_ns
from torchslim.deps.audit import DevFinding
from torchslim.deps.audit import audit as audit_lock
from torchslim.deps.install import Scheme, install_wheel
from torchslim.deps.lock import Lock, Target, read_lock
from torchslim.deps.lock import resolve as resolve_lock
from torchslim.deps.pipconf import IndexSettings, load_pip_settings
from torchslim.deps.requirements import parse_requirements
from torchslim.deps.wheels import fetch_wheels
from torchslim.errors import BuildError, ConfigError, OutputExistsError, ResolveError
from torchslim.layercache import LayerCache, input_key
from torchslim.layerplan import plan_python_layers
from torchslim.lockfile import LOCK_NAME, ProjectLock, read_project_lock, write_project_lock
from torchslim.oci.archive import write_docker_archive
from torchslim.oci.empty import empty_image
from torchslim.oci.image import Image
from torchslim.oci.layer import Layer, Ownership, write_layer_from_dir
from torchslim.oci.layout import write_oci_index_layout, write_oci_layout
from torchslim.oci.mutate import append_layers, with_config
from torchslim.oci.push import PushResult, push_image, push_index
from torchslim.oci.registry import parse_reference
from torchslim.probe import BaseProbe, require_python
from torchslim.slim.apply import slim_tree
from torchslim.slim.closure import check_closure, raise_for_missing
from torchslim.slim.ledger import Ledger
from torchslim.slim.pyc import precompile
from torchslim.slim.rules import PROFILES
from torchslim.torchmeta import TorchBuild, image_tag, torch_build

# Bump when what a layer contains for the same inputs changes.
BUILD_FORMAT = 2
APP_ROOT = "/app"
IGNORED_NAMES = {"__pycache__", ".git", ".hg", ".svn", ".venv", ".mypy_cache", ".pytest_cache"}

Compression = Literal["gzip", "zstd"]
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class OutputRef:
    transport: Literal["oci", "docker-archive", "docker"]
    target: str  # a path, or for docker:// a registry reference

    @property
    def path(self) -> Path:
        return Path(self.target)

    def __str__(self) -> str:
        sep = "://" if self.transport == "docker" else ":"
        return f"{self.transport}{sep}{self.target}"


def parse_output(text: str) -> OutputRef:
    """``oci:DIR``, ``docker-archive:FILE`` or ``docker://REF``, as skopeo names them."""
    if text.startswith("docker://"):
        ref = text.removeprefix("docker://")
        parse_reference(ref)  # one-line ConfigError on garbage
        return OutputRef("docker", ref)
    transport, sep, rest = text.partition(":")
    if not sep or not rest or transport not in ("oci", "docker-archive"):
        raise ConfigError(
            f"--output {text!r}: expected oci:DIR, docker-archive:FILE or docker://REF "
            "(e.g. --output docker-archive:hello.tar)"
        )
    return OutputRef(transport, rest)  # type: ignore[arg-type]


def push_reference(out: OutputRef, tag: str) -> str:
    """The push target: the reference as given, or with the build's tag when it has none."""
    parse_reference(out.target)  # one-line ConfigError on garbage
    # A reference without a tag means "the build's tag", not "latest".
    last = out.target.rsplit("/", 1)[-1]
    if ":" in last or "@" in last:
        return out.target
    return f"{out.target}:{tag}"


@dataclass
class BuildOptions:
    output: OutputRef | None = None
    force: bool = False
    profile: str | None = None
    keep: Sequence[str] = ()
    no_slim: bool = False
    compression: Compression = "gzip"
    tag: str | None = None
    allow_latest: bool = False
    platform: str | None = None
    mirror: str | None = None
    strict: bool = False
    relock: bool = False
    source_date_epoch: int | None = None
    # image: everything; base: OS + torch + deps (a shared base for services); os: OS only
    target: Literal["image", "base", "os"] = "image"
    tls_verify: bool = True


@dataclass
class LayerReport:
    name: str
    digest: str
    size: int
    uncompressed: int
    cached: bool
    seconds: float
    ledger: dict[str, Any] = field(default_factory=dict)


@dataclass
class BuildResult:
    name: str
    tag: str
    digest: str
    platform: str
    layers: list[LayerReport]
    ledger: Ledger
    dev_findings: list[DevFinding]
    output: OutputRef | None
    seconds: float
    profile: str
    slimmed: bool
    image: Image

    @property
    def compressed(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def uncompressed(self) -> int:
        # A pulled base's layers have no known uncompressed size (-1): not counted.
        return sum(layer.uncompressed for layer in self.layers if layer.uncompressed >= 0)

    @property
    def no_slim_uncompressed(self) -> int:
        """Size without slimming: the image plus every byte the ledger removed."""
        return self.uncompressed + self.ledger.total()


@dataclass(frozen=True)
class Platform:
    os: str
    arch: str  # OCI / Debian name: amd64 | arm64

    @property
    def wheel_arch(self) -> str:
        return {"amd64": "x86_64", "arm64": "aarch64"}[self.arch]

    def __str__(self) -> str:
        return f"{self.os}/{self.arch}"


def parse_platform(text: str) -> Platform:
    os_name, _, arch = text.partition("/")
    if os_name != "linux" or arch not in ("amd64", "arm64"):
        raise ConfigError(f"platform {text!r}: expected linux/amd64 or linux/arm64")
    return Platform(os_name, arch)


class Steps(Protocol):
    """Progress callbacks from the CLI."""

    def step(self, text: str) -> None: ...

    def progress(self, label: str, done: int, total: int) -> None: ...

    def warn(self, text: str) -> None: ...


class QuietSteps:
    """Steps that report nothing (library use, tests)."""

    def step(self, text: str) -> None:
        pass

    def progress(self, label: str, done: int, total: int) -> None:
        pass

    def warn(self, text: str) -> None:
        pass


@contextmanager
def _staging(name: str) -> Iterator[Path]:
    base = cache_root() / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _source_date_epoch(opts: BuildOptions) -> int | None:
    if opts.source_date_epoch is not None:
        return opts.source_date_epoch
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if not env:
        return None
    try:
        return int(env)
    except ValueError:
        raise ConfigError(
            f"SOURCE_DATE_EPOCH={env!r}: expected seconds since 1970 as an integer"
        ) from None


def _git_revision(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    rev = out.stdout.strip()
    return rev if out.returncode == 0 and rev else None


def _no_fill(root: Path) -> dict[str, Any]:
    raise AssertionError("layer expected in the cache")  # callers check the cache first


class _RoutingLedger(Ledger):
    """One ledger for the whole stage that also books each removal to its layer's ledger."""

    def __init__(self, per_layer: dict[str, Ledger], owner: dict[str, str], site: str) -> None:
        super().__init__()
        self.per_layer = per_layer
        self.owner = owner
        self.site = site

    def add(self, rule_id: str, path: str, nbytes: int) -> None:
        super().add(rule_id, path, nbytes)
        self.per_layer[_owner_of(path, self.owner, self.site, "deps")].add(rule_id, path, nbytes)


def _owner_of(path: str, owner: dict[str, str], site: str, default: str) -> str:
    """The layer of an image path: its installing wheel's, a .pyc's source's, its package's."""
    if path in owner:
        return owner[path]
    parent, _, name = path.rpartition("/")
    if parent.endswith("/__pycache__") and name.endswith(".pyc"):
        source = parent.removesuffix("/__pycache__") + "/" + name.split(".")[0] + ".py"
        if source in owner:
            return owner[source]
    if path.startswith(site + "/"):
        top = site + "/" + path[len(site) + 1 :].split("/")[0] + "/"
        for known, group in owner.items():
            if known.startswith(top):
                return group
    return default


def _split_tree(
    root: Path, split: Path, owner: dict[str, str], site: str, groups: list[str]
) -> None:
    """Move every file of ``root`` to ``split/<layer>/``, parents made with the same modes."""
    default = "deps" if "deps" in groups else groups[-1]
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        names = filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]
        for name in names:
            image_path = "/" + (rel_dir / name).as_posix()
            group = _owner_of(image_path, owner, site, default)
            dest = split / group / rel_dir / name
            if not dest.parent.is_dir():
                for part in reversed([*(rel_dir / "x").parents][:-1]):
                    d = split / group / part
                    if not d.is_dir():
                        d.mkdir(parents=True)
                        d.chmod((root / part).stat().st_mode & 0o7777)
            os.replace(Path(dirpath) / name, dest)


LIB_DIRS = ("usr/lib", "usr/lib64", "usr/local/lib", "lib", "lib64")


def _library_paths(root: Path) -> list[str]:
    """Image paths of shared libraries (``*.so*``) under the system library directories."""
    out: list[str] = []
    for top in LIB_DIRS:
        base = root / top
        if base.is_symlink() or not base.is_dir():
            continue
        for dirpath, _, filenames in os.walk(base):
            for name in filenames:
                if ".so" in name:
                    out.append("/" + (Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(out)


def _stub_libraries(root: Path, libs: Sequence[str]) -> None:
    """Empty files at the base's library paths: enough for the closure check to find names."""
    for lib in libs:
        path = root / lib.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


class Builder:
    def __init__(self, cfg: ProjectConfig, opts: BuildOptions, steps: Steps | None = None) -> None:
        self.cfg = cfg
        self.opts = opts
        self.steps: Steps = steps or QuietSteps()
        self.store = BlobStore()
        self.layers = LayerCache(self.store)
        self.platform = parse_platform(opts.platform or cfg.platform[0])
        self.torch: TorchBuild = torch_build(cfg.torch, cfg.variant, file=str(cfg.file))
        self.profile = opts.profile or cfg.profile
        if self.profile not in PROFILES:
            raise ConfigError(
                f"{cfg.file}: key `profile`: unknown profile {self.profile!r}; "
                f"choose one of {', '.join(PROFILES)}"
            )
        self.keep = list(cfg.keep) + list(opts.keep)
        self.settings: IndexSettings = load_pip_settings()
        self.debian_base = cfg.base == "debian"
        if not self.debian_base and cfg.apt:
            raise ConfigError(
                f'{cfg.file}: key `apt`: extra Debian packages need base = "debian"; '
                "install them in your own base image instead"
            )
        self.debian_spec = debian.DebianSpec(
            suite=debian.suite_for_python(cfg.python) if self.debian_base else "",
            arch=self.platform.arch,
            mirror=opts.mirror or cfg.mirror or debian.DEFAULT_MIRROR,
            python=cfg.python,
            extra=tuple(cfg.apt),
            uid=cfg.user,
        )
        self.base_image: Image | None = None
        self.probe: BaseProbe | None = None
        self.sde: int | None = None
        self.uploads: dict[str, int] = {}
        self.base_libs: list[str] = []  # shared-library paths of the base, for the closure check

    # ---- lock -------------------------------------------------------------

    def _requirement_inputs(self) -> list[Any]:
        reqs = [parse_requirements(self.cfg.path(r)) for r in self.cfg.requirements]
        return [reqs, self.torch.requirement, str(self.platform), self.cfg.python]

    @property
    def lock_path(self) -> Path:
        """``pylock.toml`` for the first platform, ``pylock.linux-arm64.toml`` for others."""
        if str(self.platform) == self.cfg.platform[0]:
            return self.cfg.root / LOCK_NAME
        return self.cfg.root / f"pylock.{self.platform.os}-{self.platform.arch}.toml"

    def resolve(self) -> tuple[ProjectLock, Lock]:
        """The lock for this platform, with a non-Debian base probed first (its glibc)."""
        self.prepare_base(None if self.opts.relock else read_project_lock(self.lock_path))
        return self.lock()

    def lock(self) -> tuple[ProjectLock, Lock]:
        path = self.lock_path
        existing = None if self.opts.relock else read_project_lock(path)
        target = self._target()
        inputs = input_key(*self._requirement_inputs(), dataclasses.asdict(target))
        if existing is not None and existing.inputs == inputs:
            return existing, read_lock(path, target)
        self.steps.step(f"Resolving requirements for {self.platform}")
        with _staging("lock") as tmp:
            out = tmp / LOCK_NAME
            lock = self._resolve(target, out)
            project_lock = ProjectLock(python_text=out.read_text(), inputs=inputs)
        if existing is not None:
            project_lock.debian_key, project_lock.debian = existing.debian_key, existing.debian
            project_lock.base = existing.base
        write_project_lock(path, project_lock)
        return project_lock, lock

    def _target(self) -> Target:
        # The base's glibc decides which manylinux wheels run on it.
        if self.probe is not None:
            glibc = self.probe.glibc
            if glibc is None:
                raise BuildError(
                    f"base {self.cfg.base!r} has no glibc (musl or none): manylinux wheels "
                    "cannot run on it; use a glibc base such as debian or python:3.X-slim"
                )
        else:
            glibc = {"bookworm": "2.36", "trixie": "2.41"}.get(self.debian_spec.suite, "2.36")
        return Target(python=self.cfg.python, arch=self.platform.wheel_arch, glibc=glibc)

    def prepare_base(self, project_lock: ProjectLock | None) -> None:
        """Open and probe a non-Debian base; a registry base is pinned by digest in the lock."""
        if self.debian_base:
            return
        ref = self.cfg.base
        pinned = project_lock.base if project_lock is not None else {}
        if is_registry_ref(ref) and pinned.get("ref") == ref and pinned.get("digest"):
            ref = f"{ref.removeprefix('docker://').split('@')[0]}@{pinned['digest']}"
        self.steps.step(f"Opening base {ref}")
        image = open_base(
            ref,
            os_name=self.platform.os,
            arch=self.platform.arch,
            tls_verify=self.opts.tls_verify,
        )
        probe = cached_probe(image)
        require_python(probe, f"{self.cfg.file}: key `base` = {self.cfg.base!r}", self.cfg.python)
        self.base_image, self.probe = image, probe
        if probe.cuda_libs and self.cfg.variant != "cpu":
            self.steps.warn(
                f"base {self.cfg.base} already carries {probe.cuda_bytes / 1e6:.0f} MB of CUDA "
                "libraries; torch's nvidia-* wheels bring them again: use a base without CUDA "
                "(nvidia/cuda:*-base, python:3.X-slim or debian)"
            )

    def pin_base(self, project_lock: ProjectLock) -> None:
        if self.base_image is None or not is_registry_ref(self.cfg.base):
            return
        pin = {"ref": self.cfg.base, "digest": self.base_image.digest()}
        if project_lock.base != pin and project_lock.python_text:
            project_lock.base = pin
            write_project_lock(self.lock_path, project_lock)

    def external_base(self) -> tuple[list[LayerReport], debian.RootfsInfo]:
        assert self.base_image is not None and self.probe is not None
        probe = self.probe
        size = sum(layer.descriptor.size for layer in self.base_image.layers())
        self.base_libs = list(probe.libs)
        report = LayerReport(
            f"base ({len(self.base_image.layers())} layers)",
            self.base_image.digest(),
            size,
            -1,
            True,
            0.0,
        )
        info = debian.RootfsInfo(
            python_exe=probe.python_exe or "",
            python_version=probe.python_version or "",
            site_packages=probe.site_packages or "",
            glibc=probe.glibc or "",
            packages=[],
        )
        return [report], info

    def user_layer(self) -> tuple[Layer, LayerReport] | None:
        """The app user for a base that lacks it: its passwd and group, plus its home."""
        assert self.probe is not None
        spec = self.debian_spec
        files = user_files(self.probe, spec.uid, spec.user, spec.home)
        if files is None:
            return None
        mtime = self._fixed_mtime()
        key = input_key("user", self._common_key(mtime), files, spec.home)
        home = spec.home.strip("/")

        def fill(root: Path) -> dict[str, Any]:
            for rel, text in files.items():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_text(text)
                (root / rel).chmod(0o644)
            (root / home).mkdir(parents=True, mode=0o755)
            return {}

        owner = Ownership(overrides={home: (spec.uid, spec.uid)})
        layer, report, _ = self._layer("user", key, fill, owner, mtime)
        return layer, report

    def _resolve(self, target: Target, out: Path) -> Lock:
        reqs = [self.cfg.path(r) for r in self.cfg.requirements]
        pin = [self.torch.requirement]
        try:
            return resolve_lock(reqs, target, self.settings, extra=pin, out=out)
        except ResolveError as first:
            # Only a failure about torch itself (not e.g. "torchvision" or "torchslim-x").
            if not re.search(r"(?<![\w.-])torch(?![\w-])", str(first)):
                raise
            # The user's indexes lack this torch build: add the PyTorch index for the variant.
            self.steps.step(f"torch not in your indexes; trying {self.torch.index_url}")
            more = dataclasses.replace(
                self.settings,
                extra_index_urls=(*self.settings.extra_index_urls, self.torch.index_url),
            )
            return resolve_lock(reqs, target, more, extra=pin, out=out)

    def debian_packages(self, project_lock: ProjectLock) -> list[debian.DebPackage]:
        key = input_key(dataclasses.asdict(self.debian_spec))
        if project_lock.debian_key == key and project_lock.debian:
            return [debian.DebPackage.from_dict(d) for d in project_lock.debian]
        self.steps.step(f"Resolving Debian {self.debian_spec.suite} packages")
        packages = debian.resolve(self.debian_spec, self.store, self.steps.progress)
        project_lock.debian_key = key
        project_lock.debian = [p.to_dict() for p in packages]
        if project_lock.python_text:  # never write a pylock.toml without its Python part
            write_project_lock(self.lock_path, project_lock)
        return packages

    # ---- layers -----------------------------------------------------------

    def _layer(
        self,
        name: str,
        key: str,
        fill: Callable[[Path], dict[str, Any]],
        owner: Callable[[str], tuple[int, int]] | None = None,
        mtime: int | None = None,
    ) -> tuple[Layer, LayerReport, dict[str, Any]]:
        """Build one layer, or take it from the cache when its inputs are unchanged.

        ``key`` must already cover ``mtime`` (see ``_common_key``).
        """
        mtime = self.mtime if mtime is None else mtime
        start = time.monotonic()
        hit = self.layers.get(key)
        if hit is not None:
            layer = Layer.from_dict(hit["layer"])
            extra: dict[str, Any] = hit.get("extra", {})
            report = LayerReport(
                name,
                layer.descriptor.digest,
                layer.descriptor.size,
                layer.uncompressed_size,
                True,
                time.monotonic() - start,
                extra.get("ledger", {}),
            )
            return layer, report, extra
        with _staging(name) as root:
            extra = fill(root)
            layer = self._write_layer(name, key, root, extra, owner, mtime)
        report = LayerReport(
            name,
            layer.descriptor.digest,
            layer.descriptor.size,
            layer.uncompressed_size,
            False,
            time.monotonic() - start,
            extra.get("ledger", {}),
        )
        return layer, report, extra

    def _write_layer(
        self,
        name: str,
        key: str,
        root: Path,
        extra: dict[str, Any],
        owner: Callable[[str], tuple[int, int]] | None,
        mtime: int,
    ) -> Layer:
        self.steps.step(f"Writing layer {name}")
        written = [0]

        def progress(n: int) -> None:
            written[0] += n
            self.steps.progress(f"layer {name}", written[0], 0)

        layer = write_layer_from_dir(
            root,
            self.store,
            compression=self.opts.compression,
            mtime=mtime,
            owner=owner,
            progress=progress,
        )
        self.layers.put(key, {"layer": layer.to_dict(), "extra": extra})
        return layer

    def _common_key(self, mtime: int | None = None) -> list[Any]:
        mtime = self.mtime if mtime is None else mtime
        return [BUILD_FORMAT, self.opts.compression, mtime, self.cfg.user]

    def _fixed_mtime(self, names: Sequence[str] = ()) -> int:
        """SOURCE_DATE_EPOCH, else the newest upload time of ``names`` (0 for the OS layer)."""
        if self.sde is not None:
            return self.sde
        return max((self.uploads.get(n, 0) for n in names), default=0)

    def base_layer(
        self, packages: list[debian.DebPackage]
    ) -> tuple[Layer, LayerReport, debian.RootfsInfo]:
        spec = self.debian_spec
        mtime = self._fixed_mtime()
        key = input_key(
            "base", self._common_key(mtime), dataclasses.asdict(spec), [p.sha256 for p in packages]
        )
        owner = Ownership(overrides={spec.home.strip("/"): (spec.uid, spec.uid)})

        def fill(root: Path) -> dict[str, Any]:
            self.steps.step(f"Assembling Debian {spec.suite} base ({len(packages)} packages)")
            info = debian.assemble(spec, packages, root, self.store, self.steps.progress)
            # Debian compiles the stdlib in a maintainer script we do not run.
            precompile(root, f"/usr/lib/python{info.python_version}", info.python_version)
            return {
                "libs": _library_paths(root),
                "rootfs": {
                    "python_exe": info.python_exe,
                    "python_version": info.python_version,
                    "site_packages": info.site_packages,
                    "glibc": info.glibc,
                },
            }

        layer, report, extra = self._layer("base", key, fill, owner, mtime)
        self.base_libs = list(extra.get("libs", []))
        r = extra["rootfs"]
        info = debian.RootfsInfo(
            python_exe=r["python_exe"],
            python_version=r["python_version"],
            site_packages=r["site_packages"],
            glibc=r["glibc"],
            packages=packages,
        )
        return layer, report, info

    def files_layer(
        self, name: str, files: list[tuple[Path, str]], python_version: str | None
    ) -> tuple[Layer, LayerReport]:
        """Copy ``(source, image path)`` files; root-owned and read-only for the app user."""
        listing = [
            (dest, os.stat(src).st_mode & 0o111 != 0, sha256_file(src)) for src, dest in files
        ]
        key = input_key("files", name, self._common_key(), listing, python_version)

        def fill(root: Path) -> dict[str, Any]:
            for src, dest in files:
                target = root / dest.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, target)
                target.chmod(0o755 if os.stat(src).st_mode & 0o111 else 0o644)
            for d in sorted(p for p in root.rglob("*") if p.is_dir()):
                d.chmod(0o755)
            if python_version is not None:
                precompile(root, APP_ROOT, python_version)
            return {}

        layer, report, _ = self._layer(name, key, fill)
        return layer, report

    def app_files(self) -> list[tuple[Path, str]]:
        cfg = self.cfg
        app = cfg.app_path.resolve()
        models = {cfg.path(m).resolve() for m in cfg.model}
        skip = models | {cfg.file.resolve(), (cfg.root / LOCK_NAME).resolve()}
        out: list[tuple[Path, str]] = []
        rel_app = app.relative_to(cfg.root) if app != cfg.root else Path()
        for path in sorted(app.rglob("*")):
            rel = path.relative_to(app)
            if any(part in IGNORED_NAMES for part in rel.parts) or path.suffix == ".pyc":
                continue
            if path.is_file() and not path.is_symlink() and path.resolve() not in skip:
                out.append((path, f"{APP_ROOT}/{(rel_app / rel).as_posix()}"))
        return out

    def model_files(self) -> list[tuple[Path, str]]:
        return [(self.cfg.path(m), f"{APP_ROOT}/{Path(m).as_posix()}") for m in self.cfg.model]

    # ---- image ------------------------------------------------------------

    def image_config(self, image: Image, info: debian.RootfsInfo) -> Image:
        cfg = self.cfg
        created = self.created
        # A pulled base keeps its own PATH (conda's /opt/conda/bin, a venv's bin …).
        path = {"PATH": "/usr/local/bin:/usr/bin:/bin"} if self.debian_base else {}
        # The NVIDIA container toolkit injects the driver only into containers that ask.
        cuda = self.torch.cuda
        gpu = (
            {"NVIDIA_VISIBLE_DEVICES": "all", "NVIDIA_DRIVER_CAPABILITIES": "compute,utility"}
            if cuda
            else {}
        )
        env = {
            **path,
            **gpu,
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "LANG": "C.UTF-8",
            **cfg.env,
        }
        labels = {
            "org.opencontainers.image.title": cfg.name,
            "org.opencontainers.image.version": cfg.version,
            "org.opencontainers.image.created": created,
            "org.opencontainers.image.base.name": (
                f"debian:{self.debian_spec.suite}" if self.debian_base else cfg.base
            ),
            "dev.torchslim.torch": f"{self.torch.version}+{self.torch.variant}",
            "dev.torchslim.profile": self.profile if not self.opts.no_slim else "none",
            **cfg.labels,
        }
        if cuda:
            labels["dev.torchslim.cuda"] = cuda
            labels["dev.torchslim.min-driver"] = self.torch.min_driver() or ""
        if self.base_image is not None:
            labels["org.opencontainers.image.base.digest"] = self.base_image.digest()
        if cfg.source:
            labels["org.opencontainers.image.source"] = cfg.source
        revision = _git_revision(cfg.root)
        if revision:
            labels["org.opencontainers.image.revision"] = revision
        healthcheck = None
        if cfg.health and cfg.port:
            url = f"http://127.0.0.1:{cfg.port}{cfg.health}"
            probe = (
                "import sys, urllib.request\n"
                f"sys.exit(0 if urllib.request.urlopen({url!r}, timeout=2).status == 200 else 1)"
            )
            hc = cfg.healthcheck
            healthcheck = {
                "Test": ["CMD", info.python_exe, "-c", probe],
                "Interval": duration_ns(hc.interval),
                "Timeout": duration_ns(hc.timeout),
                "StartPeriod": duration_ns(hc.start_period),
                "Retries": hc.retries,
            }
        service = self.opts.target == "image"
        return with_config(
            image,
            user=f"{cfg.user}:{cfg.user}",
            env=[f"{k}={v}" for k, v in env.items()],
            cmd=list(cfg.cmd) if service else [info.python_exe],
            working_dir=APP_ROOT,
            exposed_ports=[f"{cfg.port}/tcp"] if cfg.port and service else None,
            healthcheck=healthcheck if service else None,
            labels=labels,
            created=created,
        )

    def tag(self) -> str:
        default = image_tag(self.cfg.version, self.torch)
        if self.opts.target == "base":
            default += "-base"
        elif self.opts.target == "os":
            default = f"python{self.cfg.python}-{self.debian_spec.suite}"
        tag = self.opts.tag or default
        if tag == "latest" and not self.opts.allow_latest:
            raise ConfigError(
                "--tag latest: refused, a moving tag hides which build runs; "
                "use the default semantic tag or pass --allow-latest"
            )
        return tag

    def check_output(self) -> None:
        out = self.opts.output
        if out is None or out.transport == "docker":
            return
        if out.path.exists() and not self.opts.force:
            raise OutputExistsError(
                f"{out.path}: already exists; pass --force to replace it or choose another --output"
            )

    def run(self) -> BuildResult:
        start = time.monotonic()
        tag = self.tag()
        self.check_output()
        lock: Lock | None = None
        if self.opts.target == "os":
            self.prepare_base(None if self.opts.relock else read_project_lock(self.lock_path))
            # The OS alone needs no Python lock, only the Debian package set.
            existing = None if self.opts.relock else read_project_lock(self.lock_path)
            project_lock = existing or ProjectLock(python_text="")
        else:
            project_lock, lock = self.resolve()
        self.pin_base(project_lock)
        # SOURCE_DATE_EPOCH fixes every date. Without it, the image's date is the newest
        # upload in the lock, and each Python layer's file times come from its own wheels
        # only, so a torch layer stays byte-identical across services with other deps.
        self.sde = _source_date_epoch(self.opts)
        self.uploads = project_lock.upload_epochs()
        self.mtime = self.sde if self.sde is not None else project_lock.newest_upload_epoch()
        findings = audit_lock(lock) if lock is not None else []
        if findings and self.opts.strict:
            first = findings[0]
            raise BuildError(
                f"dev-only package {first.package} in the prod requirements "
                f"(brought by {' ← '.join(first.chain[1:]) or 'a requirement'}); "
                "move it to dev-requirements or drop --strict"
            )
        for finding in findings:
            self.steps.warn(
                f"dev-only package {finding.package} in the image, brought by "
                f"{' ← '.join(finding.chain[1:]) or 'the requirements'}"
            )

        new: list[tuple[Layer, LayerReport]] = []
        if self.debian_base:
            packages = self.debian_packages(project_lock)
            base, base_report, info = self.base_layer(packages)
            image: Image = empty_image(arch=self.platform.arch, os=self.platform.os)
            reports: list[LayerReport] = []
            new.append((base, base_report))
        else:
            assert self.base_image is not None
            image = self.base_image
            reports, info = self.external_base()
            user = self.user_layer()
            if user is not None:
                new.append(user)
        if lock is not None:
            # A shared base (torchslim build --target base) already holds these layers.
            present = set(image.config().get("rootfs", {}).get("diff_ids", []))
            for layer, rep in self.python_layers(lock, info):
                if layer.diff_id in present:
                    self.steps.step(f"Layer {rep.name} is already in the base: not added again")
                    continue
                new.append((layer, rep))
        if self.opts.target == "image":
            app = self.app_files()
            if app:
                new.append(self.files_layer("app", app, info.python_version))
            models = self.model_files()
            if models:
                new.append(self.files_layer("model", models, None))

        image = append_layers(
            image,
            [(layer, self.store, f"torchslim: {rep.name}") for layer, rep in new],
            created=self.created,
        )
        image = self.image_config(image, info)
        self._write(image, tag)
        reports += [rep for _, rep in new]

        ledger = Ledger()
        for rep in reports:
            if rep.ledger:
                ledger.merge(Ledger.from_dict(rep.ledger))
        return BuildResult(
            name=self.cfg.name,
            tag=tag,
            digest=image.digest(),
            platform=str(self.platform),
            layers=reports,
            ledger=ledger,
            dev_findings=findings,
            output=self.opts.output,
            seconds=time.monotonic() - start,
            profile=self.profile,
            slimmed=not self.opts.no_slim,
            image=image,
        )

    def python_layers(self, lock: Lock, info: debian.RootfsInfo) -> list[tuple[Layer, LayerReport]]:
        """All wheels staged, slimmed and closure-checked together, then split into layers.

        The split follows ``layerplan`` (torch · nvidia groups · triton · deps) and each
        file goes to the layer of the distribution that installed it, so a layer's bytes
        depend on its own wheels only and stay shareable across services.
        """
        scheme = Scheme(
            purelib=info.site_packages,
            platlib=info.site_packages,
            scripts="/usr/local/bin",
            data="/usr/local",
            headers=f"/usr/local/include/python{info.python_version}",
        )
        slim = not self.opts.no_slim
        wheels = {w.name: w for w in lock.packages}
        if "torch" not in wheels:
            raise ResolveError(f"the lock has no torch wheel for {self.torch.requirement}")
        groups = plan_python_layers(list(wheels))
        keys: dict[str, tuple[int, str]] = {}
        for group, names in groups:
            mtime = self._fixed_mtime(names)
            keys[group] = (
                mtime,
                input_key(
                    "python",
                    group,
                    self._common_key(mtime),
                    sorted(wheels[n].sha256 for n in names),
                    dataclasses.asdict(scheme),
                    info.python_exe,
                    slim,
                    self.profile,
                    sorted(self.keep),
                ),
            )
        hits = {g: self.layers.get(key) for g, (_, key) in keys.items()}
        if all(hit is not None for hit in hits.values()):
            return [self._layer(g, keys[g][1], _no_fill)[:2] for g, _ in groups]

        self.steps.step(f"Fetching {len(wheels)} wheels")
        paths = fetch_wheels(lock, self.store, self.settings, self.steps.progress)
        with _staging("python") as root, _staging("split") as split:
            owner: dict[str, str] = {}
            self.steps.step(f"Installing {len(wheels)} wheels")
            for group, names in groups:
                for n in names:
                    for image_path in install_wheel(paths[n], root, scheme, info.python_exe):
                        owner[image_path] = group
            ledgers = {g: Ledger() for g, _ in groups}
            removed: dict[str, str] = {}
            if slim:
                self.steps.step(f"Slimming (profile {self.profile})")
                removed = slim_tree(
                    root,
                    info.site_packages,
                    profile=self.profile,
                    keep=self.keep,
                    ledger=_RoutingLedger(ledgers, owner, info.site_packages),
                )
            self.steps.step("Checking that every kept shared library finds its dependencies")
            with _staging("libs") as stub:
                _stub_libraries(stub, self.base_libs)
                raise_for_missing(
                    check_closure(
                        [(root, "/"), (stub, "/")],
                        removed=removed,
                        check_prefixes=[info.site_packages],
                    )
                )
            precompile(root, info.site_packages, info.python_version)
            _split_tree(root, split, owner, info.site_packages, [g for g, _ in groups])
            out: list[tuple[Layer, LayerReport]] = []
            for group, _ in groups:
                mtime, key = keys[group]
                started = time.monotonic()
                if hits[group] is None:
                    (split / group).mkdir(exist_ok=True)
                    extra = {"ledger": ledgers[group].to_dict()}
                    self._write_layer(group, key, split / group, extra, None, mtime)
                layer, report, _ = self._layer(group, key, _no_fill)
                if hits[group] is None:
                    report.cached, report.seconds = False, time.monotonic() - started
                out.append((layer, report))
        return out

    mtime: int = 0

    @property
    def created(self) -> str:
        return datetime.fromtimestamp(self.mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    pushed: PushResult | None = None

    def _write(self, image: Image, tag: str) -> None:
        out = self.opts.output
        if out is None:
            return
        self.steps.step(f"Writing {out}")
        if out.transport == "docker":
            self.pushed = push_image(
                image,
                push_reference(out, tag),
                tls_verify=self.opts.tls_verify,
                progress=self.steps.progress,
            )
        elif out.transport == "oci":
            write_oci_layout(image, out.path, ref_name=tag, force=self.opts.force)
        else:
            write_docker_archive(
                image,
                out.path,
                repo_tags=[f"localhost/{self.cfg.name}:{tag}"],
                force=self.opts.force,
            )


@dataclass
class BuildOutcome:
    """One result per platform; ``digest`` names the index when there are several."""

    results: list[BuildResult]
    digest: str
    pushed: PushResult | None = None


def platforms_of(cfg: ProjectConfig, opts: BuildOptions) -> list[str]:
    chosen = [p.strip() for p in opts.platform.split(",")] if opts.platform else cfg.platform
    for p in chosen:
        parse_platform(p)
    return chosen


def build(cfg: ProjectConfig, opts: BuildOptions, steps: Steps | None = None) -> BuildOutcome:
    """Build for each platform; several platforms give an OCI index (layout or registry)."""
    platforms = platforms_of(cfg, opts)
    if len(platforms) == 1:
        builder = Builder(cfg, dataclasses.replace(opts, platform=platforms[0]), steps)
        result = builder.run()
        return BuildOutcome([result], result.digest, builder.pushed)
    out = opts.output
    if out is not None and out.transport == "docker-archive":
        raise ConfigError(
            f"--output {out}: a docker-archive holds one platform; "
            "use --output oci:DIR or docker://REF for several platforms"
        )
    builders = [
        Builder(cfg, dataclasses.replace(opts, platform=p, output=None), steps) for p in platforms
    ]
    tag = builders[0].tag()
    if out is not None and out.transport == "oci" and out.path.exists() and not opts.force:
        raise OutputExistsError(f"{out.path}: already exists; pass --force to replace it")
    results = [b.run() for b in builders]
    images = [r.image for r in results]
    pushed = None
    if out is None:
        digest = ""
    elif out.transport == "oci":
        digest = write_oci_index_layout(images, out.path, ref_name=tag, force=opts.force)
    else:
        pushed = push_index(
            images,
            push_reference(out, tag),
            tls_verify=opts.tls_verify,
            progress=(steps or QuietSteps()).progress,
        )
        digest = pushed.manifest_digest
    return BuildOutcome(results, digest, pushed)
