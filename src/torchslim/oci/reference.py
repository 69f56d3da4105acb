"""Image references: ``registry/repository[:tag][@digest]``, normalized the way docker does."""

from __future__ import annotations

import re
from dataclasses import dataclass

from torchslim.errors import ConfigError
from torchslim.oci.auth import DOCKER_HUB

_LOOPBACK = ("127.", "localhost", "[::1]")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_HOST_RE = re.compile(r"^(?:[a-zA-Z0-9.-]+|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")
# "user:password@host/repo": credentials written into a reference (never echoed)
_USERINFO_RE = re.compile(r"^(docker://)?[^/@]+@(?!sha256:)")


@dataclass(frozen=True)
class Reference:
    """``registry/repository[:tag][@digest]``, normalized the way docker does."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/``: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)


def parse_reference(text: str) -> Reference:
    """``python:3.11-slim`` → ``docker.io/library/python:3.11-slim``; ``docker://`` is accepted."""
    raw = text.strip()
    name = raw.removeprefix("docker://")
    userinfo = _USERINFO_RE.match(raw) is not None
    shown = _USERINFO_RE.sub(lambda m: f"{m.group(1) or ''}***@", raw) if userinfo else raw

    def bad(why: str) -> ConfigError:
        return ConfigError(
            f"invalid image reference {shown!r}: {why}; write "
            "REGISTRY/REPOSITORY[:TAG][@DIGEST], e.g. python:3.11-slim or "
            "127.0.0.1:5000/team/app:1.0"
        )

    if not name:
        raise bad("it is empty")
    if userinfo:
        raise bad("credentials do not belong in a reference; log in with `podman login`")
    digest: str | None = None
    if "@" in name:
        name, _, digest = name.partition("@")
        if not _DIGEST_RE.fullmatch(digest):
            raise bad("the digest must be sha256:<64 lowercase hex>")
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, path = first, rest
        if not _HOST_RE.fullmatch(registry):
            raise bad(f"{registry!r} is not a registry host[:port]")
    else:
        registry, path = DOCKER_HUB, name
    tag: str | None = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise bad(f"tag {tag!r} has characters a tag may not have")
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not _REPO_RE.fullmatch(path):
        raise bad(f"repository {path!r} must be lowercase letters, digits and . _ - separators")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, path, tag, digest)


def as_reference(ref: Reference | str) -> Reference:
    return ref if isinstance(ref, Reference) else parse_reference(ref)


def is_loopback(registry: str) -> bool:
    return registry.startswith(_LOOPBACK)
