"""Bases other than torchslim's Debian one: open them, probe them once, add the app user.

A base is ``oci:DIR[:ref]``, ``docker-archive:FILE`` or a registry reference
(``python:3.11-slim``, ``docker://127.0.0.1:5000/team/base:v1``). Its layers are
reused byte for byte; the probe that reads its files is cached by manifest digest.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from torchslim.cache import cache_root
from torchslim.errors import BuildError, ConfigError
from torchslim.oci.archive import read_docker_archive
from torchslim.oci.image import Image
from torchslim.oci.layout import read_oci_layout
from torchslim.oci.pull import read_registry_image
from torchslim.probe import BaseProbe, probe_image


def is_registry_ref(base: str) -> bool:
    return not base.startswith(("oci:", "docker-archive:"))


def open_base(base: str, *, os_name: str, arch: str, tls_verify: bool = True) -> Image:
    """The base image for one platform (a registry base resolved to its manifest digest)."""
    if base.startswith("oci:"):
        path, _, ref = base.removeprefix("oci:").partition(":")
        image = read_oci_layout(Path(path), ref or None, platform=(os_name, arch))
    elif base.startswith("docker-archive:"):
        path, _, ref = base.removeprefix("docker-archive:").partition(":")
        if not Path(path).is_file():
            raise ConfigError(f"base {base!r}: {path} does not exist")
        image = read_docker_archive(Path(path), ref or None)
    else:
        return read_registry_image(
            base.removeprefix("docker://"), platform=(os_name, arch), tls_verify=tls_verify
        )
    config = image.config()
    got = (str(config.get("os") or ""), str(config.get("architecture") or ""))
    if got != (os_name, arch):
        raise BuildError(
            f"base {base!r} is a {got[0]}/{got[1]} image but {os_name}/{arch} was asked for; "
            "pick a base built for your platform or change --platform"
        )
    return image


def cached_probe(image: Image) -> BaseProbe:
    """Probe ``image`` (streaming every layer), or reuse the probe of that manifest digest."""
    path = cache_root() / "probes" / (image.digest().removeprefix("sha256:") + ".json")
    try:
        return BaseProbe.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError):
        pass
    probe = probe_image(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(probe.to_dict(), sort_keys=True))
    os.replace(tmp, path)
    return probe


def user_files(probe: BaseProbe, uid: int, name: str, home: str) -> dict[str, str] | None:
    """``/etc/passwd`` and ``/etc/group`` with the app user added, or None if it exists.

    A layer replaces a file whole, so the base's lines are kept as they were.
    """
    if probe.user_for(uid) is not None:
        return None
    taken = {n for n, _ in probe.users.values()}
    user = name if name not in taken else f"{name}{uid}"
    passwd = probe.passwd_text
    if passwd and not passwd.endswith("\n"):
        passwd += "\n"
    passwd += f"{user}:x:{uid}:{uid}::{home}:/sbin/nologin\n"
    group = probe.group_text
    if uid not in probe.groups:
        if group and not group.endswith("\n"):
            group += "\n"
        group += f"{user}:x:{uid}:\n"
    return {"etc/passwd": passwd, "etc/group": group}
