"""The lock step: the project's ``pylock.toml``, read once and written once per build.

The Python part is uv's PEP 751 lock for the *target* platform (plus the dependency
graph in ``[tool.torchslim]``), kept verbatim. The build appends one
``[tool.torchslim.build]`` table (PEP 751 allows tool tables) holding the digest of the
inputs the lock was made from, the resolved Debian package set and a registry base's
digest, so a warm build needs no network at all and two builds from one lock are
identical.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tomllib
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import tomli_w
from packaging.utils import canonicalize_name

from torchslim import debian
from torchslim.atomic import write_atomic
from torchslim.build.layercache import input_key, staging
from torchslim.build.plan import LOCK_NAME, Plan
from torchslim.cache import BlobStore
from torchslim.config import Steps
from torchslim.deps.audit import DevFinding, audit
from torchslim.deps.localpaths import place_in_view
from torchslim.deps.lock import IndexUnreachable, Lock, Target, parse_lock
from torchslim.deps.lock import resolve as uv_resolve
from torchslim.deps.pipconf import IndexSettings
from torchslim.deps.requirements import parse_requirements, read_requirements
from torchslim.errors import BuildError, ConfigError, IntegrityError, NetworkError, ResolveError
from torchslim.project.items import LineRewrite
from torchslim.torchmeta import FAMILY, minor, paired_torch, wheel_variant

# glibc of the Debian suites torchslim builds bases from: which manylinux wheels fit.
SUITE_GLIBC = {"bookworm": "2.36", "trixie": "2.41"}
MARKER = "# --- torchslim: inputs and Debian packages (written by torchslim; do not edit) ---"


@dataclass
class ProjectLock:
    python_text: str  # uv's pylock content, verbatim
    inputs: str = ""  # digest of requirements + torch pin + target
    debian_key: str = ""  # digest of the Debian spec the package set was resolved for
    debian: list[dict[str, Any]] = field(default_factory=list)
    # A registry base pinned once resolved: {"ref": "python:3.11-slim", "digest": "sha256:…"}
    base: dict[str, str] = field(default_factory=dict)
    # The signed InRelease each Debian suite was resolved from: {suite: {url, sha256}}
    # (provenance names them; a warm build fetches none).
    debian_releases: dict[str, dict[str, str]] = field(default_factory=dict)

    def render(self) -> str:
        table: dict[str, Any] = {"inputs": self.inputs}
        if self.debian:
            table["debian-key"] = self.debian_key
            table["debian"] = self.debian
        if self.debian_releases:
            table["debian-releases"] = self.debian_releases
        if self.base:
            table["base"] = self.base
        tool = tomli_w.dumps({"tool": {"torchslim": {"build": table}}})
        return self.python_text.rstrip("\n") + "\n\n" + MARKER + "\n" + tool

    def upload_epochs(self) -> dict[str, int]:
        """Per package, the newest ``upload-time`` of its locked files (0 when unknown)."""
        data = tomllib.loads(self.python_text)
        out: dict[str, int] = {}
        for pkg in data.get("packages", []):
            files = list(pkg.get("wheels", []))
            if "sdist" in pkg:
                files.append(pkg["sdist"])
            times = [
                int(f["upload-time"].timestamp())
                for f in files
                if isinstance(f.get("upload-time"), datetime)
            ]
            out[canonicalize_name(str(pkg.get("name", "")))] = max(times, default=0)
        return out

    def newest_upload_epoch(self) -> int:
        """Newest ``upload-time`` among locked files: a date fixed by the lock itself."""
        return max(self.upload_epochs().values(), default=0)


def read_project_lock(path: Path) -> ProjectLock | None:
    if not path.is_file():
        return None
    text = path.read_text()
    python_text, _, _ = text.partition(MARKER)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid TOML ({exc}); delete it and run the build again to re-lock"
        ) from None
    own = data.get("tool", {}).get("torchslim", {}).get("build")
    if own is None:
        raise ConfigError(
            f"{path}: was not written by torchslim; move it away or pass --relock to replace it"
        )
    return ProjectLock(
        python_text=python_text.rstrip("\n") + "\n",
        inputs=str(own.get("inputs", "")),
        debian_key=str(own.get("debian-key", "")),
        debian=list(own.get("debian", [])),
        base={str(k): str(v) for k, v in dict(own.get("base", {})).items()},
        debian_releases={
            str(suite): {str(k): str(v) for k, v in dict(r).items()}
            for suite, r in dict(own.get("debian-releases", {})).items()
        },
    )


def write_project_lock(path: Path, lock: ProjectLock) -> None:
    write_atomic(path, lock.render())


@dataclass
class Locked:
    """What the lock step settled: the file's content, the Python wheels, the Debian set."""

    project: ProjectLock
    python: Lock | None  # None for --target os (the OS alone needs no Python lock)
    debian: list[debian.DebPackage]


