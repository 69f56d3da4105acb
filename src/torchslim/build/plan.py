"""The plan: every decision of a build, made once from the config and the options.

Pure (no network, no image reads) and complete: every configuration error is found
here and reported together, before any work is done. The rest of the build reads
the plan and decides nothing the user could have been told about up front.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypeVar

from torchslim import debian
from torchslim.buildcache.remote import cache_repository
from torchslim.cache import cache_root
from torchslim.config import Compression, Platform, ProjectConfig, build_platform, with_torch
from torchslim.debian.spec import PYTHON_SUITES
from torchslim.deps.pipconf import IndexSettings
from torchslim.errors import ConfigError
from torchslim.oci.layer import compression_level
from torchslim.oci.reference import Reference
from torchslim.oci.transport import Location, parse_location
from torchslim.project.ignore import select_app_files
from torchslim.project.items import ProjectRequirements
from torchslim.project.models import expand_files, expand_model_entries
from torchslim.project.override import override_torch
from torchslim.project.sources import find_requirements
from torchslim.project.torchpin import check_torch_pin
from torchslim.slim.rules import PROFILES
from torchslim.slim.used import PROFILE as USED_PROFILE
from torchslim.torchmeta import TorchBuild, image_tag, shipped_variants, torch_build

Target = Literal["image", "base", "os", "debug", "notebook"]
DEBUG_SUFFIX = "-debug"
NOTEBOOK_SUFFIX = "-notebook"
Key = Literal["torch", "variant", "python", "platform"]
Files = tuple[tuple[Path, str], ...]  # (source on this machine, absolute path in the image)
LOCK_NAME = "pylock.toml"
APP_ROOT = "/app"  # the WORKDIR: app files, model files
# `init`: the Debian package and the entrypoint that runs cmd under it ("auto" is decided
# by the build from the served proof: see `with_init`).
INIT_PACKAGES: dict[str, tuple[str, ...]] = {"tini": ("tini",)}
INIT_ENTRYPOINT: dict[str, list[str]] = {"tini": ["/usr/bin/tini", "--"]}
T = TypeVar("T")


@dataclass(frozen=True)
class BuildOptions:
    """What the command line adds to (or overrides in) the config."""

    output: str | None = None  # oci:DIR | docker-archive:FILE | docker://REF
    force: bool = False
    profile: str | None = None
    keep: Sequence[str] = ()
    no_slim: bool = False
    compression: Compression | None = None  # None: the config's (gzip unless it says)
    compression_level: int | None = None  # None: the config's, else the format's default
    tag: str | None = None
    allow_latest: bool = False
    platform: str | None = None  # one, or several separated by commas
    mirror: str | None = None
    strict: bool = False
    relock: bool = False
    source_date_epoch: int | None = None
    # image: everything; base: OS + torch + deps (a shared base for services); os: OS only;
    # debug: the service plus one layer of tools (busybox, py-spy), tag suffix -debug;
    # notebook: the service plus a Jupyter layer (its own command, port 8888), tag -notebook
    target: Target = "image"
    tls_verify: bool = True
    prove: bool = True  # --no-prove skips running the image before it is written
    torch: str | None = None  # --torch: another torch release than the config's
    variant: str | None = None  # --variant: cpu or cuXYZ instead of the config's
    python: str | None = None  # --python: another Python (3.X) than the config's
    cache_from: Sequence[str] = ()  # --cache-from: registry repositories to read layers from
    cache_to: str | None = None  # --cache-to: the registry repository to write them to


@dataclass(frozen=True)
class Overrides:
    """The project's values the command line replaces for this one build (those that differ
    from the config's; None where the project's own value holds)."""

    torch: str | None = None
    variant: str | None = None
    python: str | None = None
    platform: str | None = None  # as given, when it names a platform the config lacks

    @classmethod
    def of(cls, opts: BuildOptions, cfg: ProjectConfig) -> Overrides:
        chosen = [p.strip() for p in opts.platform.split(",")] if opts.platform else []
        return cls(
            torch=opts.torch if opts.torch not in (None, cfg.torch) else None,
            variant=opts.variant if opts.variant not in (None, cfg.variant) else None,
            python=opts.python if opts.python not in (None, cfg.python) else None,
            platform=opts.platform if set(chosen) - set(cfg.platform) else None,
        )

    def origin(self, key: Key, config_file: str = "torchslim.toml") -> str:
        """``--torch 2.13.0 (command line)`` or ``torchslim.toml: torch``."""
        value = getattr(self, key)
        return f"--{key} {value} (command line)" if value is not None else f"{config_file}: {key}"

    def said(self, key: Key, value: str, config_file: str = "torchslim.toml") -> str:
        """A value and where it came from: ``--torch 2.13.0 (command line)`` or
        ``torch 2.13.0 (torchslim.toml: torch)``."""
        if getattr(self, key) is not None:
            return self.origin(key)
        return f"{key} {value} ({self.origin(key, config_file)})"

    @property
    def torch_origin(self) -> str:
        """Where the build's torch comes from when the command line chose it."""
        keys: tuple[Key, ...] = ("torch", "variant")
        return " and ".join(self.origin(k) for k in keys if getattr(self, k) is not None)


