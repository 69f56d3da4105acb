"""Which kind of base a project names, and what the generated Dockerfile must do for it.

The venv lives at ``/opt/venv`` in every case, so the runtime stage copies
one fixed path whatever the base's own site-packages layout is. What *does*
differ per base is where the interpreter sits (the venv's ``bin/python``
links to it, so builder and runtime must have it at the same path), whether
a shell and ``useradd`` exist, and whether torch is already there.

| base                          | python                     | shell | user creation |
|-------------------------------|----------------------------|-------|---------------|
| ``debian`` (torchslim's)      | /usr/bin/python3.X         | no    | none: the rootfs has it; a numeric USER needs no passwd entry |
| ``python:3.X-slim``           | /usr/local/bin/python3.X   | yes   | groupadd/useradd |
| ``nvidia/cuda:*-runtime``     | none: apt python3          | yes   | groupadd/useradd (24.04 has uid 1000 `ubuntu`: guarded) |
| ``pytorch/pytorch:*-runtime`` | /opt/conda/bin/python (conda) | yes | groupadd/useradd; venv sees conda's torch |
| ``gcr.io/distroless/python3`` | /usr/bin/python3.X         | no    | none (distroless has uid 65532 `nonroot`; numeric USER works) |
"""  # noqa: E501

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from torchslim.lint.images import parse_ref


class BaseKind(Enum):
    TORCHSLIM = "debian"
    PYTHON = "python"
    CUDA = "cuda"
    CONDA = "conda"
    DISTROLESS = "distroless"
    DEBIAN = "debian-like"  # debian:/ubuntu: images with apt but no Python yet


@dataclass(frozen=True)
class BasePlan:
    kind: BaseKind
    builder: str
    runtime: str
    builder_apt: tuple[str, ...]  # packages the builder needs for `python3 -m venv`
    runtime_apt: tuple[str, ...]  # packages the runtime needs for the interpreter
    shell: bool  # runtime has /bin/sh and useradd
    system_site_packages: bool  # venv sees the base's packages (conda's torch)
    install_torch: bool

    @property
    def has_apt(self) -> bool:
        return self.kind in (
            BaseKind.PYTHON,
            BaseKind.CUDA,
            BaseKind.CONDA,
            BaseKind.DEBIAN,
        )


_LOCAL = ("oci:", "docker-archive:", "/", "./", "../")


def plan_base(base: str, python: str) -> BasePlan:
    if base == "debian" or base.startswith(_LOCAL):
        # torchslim's own base (or a local layout of it): a Dockerfile cannot FROM a
        # local path, so the defaults are the python:slim pair; pass --build-arg to use it.
        slim = f"python:{python}-slim"
        return BasePlan(BaseKind.TORCHSLIM, slim, slim, (), (), False, False, True)
    ref = parse_ref(base)
    if ref.name == "python":
        return BasePlan(BaseKind.PYTHON, base, base, (), (), True, False, True)
    if ref.name.endswith("nvidia/cuda"):
        return BasePlan(
            BaseKind.CUDA,
            base,
            base,
            ("python3", "python3-venv"),
            ("python3",),
            True,
            False,
            True,
        )
    if ref.name == "pytorch/pytorch" or "conda" in ref.name or "miniforge" in ref.name:
        return BasePlan(BaseKind.CONDA, base, base, (), (), True, True, False)
    if ref.name.startswith("gcr.io/distroless/python3"):
        # distroless keeps python at /usr/bin; so must the builder: Debian's python3-venv.
        builder = "debian:12-slim" if "debian12" in ref.name else "debian:13-slim"
        return BasePlan(
            BaseKind.DISTROLESS,
            builder,
            base,
            ("python3", "python3-venv"),
            (),
            False,
            False,
            True,
        )
    return BasePlan(
        BaseKind.DEBIAN, base, base, ("python3", "python3-venv"), ("python3",), True, False, True
    )