def read(plan: Plan) -> ProjectLock | None:
    """The project's lock as it is on disk (None with --relock or when there is none)."""
    return None if plan.relock else read_project_lock(plan.lock_path)


def target_of(plan: Plan, glibc: str | None) -> Target:
    """The wheel target: the plan's Python and CPU, and the base's glibc."""
    if plan.debian_base:
        glibc = SUITE_GLIBC.get(plan.debian.suite, "2.36")
    elif glibc is None:
        raise BuildError(
            f"base {plan.cfg.base!r} has no glibc (musl or none): manylinux wheels "
            "cannot run on it; use a glibc base such as debian or python:3.X-slim"
        )
    return Target(python=plan.cfg.python, arch=plan.platform.wheel_arch, glibc=glibc)


def _inputs(plan: Plan, target: Target) -> str:
    reqs = plan.requirements
    files = [parse_requirements(f) for f in reqs.requirement_files]
    return input_key(
        reqs.requirements_text(),
        files,
        plan.torch.requirement,
        str(plan.platform),
        plan.cfg.python,
        dataclasses.asdict(target),
        *([sorted(plan.cfg.build_from_source)] if plan.cfg.build_from_source else []),
    )


def _requirement_files(plan: Plan, tmp: Path) -> list[Path]:
    """What uv resolves: the project's pip files as they are (their options apply), plus one
    file for requirements from anywhere else (pyproject, a lock given as input, the config).
    Lines an override replaces are read from copies in ``tmp`` (see :func:`overlay`)."""
    reqs = plan.requirements
    files = overlay(plan.cfg.root, list(reqs.requirement_files), reqs.rewrites, tmp)
    names = {f.name for f in reqs.requirement_files} | {
        f.relative_to(plan.cfg.root).as_posix()
        for f in reqs.requirement_files
        if f.is_relative_to(plan.cfg.root)
    }
    rest = [i for i in reqs.prod if i.source.split(":", 1)[0] not in names]
    if rest:
        other = tmp / "project-requirements.txt"
        # The indexes a lock or pyproject names for its packages (a private index, a
        # Poetry/uv source); PyPI is the default already, and a mirror may stand for it.
        indexes = sorted({i.index for i in rest if i.index and not _is_pypi(i.index)})
        lines = [f"--extra-index-url {u}" for u in indexes] + [
            f"{i.text} ; {i.marker}" if i.marker and ";" not in i.text else i.text for i in rest
        ]
        other.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        files.append(other)
    return files


def overlay(
    root: Path, files: list[Path], rewrites: Sequence[LineRewrite], tmp: Path
) -> list[Path]:
    """``files`` as one build reads them: where ``rewrites`` replace lines, a view of the
    project in ``tmp/tree`` holds copies of the requirement files with those lines replaced
    (the rest of the project linked, so ``-r``, ``-c``, ``./pkg`` and find-links resolve as
    before) and the copies are returned in their place. The project's files stay as they are.
    """
    by_file: dict[Path, dict[int, str | None]] = {}
    for rewrite in rewrites:
        file, _, line = rewrite.source.rpartition(":")
        if file and line.isdigit():
            by_file.setdefault((root / file).resolve(), {})[int(line)] = rewrite.text
    read = {p.resolve() for f in files for p in read_requirements(f).files}
    if not set(by_file) & read:
        return files
    base = Path(os.path.commonpath([root.resolve(), *read]))
    tree = tmp / "tree"
    for path in sorted(read):
        text = path.read_text(encoding="utf-8-sig")
        place_in_view(base, tree, path, _rewrite_lines(text, by_file.get(path, {})))
    return [tree / f.resolve().relative_to(base) for f in files]