@dataclass(frozen=True)
class Plan:
    """One image for one platform: everything the build steps need to know."""

    cfg: ProjectConfig
    platform: Platform
    torch: TorchBuild
    target: Target
    tag: str
    profile: str
    slim: bool
    keep: tuple[str, ...]
    compression: Compression
    compression_level: int  # checked for ``compression`` (oci.layer.LEVELS)
    debian: debian.DebianSpec  # the Debian base, or (suite "") only the app user's facts
    base: Location | None  # an external base image; None for torchslim's Debian base
    lock_path: Path
    relock: bool
    strict: bool
    source_date_epoch: int | None
    tls_verify: bool
    settings: IndexSettings = field(repr=False)
    prove: bool = True
    requirements: ProjectRequirements = field(default_factory=ProjectRequirements, repr=False)
    overrides: Overrides = Overrides()
    app_files: Files = ()
    model_files: Files = ()
    extra_files: Files = ()  # the `files` key: single files to chosen image paths
    cache_from: tuple[Reference, ...] = ()  # --cache-from repositories (buildcache)

    @property
    def debian_base(self) -> bool:
        return self.base is None

    @property
    def service(self) -> bool:
        """Whether this is the service image (app, model, cmd), not a shared base."""
        return self.target in ("image", "debug", "notebook")

    @property
    def census(self) -> bool:
        """Whether the served proof records what the service imports, for the build to keep
        only that (``bytecode = "imported"``, profile ``used``)."""
        wanted = self.cfg.bytecode == "imported" or self.profile == USED_PROFILE
        return wanted and self.slim and self.prove and self.service and not self.notebook

    @property
    def prefetch(self) -> bool:
        """Whether the eStargz layers put the files the served proof saw the service open
        first, before the prefetch landmark (``--compression estargz`` on a served image)."""
        served = self.cfg.port is not None and self.prove and self.service
        return self.compression == "estargz" and served and not self.notebook

    @property
    def debug(self) -> bool:
        """Whether the service image gets the debug tools layer on top."""
        return self.target == "debug"

    @property
    def notebook(self) -> bool:
        """Whether the service image gets the Jupyter layer on top (and Jupyter's command)."""
        return self.target == "notebook"


@dataclass(frozen=True)
class BuildPlan:
    """One plan per platform, and where the result goes."""

    plans: tuple[Plan, ...]
    output: Location | None
    force: bool
    cache_to: Reference | None = None  # --cache-to repository (buildcache)

    @property
    def tag(self) -> str:
        return self.plans[0].tag


