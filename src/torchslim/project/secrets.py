"""Files that must not end up in an image unless the user says so: one table, a why each.

A rule matches a path inside the project (any depth). Rules with ``contains`` match
only files holding one of those markers (a ``*.pem`` with just a certificate is fine,
one with a private key is not). Templates — ``.env.example``, ``.env.sample``,
``.env.template``, ``.env.dist``, ``example.env`` — hold no secrets by convention and
are shipped like any file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from torchslim.errors import ConfigError

_SNIFF_BYTES = 1 << 20
_TEMPLATE_WORDS = {"example", "sample", "template", "dist", "defaults", "tmpl"}
_SSH_KEY = re.compile(r"^id_(rsa|dsa|ecdsa|ed25519)(_sk)?([_.-][\w.-]*)?$")


class SecretFileError(ConfigError):
    """A file that looks like a secret would be shipped, and the config does not say so."""


def _is_env(p: PurePosixPath) -> bool:
    name = p.name
    if not (name == ".env" or name.startswith(".env.") or name.endswith(".env")):
        return False
    return not (set(re.split(r"[._-]", name.lower())) & _TEMPLATE_WORDS)


def _in_dir(*names: str) -> Callable[[PurePosixPath], bool]:
    return lambda p: any(part in names for part in p.parts[:-1])


def _named(*names: str) -> Callable[[PurePosixPath], bool]:
    return lambda p: p.name in names


def _suffix(*suffixes: str) -> Callable[[PurePosixPath], bool]:
    return lambda p: p.name.lower().endswith(suffixes)


def _tail(*parts: str) -> Callable[[PurePosixPath], bool]:
    return lambda p: p.parts[-len(parts) :] == parts


@dataclass(frozen=True)
class SecretRule:
    id: str
    what: str  # the patterns, as the README lists them
    why: str
    matches: Callable[[PurePosixPath], bool]
    dockerignore: tuple[str, ...]  # the same rule for a generated .dockerignore
    contains: tuple[bytes, ...] = ()


SECRET_RULES: tuple[SecretRule, ...] = (
    SecretRule("env-file", ".env, .env.*, *.env", "dotenv file: the service's passwords and tokens",
               _is_env, ("**/.env", "**/.env.*", "**/*.env", "!**/.env.example",
                         "!**/.env.sample", "!**/.env.template", "!**/.env.dist")),
    SecretRule("ssh-key", "id_rsa, id_ed25519, id_* (not .pub)", "SSH private key",
               lambda p: bool(_SSH_KEY.match(p.name)) and not p.name.endswith(".pub"),
               ("**/id_rsa", "**/id_dsa", "**/id_ecdsa", "**/id_ed25519")),
    SecretRule("pem-key", "*.pem, *.crt holding a PRIVATE KEY", "TLS private key",
               _suffix(".pem", ".crt"), ("**/*.pem",), (b"PRIVATE KEY-----",)),
    SecretRule("key-file", "*.key", "private key file", _suffix(".key"), ("**/*.key",)),
    SecretRule("key-store", "*.p12, *.pfx, *.jks, *.keystore", "key store with private keys",
               _suffix(".p12", ".pfx", ".jks", ".keystore"),
               ("**/*.p12", "**/*.pfx", "**/*.jks", "**/*.keystore")),
    SecretRule("aws", ".aws/", "AWS credentials and profiles", _in_dir(".aws"), ("**/.aws",)),
    SecretRule("ssh-dir", ".ssh/", "SSH keys and config", _in_dir(".ssh"), ("**/.ssh",)),
    SecretRule("gnupg", ".gnupg/", "GPG private keys", _in_dir(".gnupg"), ("**/.gnupg",)),
    SecretRule("git-dir", ".git/", "repository history: deleted secrets, remotes with tokens",
               _in_dir(".git"), ("**/.git",)),
    SecretRule("netrc", ".netrc, _netrc", "host passwords used by pip, curl and git",
               _named(".netrc", "_netrc"), ("**/.netrc", "**/_netrc")),
    SecretRule("pypirc", ".pypirc", "PyPI upload tokens", _named(".pypirc"), ("**/.pypirc",)),
    SecretRule("git-credentials", ".git-credentials", "git's stored HTTPS passwords",
               _named(".git-credentials"), ("**/.git-credentials",)),
    SecretRule("docker-config", ".docker/config.json", "container registry logins",
               _tail(".docker", "config.json"), ("**/.docker/config.json",)),
    SecretRule("kube-config", ".kube/config, kubeconfig", "Kubernetes cluster credentials",
               lambda p: _tail(".kube", "config")(p) or p.name == "kubeconfig",
               ("**/.kube/config", "**/kubeconfig")),
    SecretRule("npm-token", ".npmrc with _auth", "npm registry token", _named(".npmrc"),
               ("**/.npmrc",), (b"_auth",)),
    SecretRule("cloud-key", "credentials.json, *service-account*.json, client_secret*.json "
               "holding a private key or client secret", "cloud service-account key",
               lambda p: p.name == "credentials.json" or (p.suffix == ".json" and (
                   "service-account" in p.name or p.name.startswith("client_secret"))),
               ("**/credentials.json",), (b'"private_key"', b'"client_secret"')),
    SecretRule("keytab", "*.keytab", "Kerberos keys", _suffix(".keytab"), ("**/*.keytab",)),
    SecretRule("htpasswd", ".htpasswd", "password hashes", _named(".htpasswd"), ("**/.htpasswd",)),
)  # fmt: skip


def _holds(path: Path, markers: tuple[bytes, ...]) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return True  # unreadable: assume the worst; the user can include it deliberately
    return any(m in head for m in markers)


def secret_rule(rel: str, path: Path | None = None) -> SecretRule | None:
    """The rule ``rel`` (a project-relative posix path) falls under, or None."""
    p = PurePosixPath(rel)
    for rule in SECRET_RULES:
        if rule.matches(p) and (not rule.contains or path is None or _holds(path, rule.contains)):
            return rule
    return None


def secret_dockerignore_lines() -> list[str]:
    return [line for rule in SECRET_RULES for line in rule.dockerignore]


__all__ = [
    "SECRET_RULES",
    "SecretFileError",
    "SecretRule",
    "secret_dockerignore_lines",
    "secret_rule",
]