def _rewrite_lines(text: str, lines: Mapping[int, str | None]) -> str:
    """``text`` with each logical line starting at a key replaced by its value (None: a
    comment), continuation lines included; line numbers stay as they were."""
    physical = text.splitlines(keepends=True)
    for number, new in lines.items():
        first = last = number - 1
        while last + 1 < len(physical) and physical[last].rstrip("\r\n").endswith("\\"):
            last += 1
        for i in range(first, min(last, len(physical) - 1) + 1):
            physical[i] = "\n"
        if first < len(physical):
            physical[first] = (new if new is not None else "# left to torch for this build") + "\n"
    return "".join(physical)


def _is_pypi(url: str) -> bool:
    return urllib.parse.urlsplit(url).hostname in ("pypi.org", "pypi.python.org")


def _check_pinned_hashes(plan: Plan, python: Lock) -> None:
    """A lock the project gave as input is honoured: a wheel it names keeps its hash."""
    pinned = {i.name: i for i in plan.requirements.prod if i.kind == "pinned"}
    for wheel in python.packages:
        item = pinned.get(wheel.name)
        if item is None or item.version not in (None, wheel.version):
            continue
        listed = {a.filename: a.hash for a in item.artifacts}
        want = listed.get(wheel.filename)
        if want is not None and want != wheel.digest:
            raise IntegrityError(
                f"{wheel.filename}: {item.source} pins {want} but the index serves "
                f"{wheel.digest}; the file changed upstream, check the index or re-lock "
                "the project's own lock"
            )


def family_mismatch(plan: Plan, python: Lock) -> str | None:
    """Why the locked torchvision/torchaudio do not fit the torch build, or None.

    A PyPI torchvision is a CUDA build: beside a CPU torch it fails at import
    (``operator torchvision::nms does not exist``), as does one paired with another torch.
    """
    torch = plan.torch
    ov, config_file = plan.overrides, plan.cfg.file.name
    for name in FAMILY:
        wheel = python.get(name)
        if wheel is None:
            continue
        pairs = paired_torch(name, wheel.version)
        if pairs is not None and pairs != minor(torch.version):
            return (
                f"{name} {wheel.version} is built for torch {pairs}, not torch "
                f"{torch.version} ({ov.origin('torch', config_file)}): pin the {name} "
                f"release that pairs with torch {torch.version}"
            )
        variant = wheel_variant(name, wheel.version)
        if variant is not None and variant != torch.variant:
            choose = f"pass --variant {variant}" if ov.variant else f'set variant = "{variant}"'
            return (
                f"{name} {wheel.version} is the {variant} build but torch is "
                f"{torch.version}+{torch.variant} ({ov.origin('variant', config_file)}): add "
                f"the PyTorch {torch.variant} index ({torch.index_url}) to your pip "
                f"configuration or pin {name}=={wheel.version.split('+')[0]}+{torch.variant}, "
                f"or {choose}"
            )
    return None


def _family_pins(plan: Plan, text: str, target: Target) -> list[str]:
    """Pins that choose torchvision/torchaudio for torch's variant (as torch itself is)."""
    python = parse_lock(text, plan.lock_path, target)
    pins = []
    for name in FAMILY:
        wheel = python.get(name)
        if wheel is not None and wheel_variant(name, wheel.version) != plan.torch.variant:
            base = wheel.version.split("+")[0]
            local = "" if plan.torch.requirement.count("+") == 0 else f"+{plan.torch.variant}"
            pins.append(f"{name}=={base}{local}")
    return pins