class _Errors:
    """Collects configuration errors so that all of them are reported together."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def check(self, fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except ConfigError as exc:
            self.messages.append(str(exc))
            return None

    def raise_any(self) -> None:
        if len(self.messages) == 1:
            raise ConfigError(self.messages[0])
        if self.messages:
            lines = "\n".join(f"  - {m}" for m in self.messages)
            raise ConfigError(f"{len(self.messages)} configuration errors:\n{lines}")


def source_date_epoch(value: int | None, environ: Mapping[str, str]) -> int | None:
    """``--source-date-epoch``, else ``$SOURCE_DATE_EPOCH``, else None (dates from the lock)."""
    if value is not None:
        return value
    env = environ.get("SOURCE_DATE_EPOCH")
    if not env:
        return None
    try:
        return int(env)
    except ValueError:
        raise ConfigError(
            f"SOURCE_DATE_EPOCH={env!r}: expected seconds since 1970 as an integer"
        ) from None


def lock_path(
    cfg: ProjectConfig, platform: Platform, torch: str, variant: str, python: str | None = None
) -> Path:
    """One lock per target, so switching target never relocks another.

    ``pylock.toml`` for the config's own target (its first platform, its torch, variant and
    Python), ``pylock.linux-arm64.toml`` for its other platforms, all beside the config.
    A target the command line makes (``--platform``, ``--torch``, ``--variant``,
    ``--python``) locks in the build's own space, ``pylock.torch2.14.1-cu130.toml`` …
    under :func:`override_locks`: the project's files are never written for it.
    """
    python = python or cfg.python
    parts = []
    if str(platform) != cfg.platform[0]:
        parts.append(f"{platform.os}-{platform.arch}")
    if python != cfg.python:
        parts.append(f"python{python}")
    if (torch, variant) != (cfg.torch, cfg.variant):
        parts.append(f"torch{torch}-{variant}")
    name = f"pylock.{'-'.join(parts)}.toml" if parts else LOCK_NAME
    own = str(platform) in cfg.platform and (torch, variant, python) == (
        cfg.torch,
        cfg.variant,
        cfg.python,
    )
    return (cfg.root if own else override_locks(cfg.root)) / name


def override_locks(root: Path) -> Path:
    """Where a project's locks for command-line targets live: torchslim's cache, one folder
    per project."""
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_root() / "locks" / digest


def _platforms(cfg: ProjectConfig, opts: BuildOptions) -> list[Platform]:
    chosen = [p.strip() for p in opts.platform.split(",")] if opts.platform else cfg.platform
    return [build_platform(p) for p in chosen]


def _compression_level(cfg: ProjectConfig, opts: BuildOptions, compression: Compression) -> int:
    """The command line's level, else the config's for the config's own format, else the
    format's default; checked for the format (oci.layer.LEVELS)."""
    try:
        if opts.compression_level is not None:
            return compression_level(compression, opts.compression_level)
        if compression == cfg.compression:
            return compression_level(compression, cfg.compression_level)
        return compression_level(compression, None)
    except ConfigError as exc:
        where = (
            "--compression-level"
            if opts.compression_level is not None
            else f"{cfg.file}: key `compression-level`"
        )
        raise ConfigError(f"{where}: {exc}") from None


def _profile(cfg: ProjectConfig, opts: BuildOptions) -> str:
    profile = opts.profile or cfg.profile
    if profile not in PROFILES:
        where = "--profile" if opts.profile else f"{cfg.file}: key `profile`"
        raise ConfigError(
            f"{where}: unknown profile {profile!r}; choose one of {', '.join(PROFILES)}"
        )
    if profile == USED_PROFILE and opts.target in ("image", "debug"):
        where = "--profile used" if opts.profile else f'{cfg.file}: profile = "used"'
        # It keeps what the served proof saw imported: no served proof, nothing to go by.
        if cfg.port is None:
            raise ConfigError(
                f"{where} keeps only what the service imported while it was served: set "
                '`port` (and `health`) so it can be served, or use profile "inference"'
            )
        if not opts.prove or opts.no_slim:
            flag = "--no-prove" if not opts.prove else "--no-slim"
            raise ConfigError(
                f"{where} needs the served proof and slimming: drop {flag}, or use profile "
                '"inference"'
            )
    return profile


def with_init(plan: Plan, init: Literal["none", "tini"]) -> Plan:
    """``plan`` with its init decided (``auto`` resolved by the build): the init's Debian
    package joins the base's."""
    cfg = plan.cfg.model_copy(update={"init": init})
    spec = replace(plan.debian, extra=(*cfg.apt, *INIT_PACKAGES.get(init, ())))
    return replace(plan, cfg=cfg, debian=spec)


def _base(cfg: ProjectConfig) -> Location | None:
    if cfg.base == "debian":
        return None
    if cfg.apt:
        raise ConfigError(
            f'{cfg.file}: key `apt`: extra Debian packages need base = "debian"; '
            "install them in your own base image instead"
        )
    if cfg.init == "tini":
        raise ConfigError(
            f'{cfg.file}: key `init` = "{cfg.init}": the init comes from Debian, so it needs '
            'base = "debian"; put it in your own base image and name it in `cmd` instead'
        )
    return parse_location(
        cfg.base,
        what=f"{cfg.file}: key `base` =",
        allowed=("oci", "docker-archive", "docker"),
        bare="registry",
    )


