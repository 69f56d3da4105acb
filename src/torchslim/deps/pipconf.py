"""Read the user's pip configuration exactly as pip does, and translate it for uv.

uv ignores pip.conf and ``PIP_*`` variables, so a user whose company index or
local wheel folder is configured for pip would get a different (or failing)
resolution. We therefore re-implement pip's lookup (``pip config list``):

* files, later overriding earlier: global (``$XDG_CONFIG_DIRS``/pip/pip.conf, default
  ``/etc/xdg``, then ``/etc/pip.conf``), user (``~/.pip/pip.conf`` then
  ``~/.config/pip/pip.conf``; skipped when ``PIP_CONFIG_FILE`` names an existing file),
  site (``$VIRTUAL_ENV/pip.conf``), then ``PIP_CONFIG_FILE``;
  ``PIP_CONFIG_FILE=/dev/null`` disables every file;
* within the merged files a command section (``[install]``) beats ``[global]``;
* ``PIP_<OPTION>`` environment variables beat every file.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torchslim.errors import ConfigError

# The options that influence where packages come from; pip spells them this way.
_MULTI = ("extra-index-url", "find-links", "constraint", "trusted-host")
_SINGLE = ("index-url", "cert", "no-index")
_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n", ""}


@dataclass(frozen=True)
class IndexSettings:
    """Where packages come from, merged from pip configuration (and requirement files)."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    cert: str | None = None
    constraints: tuple[str, ...] = ()
    no_index: bool = False
    trusted_hosts: tuple[str, ...] = ()
    sources: tuple[str, ...] = field(default=(), compare=False)  # files read, for messages

    def index_urls(self) -> list[str]:
        """Every index uv will query, in order (for error messages)."""
        if self.no_index:
            return []
        return [self.index_url or "https://pypi.org/simple", *self.extra_index_urls]

    def uv_args(self) -> list[str]:
        """uv command-line flags that reproduce pip's behaviour for these settings."""
        args: list[str] = []
        if self.no_index:
            args.append("--no-index")
        else:
            if self.index_url:
                args += ["--index-url", self.index_url]
            for url in self.extra_index_urls:
                args += ["--extra-index-url", url]
            # pip picks the best version across *all* indexes; uv by default stops at
            # the first index that knows a name, which breaks mixed local/PyPI setups.
            args += ["--index-strategy", "unsafe-best-match"]
        for link in self.find_links:
            args += ["--find-links", _absolute_location(link)]
        for c in self.constraints:
            args += ["--constraint", _absolute_location(c)]
        for host in self.trusted_hosts:
            args += ["--allow-insecure-host", host]
        return args

    def uv_env(self) -> dict[str, str]:
        """Environment for uv: trust ``cert`` if set, else the system store, as pip does."""
        if self.cert:
            return {"SSL_CERT_FILE": str(Path(self.cert).expanduser())}
        return {"UV_SYSTEM_CERTS": "1"}

    def ca_bundle(self) -> str | None:
        """The CA file our own HTTP client should trust (cert, else SSL_CERT_FILE, else system)."""
        if self.cert:
            return str(Path(self.cert).expanduser())
        env = os.environ.get("SSL_CERT_FILE")
        if env and Path(env).is_file():
            return env
        for candidate in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"):
            if Path(candidate).is_file():
                return candidate
        return None


def _absolute_location(value: str) -> str:
    """Make a local path absolute (uv may run from another directory); leave URLs alone."""
    if "://" in value:
        return value
    return str(Path(value).expanduser().absolute())


def default_config_files(environ: Mapping[str, str]) -> list[Path]:
    """pip's file list in override order, honouring ``PIP_CONFIG_FILE`` the way pip does."""
    env_file = environ.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []
    xdg_dirs = environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files = [Path(d) / "pip" / "pip.conf" for d in xdg_dirs.split(os.pathsep) if d]
    files.append(Path("/etc/pip.conf"))
    if not (env_file and Path(env_file).exists()):
        home = Path(environ.get("HOME") or Path.home())
        xdg_home = environ.get("XDG_CONFIG_HOME") or str(home / ".config")
        files += [home / ".pip" / "pip.conf", Path(xdg_home) / "pip" / "pip.conf"]
    venv = environ.get("VIRTUAL_ENV")
    if venv:
        files.append(Path(venv) / "pip.conf")
    if env_file:
        files.append(Path(env_file))
    return files


def _normalize(key: str) -> str:
    key = key.lower().replace("_", "-")
    return key[2:] if key.startswith("--") else key


def _read_file(path: Path) -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read pip config ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: pip config is not UTF-8 text; fix or remove it") from None
    try:
        parser.read_string(text, source=str(path))
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(
            f"{path}:{exc.lineno}: pip config line {exc.line.strip()!r} is outside a section; "
            "start the file with [global]"
        ) from None
    except configparser.ParsingError as exc:
        lineno, line = exc.errors[0]
        raise ConfigError(
            f"{path}:{lineno}: malformed pip config line {line.strip()!r}; expected 'key = value'"
        ) from None
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{path}: malformed pip config: {first}") from None
    return {s: {_normalize(k): v for k, v in parser.items(s)} for s in parser.sections()}


def _bool(value: str, where: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ConfigError(f"{where}: {value!r} is not a boolean; use true or false")


def load_pip_settings(
    environ: Mapping[str, str] = os.environ,
    config_files: Sequence[Path] | None = None,
    *,
    command: str = "install",
) -> IndexSettings:
    """Index settings as ``pip <command>`` would see them (files, then sections, then env)."""
    files = default_config_files(environ) if config_files is None else list(config_files)
    global_vals: dict[str, tuple[str, str]] = {}
    command_vals: dict[str, tuple[str, str]] = {}
    read: list[str] = []
    for path in files:
        if not path.is_file():
            continue
        sections = _read_file(path)
        read.append(str(path))
        for key, value in sections.get("global", {}).items():
            global_vals[key] = (value, str(path))
        for key, value in sections.get(command, {}).items():
            command_vals[key] = (value, str(path))

    merged: dict[str, tuple[str, str]] = {**global_vals, **command_vals}
    for name, value in environ.items():
        if name.startswith("PIP_") and name != "PIP_CONFIG_FILE":
            merged[_normalize(name[4:])] = (value, f"${name}")

    def multi(key: str) -> tuple[str, ...]:
        return tuple(merged[key][0].split()) if key in merged else ()

    def single(key: str) -> str | None:
        value = merged[key][0].strip() if key in merged else ""
        return value or None

    no_index = _bool(*merged["no-index"]) if "no-index" in merged else False
    return IndexSettings(
        index_url=single("index-url"),
        extra_index_urls=multi("extra-index-url"),
        find_links=multi("find-links"),
        cert=single("cert"),
        constraints=multi("constraint"),
        no_index=no_index,
        trusted_hosts=multi("trusted-host"),
        sources=tuple(read),
    )


__all__ = ["IndexSettings", "default_config_files", "load_pip_settings"]
