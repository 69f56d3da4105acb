"""ProjectConfig: read ``torchslim.toml`` (or ``[tool.torchslim]`` in ``pyproject.toml``).

Keys are kebab-case as written in the file. Unknown keys and wrong types are
errors that name the file, the key and the expected form.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from torchslim.confined import confine, exists
from torchslim.errors import ConfigError

CONFIG_FILE = "torchslim.toml"
PYPROJECT = "pyproject.toml"

_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
_DURATION_NS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def duration_ns(text: str) -> int:
    """``"30s"`` → nanoseconds, as Docker's Healthcheck wants them."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"expected a duration like '30s', '500ms' or '1m', got {text!r}")
    return int(m.group(1)) * _DURATION_NS[m.group(2)]


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=_kebab, populate_by_name=True, frozen=True
    )


class HealthcheckConfig(_Model):
    interval: str = "30s"
    timeout: str = "3s"
    start_period: str = "60s"
    retries: Annotated[int, Field(ge=0)] = 3

    @field_validator("interval", "timeout", "start_period")
    @classmethod
    def _is_duration(cls, v: str) -> str:
        duration_ns(v)
        return v


def _as_list(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


class ProjectConfig(_Model):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")]
    python: Annotated[str, Field(pattern=r"^3\.\d+$")] = "3.11"
    torch: Annotated[str, Field(pattern=r"^\d+\.\d+(\.\d+)?$")]
    variant: Annotated[str, Field(pattern=r"^(cpu|cu\d{3})$")] = "cpu"
    requirements: list[str] = ["requirements.txt"]
    dev_requirements: list[str] = []
    app: str = "."
    model: list[str] = []
    cmd: list[str]
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    health: Annotated[str, Field(pattern=r"^/")] | None = None
    user: Annotated[int, Field(ge=1, le=2**31 - 1)] = 1000
    base: str = "debian"
    mirror: str | None = None
    profile: str = "inference"
    keep: list[str] = []
    apt: list[str] = []
    platform: list[str] = ["linux/amd64"]
    env: dict[str, str] = {}
    labels: dict[str, str] = {}
    smoke: list[str] = []
    source: str | None = None
    healthcheck: HealthcheckConfig = HealthcheckConfig()

    # Where the config was read from; set by load_config, not by the file.
    root: Path = Field(default=Path("."), exclude=True)
    file: Path = Field(default=Path(CONFIG_FILE), exclude=True)

    _lists = field_validator(
        "requirements", "dev_requirements", "model", "keep", "apt", "platform", mode="before"
    )(_as_list)

    @field_validator("cmd", "smoke", mode="before")
    @classmethod
    def _split_command(cls, v: Any) -> Any:
        return shlex.split(v) if isinstance(v, str) else v

    @field_validator("platform")
    @classmethod
    def _platforms(cls, v: list[str]) -> list[str]:
        for p in v:
            if p not in ("linux/amd64", "linux/arm64"):
                raise ValueError(f"expected linux/amd64 or linux/arm64, got {p!r}")
        return v

    @property
    def app_path(self) -> Path:
        return self.root / self.app

    def path(self, rel: str) -> Path:
        return self.root / rel


_ALLOWED = {(f.alias or n) for n, f in ProjectConfig.model_fields.items()} - {"root", "file"}


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown key `{loc}` (known keys: {', '.join(sorted(_ALLOWED))})"
    if kind == "missing":
        return f"missing required key `{loc}`"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"key `{loc}`: {msg} (got {err.get('input')!r})"


def parse_config(data: dict[str, Any], *, file: Path, root: Path) -> ProjectConfig:
    try:
        cfg = ProjectConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{file}: {_describe(dict(first))}") from None
    return cfg.model_copy(update={"root": root, "file": file})


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}; fix the syntax at that line") from None
    except RecursionError:
        raise ConfigError(f"{path}: TOML nested too deep to be a configuration") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def find_config(project: Path) -> Path:
    """The file that configures ``project``: a directory or the file itself."""
    if exists(project, "project") and project.is_file():
        return project
    if not project.is_dir():
        raise ConfigError(
            f"{project}: no such project directory; pass the folder with torchslim.toml"
        )
    own = project / CONFIG_FILE
    if own.is_file():
        return own
    py = project / PYPROJECT
    if py.is_file() and "torchslim" in _read_toml(py).get("tool", {}):
        return py
    raise ConfigError(
        f"{own}: not found; create it (see README: 'torchslim.toml') "
        "or add [tool.torchslim] to pyproject.toml"
    )


def load_config(project: Path) -> ProjectConfig:
    file = find_config(project)
    data = _read_toml(file)
    if file.name == PYPROJECT:
        data = data["tool"]["torchslim"]
    cfg = parse_config(data, file=file, root=file.parent.resolve())
    _check_paths(cfg)
    return cfg


def _check_paths(cfg: ProjectConfig) -> None:
    if not confine(cfg, "app", cfg.app).is_dir():
        raise ConfigError(f"{cfg.file}: key `app`: directory {cfg.app!r} does not exist")
    for key, rels in (("requirements", cfg.requirements), ("model", cfg.model)):
        for rel in rels:
            if not confine(cfg, key, rel).is_file():
                raise ConfigError(f"{cfg.file}: key `{key}`: file {rel!r} does not exist")
    for rel in cfg.dev_requirements:
        if not confine(cfg, "dev-requirements", rel).is_file():
            raise ConfigError(f"{cfg.file}: key `dev-requirements`: file {rel!r} does not exist")
    if not cfg.cmd:
        raise ConfigError(
            f"{cfg.file}: key `cmd`: must not be empty; e.g. cmd = ['python', 'app.py']"
        )


# ---- the shared small types -------------------------------------------------------------

Compression = Literal["gzip", "zstd", "none"]
"""How layer blobs are compressed ("none" only for tests and tools, never a build option)."""

Progress = Callable[[str, int, int], None]
"""``progress(label, done, total)``: bytes of one download, upload or layer (total 0: unknown)."""


class Steps(Protocol):
    """What a long operation tells its caller: named steps, byte progress, warnings."""

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


_WHEEL_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}


@dataclass(frozen=True)
class Platform:
    """An image platform as OCI names it: ``linux/amd64``, ``linux/arm64/v8``."""

    os: str
    arch: str  # OCI / Debian name: amd64 | arm64 | …
    variant: str | None = None

    @property
    def wheel_arch(self) -> str:
        """The machine name in wheel tags (``x86_64``, ``aarch64``)."""
        return _WHEEL_ARCH.get(self.arch, self.arch)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.arch, self.variant) if p)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``OS/ARCH[/VARIANT]``; a ConfigError for anything else."""
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ConfigError(f"platform {text!r}: expected OS/ARCH such as linux/amd64")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


BUILD_PLATFORMS = ("linux/amd64", "linux/arm64")


def build_platform(text: str) -> Platform:
    """A platform torchslim builds for: linux/amd64 or linux/arm64."""
    if text.strip() not in BUILD_PLATFORMS:
        raise ConfigError(f"platform {text!r}: expected linux/amd64 or linux/arm64")
    return Platform.parse(text)