def _tag(cfg: ProjectConfig, opts: BuildOptions, torch: TorchBuild) -> str:
    default = image_tag(cfg.version, torch)
    if opts.target == "base":
        default += "-base"
    elif opts.target == "os":
        default = f"python{cfg.python}-{debian.suite_for_python(cfg.python)}"
    tag = opts.tag or default
    if tag == "latest" and not opts.allow_latest:
        raise ConfigError(
            "--tag latest: refused, a moving tag hides which build runs; "
            "use the default semantic tag or pass --allow-latest"
        )
    if opts.target == "notebook":
        return notebook_tag(tag)
    return debug_tag(tag) if opts.target == "debug" else tag


def debug_tag(tag: str) -> str:
    """The debug image's tag: the service's with ``-debug`` (once)."""
    return tag if tag.endswith(DEBUG_SUFFIX) else tag + DEBUG_SUFFIX


def notebook_tag(tag: str) -> str:
    """The notebook image's tag: the service's with ``-notebook`` (once)."""
    return tag if tag.endswith(NOTEBOOK_SUFFIX) else tag + NOTEBOOK_SUFFIX


def _output(opts: BuildOptions, platforms: int) -> Location | None:
    if opts.output is None:
        return None
    out = parse_location(opts.output, what="--output", allowed=("oci", "docker-archive", "docker"))
    if platforms > 1 and out.transport == "docker-archive":
        raise ConfigError(
            f"--output {out}: a docker-archive holds one platform; "
            "use --output oci:DIR or docker://REF for several platforms"
        )
    return out


@dataclass(frozen=True)
class _Project:
    requirements: ProjectRequirements
    app_files: Files
    model_files: Files
    extra_files: Files


def _in_file(cfg: ProjectConfig, fn: Callable[[], T]) -> Callable[[], T]:
    """``fn`` with its ConfigError prefixed by the config file, when it does not name it."""

    def run() -> T:
        try:
            return fn()
        except ConfigError as exc:
            if str(exc).startswith(str(cfg.file)):
                raise
            raise ConfigError(f"{cfg.file}: {exc}") from None

    return run


def _requirements(cfg: ProjectConfig) -> ProjectRequirements:
    return find_requirements(
        cfg.root, cfg.requirements, cfg.extras, cfg.dev_requirements,
        groups=cfg.groups, config_file=cfg.file.name,
    )  # fmt: skip


def _torch_pins(
    cfg: ProjectConfig, ov: Overrides, reqs: ProjectRequirements, torch: TorchBuild
) -> ProjectRequirements:
    """The project's torch pins checked against the config's values, and replaced where the
    command line overrides them (for this build; no file is edited)."""
    check_torch_pin(
        reqs,
        cfg.torch,
        cfg.variant,
        config_file=cfg.file.name,
        check_version=ov.torch is None,
        check_variant=ov.variant is None,
    )
    if ov.torch is None and ov.variant is None:
        return reqs
    return override_torch(reqs, torch, ov.torch_origin)


def _overridden(cfg: ProjectConfig, opts: BuildOptions) -> ProjectConfig:
    """``cfg`` with the command line's torch, variant and Python."""
    cfg = with_torch(cfg, opts.torch, opts.variant)
    if opts.python is None:
        return cfg
    if not re.fullmatch(r"3\.\d+", opts.python):
        raise ConfigError(f"--python {opts.python!r}: expected a version such as 3.12")
    return cfg.model_copy(update={"python": opts.python})


def _torch(cfg: ProjectConfig, ov: Overrides) -> TorchBuild:
    if ov.torch is None and ov.variant is None:
        return torch_build(cfg.torch, cfg.variant, file=str(cfg.file))
    shipped = shipped_variants(cfg.torch)
    if shipped and cfg.variant not in shipped:
        torch = ov.said("torch", cfg.torch, cfg.file.name)
        variant = ov.said("variant", cfg.variant, cfg.file.name)
        raise ConfigError(
            f"{torch} does not ship {variant}: choose --variant {' or '.join(shipped)}"
        )
    return TorchBuild(cfg.torch, cfg.variant)


