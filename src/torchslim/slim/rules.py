"""Named slimming rules tied to profiles.

A rule says *what* it removes (globs relative to site-packages), *why* (one line), and
under which profiles those files are *kept*. Rules never look outside site-packages and
never touch ``*.dist-info`` (RECORD, METADATA, licenses). Adding a rule (e.g. the CUDA
library groups: NCCL kept under ``distributed``, CUPTI, cuFile, Triton kept under
``compile``) is one more ``Rule`` in ``RULES`` plus its test.

Files are matched by the first rule in ``RULES`` order whose globs and guard accept them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from torchslim.errors import ConfigError
from torchslim.slim.globs import glob_match
from torchslim.slim.site import SiteView

PROFILES: dict[str, str] = {
    "inference": "run a trained model: drop tests, tools, headers, static libs; strip symbols",
    "compile": "inference plus what torch.compile needs: torch/include, CMake config, Triton",
    "distributed": "inference plus multi-process/multi-GPU parts (NCCL, NVSHMEM)",
    "full": "remove nothing but bytecode caches (the --no-slim baseline of a wheel install)",
}
DEFAULT_PROFILE = "inference"

Guard = Callable[[SiteView, str], bool]
Action = Literal["remove", "strip"]

# Files no rule may touch: package metadata (pip / importlib.metadata read it; licenses
# inside carry ``test`` directories of their own).
PROTECTED: tuple[str, ...] = ("*.dist-info/**",)


@dataclass(frozen=True)
class Rule:
    """One named slimming rule. ``matches`` is the path test; ``guard`` looks at the file."""

    id: str
    why: str
    keep_in: frozenset[str]
    patterns: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    action: Action = "remove"
    guard: Guard | None = field(default=None, compare=False, repr=False)

    def matches(self, relpath: str) -> bool:
        """True when a path relative to site-packages falls under this rule's globs."""
        if any(glob_match(p, relpath) for p in PROTECTED + self.exclude):
            return False
        return any(glob_match(p, relpath) for p in self.patterns)

    def applies(self, view: SiteView, relpath: str) -> bool:
        """``matches`` plus the guard's look at the file itself."""
        return self.matches(relpath) and (self.guard is None or self.guard(view, relpath))

    def active_in(self, profile: str) -> bool:
        """True when this rule removes (or strips) files under ``profile``."""
        return profile not in self.keep_in


def _is_unused_test_suite(view: SiteView, relpath: str) -> bool:
    suite = view.test_suite_dir(relpath)
    return suite is not None and view.is_removable_test_suite(suite)


def _is_strippable_elf(view: SiteView, relpath: str) -> bool:
    info = view.elf(relpath)
    return info is not None and info.strippable


_ALL_BUT_FULL = frozenset({"full"})

RULES: tuple[Rule, ...] = (
    Rule(
        id="pycache",
        why="bytecode shipped in wheels or left by installs; replaced by deterministic .pyc",
        keep_in=frozenset(),
        patterns=("**/__pycache__/**", "**/*.pyc", "**/*.pyo"),
    ),
    Rule(
        id="torch-test-binaries",
        why="torch/test holds C++ unit-test executables; nothing imports or runs them",
        keep_in=_ALL_BUT_FULL,
        patterns=("torch/test/**",),
    ),
    Rule(
        id="torch-bin-tests",
        why="torch/bin holds C++ tests, c10d store tests and protoc; only torch_shm_manager runs",
        keep_in=_ALL_BUT_FULL,
        patterns=("torch/bin/**",),
        # torch.multiprocessing spawns it to share tensors between processes.
        exclude=("torch/bin/torch_shm_manager",),
    ),
    Rule(
        id="torch-test-libraries",
        why="shared libraries built only for torch's own tests (TorchBind, JIT backends, AOTI)",
        keep_in=_ALL_BUT_FULL,
        patterns=(
            "torch/lib/*_test.so",
            "torch/lib/libtorchbind_test.so",
            "torch/lib/libjitbackend_test.so",
            "torch/lib/libbackend_with_compiler.so",
            "torch/lib/libaoti_custom_ops.so",
        ),
    ),
    Rule(
        id="torch-headers",
        why="C++ headers, needed only to build extensions or by torch.compile's C++ codegen",
        keep_in=frozenset({"compile", "full"}),
        patterns=("torch/include/**", "torch/lib/libshm/*.h", "torch/lib/libshm_windows/*.h"),
    ),
    Rule(
        id="torch-cmake-config",
        why="CMake package files for building against libtorch; unused at run time",
        keep_in=frozenset({"compile", "full"}),
        patterns=("torch/share/cmake/**",),
    ),
    Rule(
        id="static-libraries",
        why="static archives are linked at build time; a running process never loads them",
        keep_in=_ALL_BUT_FULL,
        patterns=("**/*.a",),
    ),
    Rule(
        id="package-test-suites",
        why="packages' own tests/ and test/ suites (with test_*.py) that the package never imports",
        keep_in=_ALL_BUT_FULL,
        patterns=("*/**/tests/**", "*/**/test/**"),
        # torch.testing is imported by torch itself; it is not named tests/ but say so.
        exclude=("torch/testing/**",),
        guard=_is_unused_test_suite,
    ),
    Rule(
        id="strip-symbols",
        why="static symbol tables and debug info in ELF files; the dynamic loader never reads them",
        keep_in=_ALL_BUT_FULL,
        patterns=("**/*.so", "**/*.so.*", "**/bin/*"),
        action="strip",
        guard=_is_strippable_elf,
    ),
)


def check_profile(profile: str) -> str:
    """Return ``profile`` when known, else raise a one-line ConfigError naming the choices."""
    if profile not in PROFILES:
        valid = ", ".join(PROFILES)
        raise ConfigError(f"unknown slim profile {profile!r}: use one of {valid}")
    return profile


def rule_by_id(id: str) -> Rule:  # noqa: A002 - the public API names it ``id``
    """The rule with this id; KeyError names the known ids."""
    for rule in RULES:
        if rule.id == id:
            return rule
    raise KeyError(f"unknown slim rule {id!r}; known: {', '.join(r.id for r in RULES)}")


def rules_for(profile: str) -> tuple[Rule, ...]:
    """Rules that act under ``profile`` (validated), in matching order."""
    check_profile(profile)
    return tuple(r for r in RULES if r.active_in(profile))