def _uv_lock(plan: Plan, target: Target, steps: Steps) -> str:
    """uv's lock for ``target`` (the PyTorch index is added when the user's lack torch)."""
    pin = [plan.torch.requirement]
    sources = plan.cfg.build_from_source  # sdists that may be built, in the sandbox
    with staging("lock") as tmp:
        reqs = _requirement_files(plan, tmp)
        out = tmp / LOCK_NAME
        settings = plan.settings
        try:
            uv_resolve(reqs, target, settings, extra=pin, out=out, build_from_source=sources)
        except ResolveError as first:
            # Only a failure about torch itself (not e.g. "torchvision" or "torchslim-x").
            if not re.search(r"(?<![\w.-])torch(?![\w-])", str(first)):
                raise
            steps.step(f"torch not in your indexes; trying {plan.torch.index_url}")
            settings = _with_torch_index(plan)
            try:
                uv_resolve(reqs, target, settings, extra=pin, out=out, build_from_source=sources)
            except IndexUnreachable as err:
                if err.index.rstrip("/") != plan.torch.index_url.rstrip("/"):  # another one
                    raise
                raise NetworkError(
                    f"{plan.torch.requirement} is not in your pip config's indexes or "
                    f"find-links, and the PyTorch index tried next, {plan.torch.index_url}, "
                    f"cannot be reached ({err.reason}): add the torch wheel to find-links or "
                    "an index you reach, or choose a torch they have (--torch)"
                ) from None
        family = _family_pins(plan, out.read_text(), target)
        if family:
            # torchvision/torchaudio come from the variant's index, the way torch does.
            steps.step(f"{', '.join(family)} for torch {plan.torch.requirement}")
            # When that fails too, family_mismatch says what to do, in one line.
            with contextlib.suppress(ResolveError, NetworkError):
                uv_resolve(
                    reqs,
                    target,
                    _with_torch_index(plan),
                    extra=[*pin, *family],
                    out=out,
                    build_from_source=sources,
                )
        return out.read_text()


def _with_torch_index(plan: Plan) -> IndexSettings:
    if plan.torch.index_url in plan.settings.extra_index_urls:
        return plan.settings
    return dataclasses.replace(
        plan.settings,
        extra_index_urls=(*plan.settings.extra_index_urls, plan.torch.index_url),
    )


def resolve(
    plan: Plan,
    existing: ProjectLock | None,
    *,
    glibc: str | None,
    base_pin: dict[str, str] | None,
    store: BlobStore,
    steps: Steps,
) -> Locked:
    """Python wheels, Debian packages and the base pin, reused where their inputs match.

    The file is written once, when anything in it changed, and never without its
    Python part (a base-only build keeps an existing lock as it is).
    """
    project = existing or ProjectLock(python_text="")
    changed = False
    python: Lock | None = None
    if plan.target != "os":
        if plan.requirements.rewrites:
            where = ", ".join(r.source for r in plan.requirements.rewrites)
            steps.step(
                f"torch pins follow {plan.overrides.torch_origin} for this build: {where} "
                "(the files stay as they are)"
            )
        target = target_of(plan, glibc)
        inputs = _inputs(plan, target)
        if existing is None or existing.inputs != inputs:
            steps.step(f"Resolving requirements for {plan.platform}")
            project.python_text = _uv_lock(plan, target, steps)
            project.inputs = inputs
            changed = True
        python = parse_lock(project.python_text, plan.lock_path, target)
        _check_pinned_hashes(plan, python)
        mismatch = family_mismatch(plan, python)
        if mismatch is not None:
            raise ResolveError(mismatch)
    packages: list[debian.DebPackage] = []
    if plan.debian_base:
        key = input_key(dataclasses.asdict(plan.debian))
        if project.debian_key == key and project.debian:
            packages = [debian.DebPackage.from_dict(d) for d in project.debian]
        else:
            steps.step(f"Resolving Debian {plan.debian.suite} packages")
            packages, releases = debian.resolve_signed(plan.debian, store, steps.progress)
            project.debian_key, project.debian = key, [p.to_dict() for p in packages]
            project.debian_releases = {
                suite: {"url": r.url, "sha256": r.sha256} for suite, r in releases.items()
            }
            changed = True
    if base_pin is not None and project.base != base_pin:
        project.base = base_pin
        changed = True
    if changed and project.python_text:
        plan.lock_path.parent.mkdir(parents=True, exist_ok=True)  # an override's own space
        write_project_lock(plan.lock_path, project)
    return Locked(project, python, packages)


def dev_findings(plan: Plan, python: Lock | None, steps: Steps) -> list[DevFinding]:
    """Dev-only packages in the prod lock: warnings, or an error with ``--strict``."""
    findings = audit(python) if python is not None else []
    if findings and plan.strict:
        first = findings[0]
        raise BuildError(
            f"dev-only package {first.package} in the prod requirements "
            f"(brought by {' ← '.join(first.chain[1:]) or 'a requirement'}); "
            "move it to dev-requirements or drop --strict"
        )
    for finding in findings:
        steps.warn(
            f"dev-only package {finding.package} in the image, brought by "
            f"{' ← '.join(finding.chain[1:]) or 'the requirements'}"
        )
    return findings
