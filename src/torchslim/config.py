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
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from torchslim.confined import escape_problem, exists
from torchslim.errors import ConfigError
from torchslim.smokeconfig import RequestConfig

CONFIG_FILE = "torchslim.toml"
PYPROJECT = "pyproject.toml"
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
DEFAULT_VERSION = "0.1.0"  # when neither the config nor pyproject.toml's [project] says

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


def _image_path(path: str) -> None:
    """An absolute, normalised path inside the image that is not ``/`` itself."""
    p = PurePosixPath(path)
    if not p.is_absolute() or ".." in p.parts or str(p) == "/" or str(p) != path.rstrip("/"):
        raise ValueError(f"{path!r} must be an absolute path in the image, like '/app/uploads'")


class ProjectConfig(_Model):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")] = DEFAULT_VERSION
    python: Annotated[str, Field(pattern=r"^3\.\d+$")] = "3.11"
    torch: Annotated[str, Field(pattern=r"^\d+\.\d+(\.\d+)?$")]
    variant: Annotated[str, Field(pattern=r"^(cpu|cu\d{3})$")] = "cpu"
    # None: found where the project keeps them (torchslim.project.find_requirements).
    requirements: list[Annotated[str, Field(min_length=1)]] | None = None
    dev_requirements: list[Annotated[str, Field(min_length=1)]] | None = None
    extras: list[str] = []
    # PEP 735 [dependency-groups] of pyproject.toml installed with prod (dev ones never are)
    groups: list[str] = []
    app: str = "."
    include: list[Annotated[str, Field(min_length=1)]] = []
    exclude: list[Annotated[str, Field(min_length=1)]] = []
    files: dict[str, str] = {}
    model: list[Annotated[str, Field(min_length=1)]] = []
    writable: list[str] = []
    allow_missing: dict[str, Annotated[str, Field(min_length=1)]] = {}
    cmd: list[str]
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    health: Annotated[str, Field(pattern=r"^/")] | None = None
    user: Annotated[int, Field(ge=1, le=2**31 - 1)] = 1000
    base: str = "debian"
    mirror: str | None = None
    profile: str = "inference"
    # "all": a hash-based .pyc for every module in site-packages; "imported": only for the
    # modules the served proof imported (slim.bytecode), the rest compile on first import.
    bytecode: Literal["all", "imported"] = "all"
    # How layers are compressed, and at what level (None: the format's default); the
    # command line's --compression and --compression-level replace them for one build.
    compression: Literal["gzip", "zstd", "zstd:chunked", "estargz"] = "gzip"
    compression_level: int | None = None
    keep: list[str] = []
    apt: list[str] = []
    # "tini": Debian's tini is PID 1 and forwards SIGTERM to cmd (for a service that
    # ignores it as PID 1); "none": cmd is PID 1, as the proof checks; "auto": none when
    # the served proof shows cmd stops on SIGTERM as PID 1, else tini.
    init: Literal["none", "tini", "auto"] = "none"
    platform: list[str] = ["linux/amd64"]
    env: dict[str, str] = {}
    labels: dict[str, str] = {}
    smoke: list[str] = []
    requests: list[RequestConfig] = []  # the served proof's smoke requests (smokeconfig)
    proof_timeout: Annotated[int, Field(ge=5, le=3600)] = 180  # seconds to start and answer
    source: str | None = None
    # org.opencontainers.image.licenses (an SPDX expression) and .description; default:
    # pyproject.toml's [project].license / .description (torchslim.project.metadata).
    license: Annotated[str, Field(min_length=1)] | None = None
    description: Annotated[str, Field(min_length=1)] | None = None
    healthcheck: HealthcheckConfig = HealthcheckConfig()
    # Packages whose sdists may be built (in the sandbox) when no wheel fits; none by default.
    build_from_source: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]] = []

    # Where the config was read from; set by load_config, not by the file.
    root: Path = Field(default=Path("."), exclude=True)
    file: Path = Field(default=Path(CONFIG_FILE), exclude=True)

    _lists = field_validator(
        "requirements",
        "dev_requirements",
        "extras",
        "groups",
        "include",
        "exclude",
        "model",
        "writable",
        "keep",
        "apt",
        "platform",
        mode="before",
    )(_as_list)

    @field_validator("writable")
    @classmethod
    def _image_dirs(cls, v: list[str]) -> list[str]:
        for p in v:
            _image_path(p)
        return v

    @field_validator("files")
    @classmethod
    def _file_map(cls, v: dict[str, str]) -> dict[str, str]:
        for src, dest in v.items():
            if not src or src.startswith("/") or ".." in PurePosixPath(src).parts:
                raise ValueError(f"source {src!r} must be a path inside the project")
            _image_path(dest)
        return v

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


def _problems_text(file: Path, problems: list[str]) -> str:
    """One problem: one line. Several: a count, then one problem per line."""
    if len(problems) == 1:
        return f"{file}: {problems[0]}"
    return f"{file}: {len(problems)} configuration errors:\n" + "\n".join(
        f"  {p}" for p in problems
    )


