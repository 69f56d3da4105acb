"""Registry credentials: docker/podman auth files, credential helpers, and auth challenges.

Secrets live only in :class:`Credentials` (whose repr hides them) and in the
``Authorization`` headers built from them; no message or log line names them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchslim.errors import ConfigError

DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_HELPER_TIMEOUT_S = 30


@dataclass(frozen=True)
class Credentials:
    """A username and a secret (password or token); the secret is never shown."""

    username: str
    password: str = field(repr=False)
    # An OAuth2 refresh token (docker's "identitytoken"): exchanged at the token realm.
    identity_token: str | None = field(default=None, repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header: scheme (``basic``/``bearer``) and parameters."""

    scheme: str
    params: dict[str, str]


_PARAM = re.compile(r'\s*([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenge(header: str) -> Challenge:
    """``Bearer realm="https://auth",service="reg",scope="repository:a:pull"`` → Challenge."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            break
        quoted, bare = m.group(2), m.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare or ""
        params[m.group(1).lower()] = value
        pos = m.end()
    return Challenge(scheme.lower(), params)


def registry_host(registry: str) -> str:
    """The key a registry has in auth files: ``https://index.docker.io/v1/`` → ``docker.io``."""
    host = re.sub(r"^[a-z]+://", "", registry.strip().lower()).split("/", 1)[0]
    return DOCKER_HUB if host in _HUB_ALIASES else host


def auth_files() -> list[Path]:
    """Where docker and podman keep logins, most specific first."""
    files: list[Path] = []
    if explicit := os.environ.get("REGISTRY_AUTH_FILE"):
        files.append(Path(explicit))
    docker_dir = os.environ.get("DOCKER_CONFIG")
    files.append(
        Path(docker_dir) / "config.json" if docker_dir else _home() / ".docker/config.json"
    )
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        files.append(Path(runtime) / "containers" / "auth.json")
    return files


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path} is not readable JSON ({type(exc).__name__}); fix or remove it"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object; fix or remove it")
    return data


def _inline(entry: Any, path: Path, host: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    token = entry.get("identitytoken") or None
    if entry.get("auth"):
        try:
            user, sep, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            sep = ""
        if not sep:
            raise ConfigError(
                f"{path}: auths[{host!r}].auth is not base64 of user:password; log in again"
            )
        return Credentials(user, password, token)
    if entry.get("username"):
        return Credentials(str(entry["username"]), str(entry.get("password") or ""), token)
    if token:
        return Credentials("<token>", "", str(token))
    return None


def _auth_entry(auths: dict[str, Any], host: str) -> Any:
    for key, entry in auths.items():
        if registry_host(key) == host:
            return entry
    return None


def helper_credentials(helper: str, host: str, source: Path) -> Credentials | None:
    """Ask ``docker-credential-<helper> get``; None when it has nothing for ``host``."""
    exe = shutil.which(f"docker-credential-{helper}")
    if exe is None:
        raise ConfigError(
            f"{source} names credential helper {helper!r} but docker-credential-{helper} is not "
            "on PATH; install it or remove it from the file"
        )
    # Docker Hub logins are stored under the v1 URL by docker login.
    keys = ["https://index.docker.io/v1/", DOCKER_HUB] if host == DOCKER_HUB else [host]
    for key in keys:
        try:
            proc = subprocess.run(
                [exe, "get"],
                input=key,
                capture_output=True,
                text=True,
                timeout=_HELPER_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(
                f"credential helper docker-credential-{helper} failed ({type(exc).__name__}); "
                "check that it works: echo HOST | docker-credential-NAME get"
            ) from None
        if proc.returncode != 0:
            continue  # "credentials not found": try the next key, then give up quietly
        try:
            data = json.loads(proc.stdout)
            user, secret = str(data["Username"]), str(data["Secret"])
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"credential helper docker-credential-{helper} returned malformed JSON for "
                f"{host}; check the helper"
            ) from None
        if user == "<token>":
            return Credentials(user, "", secret)
        return Credentials(user, secret)
    return None


def load_credentials(registry: str) -> Credentials | None:
    """Credentials for ``registry`` from the first auth file that has any.

    Per file: ``credHelpers[host]``, then ``credsStore``, then inline ``auths``
    (base64 ``auth``, or ``username``/``password``), as docker resolves them.
    """
    host = registry_host(registry)
    for path in auth_files():
        data = _load(path)
        if data is None:
            continue
        helpers = data.get("credHelpers") or {}
        if isinstance(helpers, dict) and host in {registry_host(k) for k in helpers}:
            name = next(str(v) for k, v in helpers.items() if registry_host(k) == host)
            found = helper_credentials(name, host, path)
            if found is not None:
                return found
        auths = data.get("auths") or {}
        entry = _auth_entry(auths, host) if isinstance(auths, dict) else None
        if data.get("credsStore"):
            found = helper_credentials(str(data["credsStore"]), host, path)
            if found is not None:
                return found
        creds = _inline(entry, path, host)
        if creds is not None:
            return creds
    return None