def _suite(cfg: ProjectConfig, ov: Overrides) -> str:
    if ov.python is None:
        return debian.suite_for_python(cfg.python)
    try:
        return debian.suite_for_python(cfg.python)
    except ConfigError:
        known = " or ".join(PYTHON_SUITES)
        raise ConfigError(
            f"{ov.origin('python')}: the Debian base has no Python {cfg.python}; "
            f"choose --python {known}, or use a registry base"
        ) from None


def _project_files(cfg: ProjectConfig) -> tuple[Files, Files, Files]:
    """What goes under /app: the app (minus ignores and secrets), models, single files."""
    models = tuple(expand_model_entries(cfg.root, cfg.model))
    extra = tuple(expand_files(cfg.root, cfg.files))
    skip = [src for src, _ in (*models, *extra)] + [cfg.file, *cfg.root.glob("pylock*.toml")]
    selection = select_app_files(cfg.root, cfg.app, cfg.include, cfg.exclude, skip=skip)
    selection.check_secrets(cfg.file.name)
    app = tuple((f.source, f.image_path) for f in selection.files)
    return app, models, extra


def plan_build(
    cfg: ProjectConfig,
    opts: BuildOptions,
    settings: IndexSettings,
    environ: Mapping[str, str] = os.environ,
) -> BuildPlan:
    """Every decision for every platform; all configuration errors together."""
    errors = _Errors()
    own = cfg
    ov = Overrides.of(opts, own)
    cfg = errors.check(lambda: _overridden(own, opts)) or own
    platforms = errors.check(lambda: _platforms(cfg, opts)) or []
    torch = errors.check(lambda: _torch(cfg, ov))
    profile = errors.check(lambda: _profile(cfg, opts))
    base = errors.check(lambda: _base(cfg))
    suite = ""
    if cfg.base == "debian":
        suite = errors.check(lambda: _suite(cfg, ov)) or ""
    tag = errors.check(lambda: _tag(cfg, opts, torch)) if torch is not None else None
    sde = errors.check(lambda: source_date_epoch(opts.source_date_epoch, environ))
    output = errors.check(lambda: _output(opts, len(platforms)))
    compression = opts.compression or cfg.compression
    level = errors.check(lambda: _compression_level(cfg, opts, compression))
    cache_from = errors.check(
        lambda: tuple(cache_repository(r, "--cache-from") for r in opts.cache_from)
    )
    cache_to = errors.check(
        lambda: cache_repository(opts.cache_to, "--cache-to") if opts.cache_to else None
    )
    reqs = ProjectRequirements()
    if opts.target != "os":
        found = errors.check(_in_file(cfg, lambda: _requirements(cfg)))
        if found is not None and torch is not None:
            reqs = errors.check(lambda: _torch_pins(cfg, ov, found, torch)) or found
    files: tuple[Files, Files, Files] = ((), (), ())
    if opts.target in ("image", "debug", "notebook"):
        files = errors.check(_in_file(cfg, lambda: _project_files(cfg))) or files
    errors.raise_any()
    assert torch is not None and profile is not None and tag is not None and level is not None
    plans = tuple(
        Plan(
            cfg=cfg,
            platform=platform,
            torch=torch,
            target=opts.target,
            tag=tag,
            profile=profile,
            slim=not opts.no_slim,
            keep=(*cfg.keep, *opts.keep),
            compression=compression,
            compression_level=level,
            debian=debian.DebianSpec(
                suite=suite,
                arch=platform.arch,
                mirror=opts.mirror or cfg.mirror or debian.DEFAULT_MIRROR,
                python=cfg.python,
                extra=(*cfg.apt, *INIT_PACKAGES.get(cfg.init, ())),
                uid=cfg.user,
            ),
            base=base,
            lock_path=lock_path(own, platform, cfg.torch, cfg.variant, cfg.python),
            relock=opts.relock,
            strict=opts.strict,
            source_date_epoch=sde,
            tls_verify=opts.tls_verify,
            settings=settings,
            prove=opts.prove,
            requirements=reqs,
            overrides=ov,
            app_files=files[0],
            model_files=files[1],
            extra_files=files[2],
            cache_from=cache_from or (),
        )
        for platform in platforms
    )
    return BuildPlan(plans, output, opts.force, cache_to)
