"""The plan: every decision of a build, made once from the config and the options.

Pure (no network, no image reads) and complete: every configuration error is found
here and reported together, before any work is done. The rest of the build reads
the plan and decides nothing the user could have been told about up front.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from torchslim import debian
from torchslim.config import Compression, Platform, ProjectConfig, build_platform, with_torch
from torchslim.deps.pipconf import IndexSettings
from torchslim.errors import ConfigError
from torchslim.oci.transport import Location, parse_location
from torchslim.project.ignore import select_app_files
from torchslim.project.items import ProjectRequirements
from torchslim.project.models import expand_files, expand_model_entries
from torchslim.project.sources import find_requirements
from torchslim.project.torchpin import check_torch_pin
from torchslim.slim.rules import PROFILES
from torchslim.torchmeta import TorchBuild, image_tag, torch_build

Target = Literal["image", "base", "os"]
Files = tuple[tuple[Path, str], ...]  # (source on this machine, absolute path in the image)
LOCK_NAME = "pylock.toml"
APP_ROOT = "/app"  # the WORKDIR: app files, model files
T = TypeVar("T")


@dataclass(frozen=True)
class BuildOptions:
    """What the command line adds to (or overrides in) the config."""

    output: str | None = None  # oci:DIR | docker-archive:FILE | docker://REF
    force: bool = False
    profile: str | None = None
    keep: Sequence[str] = ()
    no_slim: bool = False
    compression: Compression = "gzip"
    tag: str | None = None
    allow_latest: bool = False
    platform: str | None = None  # one, or several separated by commas
    mirror: str | None = None
    strict: bool = False
    relock: bool = False
    source_date_epoch: int | None = None
    # image: everything; base: OS + torch + deps (a shared base for services); os: OS only
    target: Target = "image"
    tls_verify: bool = True
    prove: bool = True  # --no-prove skips running the image before it is written
    torch: str | None = None  # --torch: another torch release than the config's
    variant: str | None = None  # --variant: cpu or cuXYZ instead of the config's


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
    app_files: Files = ()
    model_files: Files = ()
    extra_files: Files = ()  # the `files` key: single files to chosen image paths

    @property
    def debian_base(self) -> bool:
        return self.base is None

    @property
    def service(self) -> bool:
        """Whether this is the service image (app, model, cmd), not a shared base."""
        return self.target == "image"


@dataclass(frozen=True)
class BuildPlan:
    """One plan per platform, and where the result goes."""

    plans: tuple[Plan, ...]
    output: Location | None
    force: bool

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


def lock_path(cfg: ProjectConfig, platform: Platform, torch: str, variant: str) -> Path:
    """One lock per target, so switching target never relocks another.

    ``pylock.toml`` for the config's own target (its first platform, its torch and
    variant); ``pylock.linux-arm64.toml``, ``pylock.torch2.14.1-cu130.toml``, … for others
    (``--platform``, ``--torch``, ``--variant``).
    """
    parts = []
    if str(platform) != cfg.platform[0]:
        parts.append(f"{platform.os}-{platform.arch}")
    if (torch, variant) != (cfg.torch, cfg.variant):
        parts.append(f"torch{torch}-{variant}")
    name = f"pylock.{'-'.join(parts)}.toml" if parts else LOCK_NAME
    return cfg.root / name


def _platforms(cfg: ProjectConfig, opts: BuildOptions) -> list[Platform]:
    chosen = [p.strip() for p in opts.platform.split(",")] if opts.platform else cfg.platform
    return [build_platform(p) for p in chosen]


def _profile(cfg: ProjectConfig, opts: BuildOptions) -> str:
    profile = opts.profile or cfg.profile
    if profile not in PROFILES:
        where = "--profile" if opts.profile else f"{cfg.file}: key `profile`"
        raise ConfigError(
            f"{where}: unknown profile {profile!r}; choose one of {', '.join(PROFILES)}"
        )
    return profile


def _base(cfg: ProjectConfig) -> Location | None:
    if cfg.base == "debian":
        return None
    if cfg.apt:
        raise ConfigError(
            f'{cfg.file}: key `apt`: extra Debian packages need base = "debian"; '
            "install them in your own base image instead"
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
    return tag


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
    reqs = find_requirements(
        cfg.root, cfg.requirements, cfg.extras, cfg.dev_requirements, config_file=cfg.file.name
    )
    check_torch_pin(reqs, cfg.torch, cfg.variant, config_file=cfg.file.name)
    return reqs


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
    cfg = errors.check(lambda: with_torch(own, opts.torch, opts.variant)) or own
    platforms = errors.check(lambda: _platforms(cfg, opts)) or []
    torch = errors.check(lambda: torch_build(cfg.torch, cfg.variant, file=str(cfg.file)))
    profile = errors.check(lambda: _profile(cfg, opts))
    base = errors.check(lambda: _base(cfg))
    suite = ""
    if cfg.base == "debian":
        suite = errors.check(lambda: debian.suite_for_python(cfg.python)) or ""
    tag = errors.check(lambda: _tag(cfg, opts, torch)) if torch is not None else None
    sde = errors.check(lambda: source_date_epoch(opts.source_date_epoch, environ))
    output = errors.check(lambda: _output(opts, len(platforms)))
    reqs = ProjectRequirements()
    if opts.target != "os":
        reqs = errors.check(_in_file(cfg, lambda: _requirements(cfg))) or reqs
    files: tuple[Files, Files, Files] = ((), (), ())
    if opts.target == "image":
        files = errors.check(_in_file(cfg, lambda: _project_files(cfg))) or files
    errors.raise_any()
    assert torch is not None and profile is not None and tag is not None
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
            compression=opts.compression,
            debian=debian.DebianSpec(
                suite=suite,
                arch=platform.arch,
                mirror=opts.mirror or cfg.mirror or debian.DEFAULT_MIRROR,
                python=cfg.python,
                extra=tuple(cfg.apt),
                uid=cfg.user,
            ),
            base=base,
            lock_path=lock_path(own, platform, cfg.torch, cfg.variant),
            relock=opts.relock,
            strict=opts.strict,
            source_date_epoch=sde,
            tls_verify=opts.tls_verify,
            settings=settings,
            prove=opts.prove,
            requirements=reqs,
            app_files=files[0],
            model_files=files[1],
            extra_files=files[2],
        )
        for platform in platforms
    )
    return BuildPlan(plans, output, opts.force)