def parse_config(data: dict[str, Any], *, file: Path, root: Path) -> ProjectConfig:
    """Validate ``data``; every problem of the file (types, keys, paths) in one ConfigError."""
    problems: list[str] = []
    cfg = None
    try:
        cfg = ProjectConfig.model_validate(data)
    except ValidationError as exc:
        problems += [_describe(dict(e)) for e in exc.errors()]
    problems += path_problems(data, root)
    if problems:
        raise ConfigError(_problems_text(file, problems))
    assert cfg is not None
    return cfg.model_copy(update={"root": root, "file": file})


def _strings(value: Any) -> list[str]:
    value = _as_list(value)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _outside(out: list[str], root: Path, key: str, rel: str) -> bool:
    """Whether ``rel`` leaves the project (or cannot be looked up): said in ``out``."""
    why = escape_problem(root, key, rel)
    if why:
        out.append(why)
    return why is not None


def path_problems(data: dict[str, Any], root: Path) -> list[str]:
    """Files and folders the config names that are not there (read from the raw values,
    so they are reported together with type errors)."""
    # project (the reader of requirement sources) imports config: imported here, late.
    from torchslim.project.items import requirement_entry

    out: list[str] = []
    app = data.get("app", ".")
    if isinstance(app, str) and not _outside(out, root, "app", app) and not (root / app).is_dir():
        out.append(f"key `app`: directory {app!r} does not exist")
    for key in ("requirements", "dev-requirements"):
        for entry in _strings(data.get(key, [])):
            try:
                kind = requirement_entry(entry, root)
            except ValueError as exc:
                out.append(f"key `{key}`: {exc}")
                continue
            inside = kind == "file" and not _outside(out, root, key, entry)
            if inside and not (root / entry).is_file():
                out.append(f"key `{key}`: file {entry!r} does not exist")
    for entry in _strings(data.get("model", [])):
        inside = not _outside(out, root, "model", entry)
        if inside and not any(c in entry for c in "*?[") and not (root / entry).exists():
            out.append(f"key `model`: file or folder {entry!r} does not exist")
    files = data.get("files", {})
    for src in files if isinstance(files, dict) else ():
        inside = isinstance(src, str) and bool(src) and not _outside(out, root, "files", src)
        if inside and not (root / src).is_file():
            out.append(f"key `files`: file {src!r} does not exist")
    for request in data.get("requests") or [] if isinstance(data.get("requests"), list) else []:
        for key in ("upload", "body"):
            src = request.get(key) if isinstance(request, dict) else None
            if not isinstance(src, str) or not src or _outside(out, root, key, src):
                continue
            if not (root / src).is_file():
                out.append(f"key `requests`: {key} file {src!r} does not exist")
    if isinstance(data.get("cmd"), (list, str)) and not data["cmd"]:
        out.append("key `cmd`: must not be empty; e.g. cmd = ['python', 'app.py']")
    return out


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file, or a one-line ConfigError naming it."""
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
    if py.is_file() and "torchslim" in read_toml(py).get("tool", {}):
        return py
    raise ConfigError(
        f"{own}: not found; write it from the project with `torchslim init {project}` "
        "(or add [tool.torchslim] to pyproject.toml)"
    )


def load_config(project: Path) -> ProjectConfig:
    file = find_config(project)
    data = read_toml(file)
    pyproject = data if file.name == PYPROJECT else None
    if file.name == PYPROJECT:
        data = data["tool"]["torchslim"]
    root = file.parent.resolve()
    if "version" not in data:
        if pyproject is None and (root / PYPROJECT).is_file():
            pyproject = read_toml(root / PYPROJECT)
        version = (pyproject or {}).get("project", {}).get("version")
        if isinstance(version, str):  # [project].version, unless it is dynamic
            data = {**data, "version": version}
    return parse_config(data, file=file, root=root)


# ---- the shared small types -------------------------------------------------------------

Compression = Literal["gzip", "zstd", "zstd:chunked", "estargz", "none"]
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


_TORCH = re.compile(r"^\d+\.\d+(\.\d+)?$")
_VARIANT = re.compile(r"^(cpu|cu\d{3})$")


def with_torch(cfg: ProjectConfig, torch: str | None, variant: str | None) -> ProjectConfig:
    """``cfg`` with ``--torch`` / ``--variant`` from the command line (one project, CPU and
    CUDA images, no edits)."""
    if torch is not None and not _TORCH.match(torch):
        raise ConfigError(f"--torch {torch!r}: expected a release such as 2.13.0")
    if variant is not None and not _VARIANT.match(variant):
        raise ConfigError(f"--variant {variant!r}: expected cpu or cuXYZ (e.g. cu130)")
    update = {k: v for k, v in (("torch", torch), ("variant", variant)) if v is not None}
    return cfg.model_copy(update=update) if update else cfg
