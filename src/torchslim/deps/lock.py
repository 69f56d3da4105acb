"""Resolve requirements for the *target* platform into a PEP 751 ``pylock.toml``.

uv resolves (``uv pip compile --python-platform``, never the host), ``packaging.pylock``
validates what it wrote. The dependency graph (who required what, for the dev audit)
comes from a second uv run over the same inputs in requirements format with
``--annotation-style split``: its ``# via`` lines are uv's own account of each edge.
That run hits uv's cache, so it costs a fraction of a second; we check that both runs
pinned the same versions. The graph and the target are stored in the lock under
``[tool.torchslim]`` so ``read_lock`` gives back the same ``Lock``.

Resolving runs no project code on the host: uv always gets ``--no-build`` and reads only
wheels. A local path requirement (``./pkg``, ``-e ./lib``, ``file:``) is built into a
wheel in the sandbox first (:mod:`torchslim.deps.sourcebuild`) and uv reads that wheel in
its place. A package the indexes serve only as an sdist is refused in one line unless
``build-from-source`` names it; then its sdist is built in the sandbox too, and uv finds
the wheel in a find-links folder of its own. Only ``py3-none-any`` results are accepted.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import tomli_w
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from torchslim.atomic import write_atomic
from torchslim.cache import cache_root
from torchslim.deps.http import iter_url, local_path, make_client, with_retries
from torchslim.deps.localpaths import build_local_paths
from torchslim.deps.locate import project_files
from torchslim.deps.pipconf import IndexSettings
from torchslim.deps.pylock import (
    ARCHES,
    Lock,
    LockedWheel,
    Target,
    best_wheel,
    one_line,
    parse_lock,
    read_lock,
)
from torchslim.deps.requirements import read_requirements
from torchslim.deps.sourcebuild import build_in_sandbox, unpack_sdist
from torchslim.errors import ConfigError, IntegrityError, NetworkError, ResolveError
from torchslim.redact import redact

EXTRA_FILE = "torchslim-extra.txt"
MAX_SDIST_BUILDS = 8  # per lock: each allowed sdist, and an older one when a pin needs it
_NEEDS_SDIST = re.compile(r"Wheels are required for `([^`]+)` because building from source")
Graph = dict[str, tuple[str, ...]]  # normalized name -> what required it


# ----------------------------------------------------------------------------- resolve


def resolve(
    requirements: Sequence[Path],
    target: Target,
    settings: IndexSettings,
    *,
    extra: Sequence[str] = (),
    out: Path,
    extra_label: str = "torchslim config",
    build_from_source: Sequence[str] = (),
) -> Lock:
    """Lock ``requirements`` (+ ``extra`` lines) for ``target`` into ``out`` (atomically).

    ``build_from_source``: packages whose sdists may be built (in the sandbox) when the
    indexes have no wheel for them; any other sdist-only package is refused."""
    # Every index uv may fetch from → the requirement file line that named it ("" when the
    # pip config or torchslim did), so an unreachable one is named as the user wrote it.
    origins = {u: "" for u in (settings.index_url, *settings.extra_index_urls) if u}
    for path in requirements:
        parsed = read_requirements(path)  # validates, file:line errors
        settings = parsed.apply(settings)
        origins.update(parsed.url_origins)
    for line in extra:
        try:
            Requirement(line)
        except InvalidRequirement as exc:
            raise ConfigError(f"invalid extra requirement {line!r}: {exc}") from None
    if not requirements and not extra:
        raise ConfigError("nothing to resolve: no requirements file and no extra requirements")

    allowed = {canonicalize_name(n) for n in build_from_source}
    with tempfile.TemporaryDirectory(prefix="torchslim-lock-") as tmpd:
        tmp = Path(tmpd)
        # Local paths become wheels built in the sandbox; uv reads copies of the files.
        files, extra = build_local_paths(requirements, extra, settings, tmp / "local")
        sources = [str(p) for p in files]
        if extra:
            (tmp / EXTRA_FILE).write_text("".join(f"{x}\n" for x in extra), encoding="utf-8")
            sources.append(str(tmp / EXTRA_FILE))
        base = [
            *_uv_cmd(),
            "--no-config",  # pip config is the contract; a stray uv.toml must not change it
            # uv would fetch a managed CPython of the target version (from GitHub) only to
            # build sdists; it builds none, and a build must not depend on it.
            "--no-python-downloads",
            "pip",
            "compile",
            *sources,
            "--no-build",  # no setup.py runs on the host: uv reads wheels only
            "--python-version",
            target.python,
            "--python-platform",
            target.uv_platform,
            "--no-header",
            "--color",
            "never",
            "--no-progress",
            *settings.uv_args(),
        ]
        env = {**os.environ, **settings.uv_env()}
        # Relative paths in uv's output are relative to its cwd: the first requirement file's
        # directory, where a user's "./mypkg" requirement is meant to be found.
        cwd = files[0].parent if files else Path.cwd()
        graph = [*base, "--annotation-style", "split", "-o", str(tmp / "graph.txt")]
        links = _resolve_building(
            lambda more: [*graph, *more], env, target, cwd, origins, allowed, settings, tmp
        )
        base += links
        _run_uv(
            [*base, "--format", "pylock.toml", "--generate-hashes", "-o", str(tmp / "pylock.toml")],
            env,
            target,
            cwd,
            origins,
        )
        labels = _via_labels(requirements, tmp / EXTRA_FILE, extra_label)
        pins, parents = parse_graph((tmp / "graph.txt").read_text(encoding="utf-8"), labels)
        text = (tmp / "pylock.toml").read_text(encoding="utf-8")
        data = tomllib.loads(text)
        local = _local_sources(data, tmp)
        changed = _ensure_wheels(data, target, tmp)
        pins, parents = _name_local_paths(pins, parents, local, cwd)
        _check_pins(data, pins)
        tool = {"tool": {"torchslim": _tool_table(target, parents)}}
        if changed or "tool" in data:
            data.setdefault("tool", {}).update(tool["tool"])
            text = tomli_w.dumps(data)
        else:
            text = text.rstrip("\n") + "\n\n" + tomli_w.dumps(tool)
        write_atomic(out, text)
    return read_lock(out, target)


class IndexUnreachable(NetworkError):
    """A package index uv could not reach: which one and why, for callers that know more."""

    def __init__(self, index: str, reason: str, fix: str) -> None:
        super().__init__(one_line(f"cannot reach package index {index} ({reason}); {fix}"))
        self.index, self.reason = index, reason


def _uv_cmd() -> list[str]:
    try:
        import uv

        return [uv.find_uv_bin()]
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return [found]
        return [sys.executable, "-m", "uv"]


def _run_uv(
    cmd: list[str],
    env: Mapping[str, str],
    target: Target,
    cwd: Path,
    origins: Mapping[str, str] | None = None,
) -> None:
    proc = subprocess.run(cmd, env=dict(env), cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise uv_error(proc.stderr, target, origins)


def uv_error(
    stderr: str, target: Target, origins: Mapping[str, str] | None = None
) -> ResolveError | IndexUnreachable:
    """Turn uv's multi-line diagnostic into our one-line error (credentials masked);
    ``origins``: the indexes in use, each with the requirement file line that named it."""
    stderr = redact(stderr)
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    # Warnings (and their causes) before the error are not why it failed.
    first = next((i for i, ln in enumerate(lines) if ln.startswith("error:")), 0)
    lines = lines[first:]
    head = next((ln.removeprefix("error:").strip() for ln in lines if ln.startswith("error:")), "")
    causes = [ln.removeprefix("cause:").strip() for ln in lines if ln.startswith("cause:")]
    hints = [ln.removeprefix("hint:").strip() for ln in lines if ln.startswith("hint:")]
    fetch = next((c for c in [head, *causes] if c.startswith("Failed to fetch")), None)
    if fetch or "Request failed" in head:
        url = re.search(r"(\w+://\S+)", fetch or head)
        where = _index_of(url.group(1).rstrip("`'") if url else "the package index")
        reason = causes[-1] if causes else head
        page = (url.group(1).rstrip("`'") if url else "") + "/"
        given = max(
            (u for u in origins or {} if page.startswith(u.rstrip("/") + "/")),
            key=len,
            default=None,
        )
        named = (origins or {})[given] if given else ""
        where = given.rstrip("/") if given else where
        fix = (
            f"it is named at {named}: make it reachable, or remove that line to use your pip "
            "config's indexes"
            if named
            else "check index-url / extra-index-url / find-links in your pip config "
            "(pip config list) or PIP_INDEX_URL"
        )
        return IndexUnreachable(where, reason, fix)
    if "No solution found" in head and causes:
        cause = causes[0].removeprefix("Because ")
        cause = re.split(r",? we can conclude|,? and you require", cause)[0]
        msg = f"requirements do not resolve for {target.describe()}: {cause}"
        for hint in hints:
            m = re.search(r"Wheels are available for `([^`]+)` \(([^)]+)\) on the following", hint)
            if m:
                plats = ", ".join(re.findall(r"`([^`]+)`", hint.split("platform", 1)[1]))
                msg += f" (no wheel of {m[1]} {m[2]} for {target.platform} {target.cp}; "
                msg += f"wheels exist only for {plats})"
            m = re.search(
                r"You require CPython \S+ \(`(cp\d+)`\), but we only found wheels for `([^`]+)` "
                r"\(([^)]+)\) with the following Python ABI tags?: (.*)",
                hint,
            )
            if m:
                abis = ", ".join(re.findall(r"`([^`]+)`", m[4]))
                msg += f" (no {m[1]} wheel of {m[2]} {m[3]}; wheels exist only for {abis}: "
                msg += "pin a version built for this Python, or set python to one of those)"
        return ResolveError(one_line(msg))
    built = re.search(r"Failed to build `([^`]+)`", stderr)
    if built:
        return ResolveError(
            one_line(
                f"{built[1]} has no wheel for {target.describe()}, only an sdist that failed to "
                "build: build a wheel for the target and add it to find-links, or pin a "
                "version that ships wheels"
            )
        )
    detail = "; ".join([head, *causes[-1:]]) or (lines[-1] if lines else "no output")
    return ResolveError(one_line(f"uv could not lock the requirements: {detail}"))


def _index_of(url: str) -> str:
    """``http://h/simple/pkg/`` → ``http://h/simple`` (the configured index, not the page)."""
    m = re.match(r"(.*?/simple)/", url + "/")
    return m.group(1) if m else url


def _via_labels(requirements: Sequence[Path], extra_file: Path, extra_label: str) -> dict[str, str]:
    labels = {str(extra_file): extra_label}
    for p in requirements:
        for f in read_requirements(p).files:
            labels[str(f)] = f.name
    return labels


def parse_graph(text: str, labels: Mapping[str, str]) -> tuple[dict[str, str], Graph]:
    """Parse uv's requirements output with split ``# via`` annotations.

    Returns ``(pins, parents)``: normalized name → version, and normalized name → sources
    (``-r requirements.txt`` or parent names).
    """
    pins: dict[str, str] = {}
    parents: dict[str, list[str]] = {}
    current: str | None = None
    in_via = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if not raw[0].isspace() and not line.startswith(("#", "-")):
            name, _, version = line.split(";")[0].partition("==")
            if " @ " in name:
                name = name.split(" @ ")[0]
            name = name.strip()
            is_path = name.startswith((".", "/", "~")) or "://" in name
            current = name if is_path else canonicalize_name(name)
            pins[current] = version.strip()
            parents[current] = []
            in_via = False
            continue
        if current is None or not line.startswith("#"):
            continue
        body = line.lstrip("#").strip()
        if body.startswith("via"):
            rest = body[3:].strip()
            in_via = not rest
            if rest:
                parents[current].append(_label(rest, labels))
        elif in_via and body:
            parents[current].append(_label(body, labels))
    return pins, {k: tuple(v) for k, v in parents.items()}


def _label(source: str, labels: Mapping[str, str]) -> str:
    if source.startswith(("-r ", "-c ")):
        flag, path = source[:2], source[3:].strip()
        name = labels.get(path) or labels.get(str(Path(path).resolve()))
        if name is not None:
            return name if path.endswith(EXTRA_FILE) else f"{flag} {name}"
        return f"{flag} {Path(path).name}"
    return canonicalize_name(source)


def _local_sources(data: Mapping[str, Any], lock_dir: Path) -> dict[Path, str]:
    """Absolute path of each local directory/archive requirement → its project name."""
    out: dict[Path, str] = {}
    for pkg in data.get("packages", []):
        for key in ("directory", "archive"):
            loc = pkg.get(key, {}).get("path")
            if loc:
                out[(lock_dir / str(loc)).resolve()] = canonicalize_name(pkg["name"])
    return out


def _name_local_paths(
    pins: dict[str, str], parents: Graph, local: Mapping[Path, str], cwd: Path
) -> tuple[dict[str, str], Graph]:
    """uv's requirements output names a local requirement by its path; use the project name."""

    def fix(key: str) -> str:
        if key.startswith((".", "/", "~", "-")) or "://" in key:
            return local.get((cwd / key.split(" @ ")[-1]).resolve(), key)
        return key

    return {fix(k): v for k, v in pins.items()}, {fix(k): v for k, v in parents.items()}


def _check_pins(data: Mapping[str, Any], pins: Mapping[str, str]) -> None:
    for pkg in data.get("packages", []):
        name = canonicalize_name(pkg["name"])
        if name in pins and pins[name] and pins[name] != str(pkg.get("version", "")):
            raise ResolveError(
                f"the index changed while locking ({name} {pins[name]} vs {pkg.get('version')}); "
                "run the lock again"
            )


def _tool_table(target: Target, parents: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    return {
        "target": {"python": target.python, "arch": target.arch, "glibc": target.glibc},
        "parents": {k: list(v) for k, v in sorted(parents.items())},
    }


# ------------------------------------------------------------------------ wheel choice


def _ensure_wheels(data: dict[str, Any], target: Target, lock_dir: Path) -> bool:
    """Make every package carry a wheel for the target: a wheel file a requirement names
    by path (the sandbox's builds of local paths among them) becomes its ``wheels`` entry.
    ``archive.path`` is relative to ``lock_dir``, where uv wrote the lock (as pylock.toml
    says), never to our cwd. True if anything changed."""
    changed = False
    built = (cache_root() / "built-wheels").resolve()
    for pkg in data.get("packages", []):
        for wheel in pkg.get("wheels", []):
            if _under(local_path(str(wheel.get("url", ""))), built):
                pkg.setdefault("tool", {})["torchslim"] = {"built-locally": True}
                changed = True
        if best_wheel(pkg.get("wheels", []), target) is not None:
            continue
        name, version = pkg["name"], pkg.get("version", "?")
        archive = pkg.get("archive", {})
        given = archive.get("path")
        path = (
            lock_dir / str(given) if given else Path(local_path(str(archive.get("url", ""))) or "")
        )
        entry = {"url": path.resolve().as_uri(), "hashes": archive.get("hashes", {})}
        if not path.name.endswith(".whl") or best_wheel([entry], target) is None:
            raise ResolveError(
                f"{name} {version} has no wheel for {target.describe()}: pin a version that "
                "ships one or add a wheel for the target to find-links"
            )
        entry["size"] = path.stat().st_size
        pkg["wheels"] = [entry]
        pkg.pop("archive", None)
        if _under(path, built):
            pkg.setdefault("tool", {})["torchslim"] = {"built-locally": True}
        changed = True
    return changed


def _under(path: Path | None, folder: Path) -> bool:
    return path is not None and path.resolve().is_relative_to(folder)


def lock_wheels_only(
    requires: list[str], target: Target, settings: IndexSettings, tmp: Path
) -> Lock:
    """``requires`` (a build's requirements) locked for ``target``, wheels only."""
    for line in requires:
        try:
            Requirement(line)
        except InvalidRequirement as exc:
            raise ResolveError(f"invalid build requirement {line!r}: {exc}") from None
    (tmp / "build-requires.txt").write_text("".join(f"{r}\n" for r in requires), encoding="utf-8")
    out = tmp / "pylock.toml"
    cmd = [
        *_uv_cmd(), "--no-config", "--no-python-downloads", "pip", "compile",
        str(tmp / "build-requires.txt"), "--no-build", "--python-version", target.python,
        "--python-platform", target.uv_platform, "--no-header", "--color", "never",
        "--no-progress", *settings.uv_args(), "--format", "pylock.toml", "--generate-hashes",
        "-o", str(out),
    ]  # fmt: skip
    _run_uv(cmd, {**os.environ, **settings.uv_env()}, target, tmp)
    return read_lock(out, target)


# ------------------------------------------------------------------ sdists, in the sandbox


def _resolve_building(
    command: Callable[[list[str]], list[str]],
    env: Mapping[str, str],
    target: Target,
    cwd: Path,
    origins: Mapping[str, str],
    allowed: Collection[str],
    settings: IndexSettings,
    tmp: Path,
) -> list[str]:
    """Run uv (``command(extra args)``) until it resolves; each sdist-only package it names
    is refused, or, when ``allowed``, built in the sandbox and offered as a find-links
    folder. Returns the extra args the resolution needed."""
    links: list[str] = []
    built: set[tuple[str, str]] = set()
    for _ in range(MAX_SDIST_BUILDS + 1):
        cmd = command(links)
        proc = subprocess.run(
            cmd, env=dict(env), cwd=cwd, capture_output=True, text=True, check=False
        )
        if proc.returncode == 0:
            return links
        needed = _sdist_needed(proc.stderr)
        if needed is None:
            raise uv_error(proc.stderr, target, origins)
        name, version = needed
        sdist = _find_sdist(name, version, settings, {v for n, v in built if n == name})
        shown = f"{name} {sdist[3] if sdist else version or '(every version)'}"
        if name not in allowed:
            raise ResolveError(
                f"{shown} is published only as an sdist, whose build runs its code: add "
                f'"{name}" to build-from-source in the torchslim config to build it in the '
                f"sandbox, or pin a version that ships a wheel for {target.describe()}"
            )
        if sdist is None:
            raise ResolveError(
                f"{shown} has no wheel for {target.describe()}, and no sdist of it is in the "
                "find-links or indexes torchslim can read: add a wheel to find-links"
            )
        wheel = _build_sdist(name, sdist, settings, tmp)
        built.add((name, sdist[3]))
        links += ["--find-links", str(wheel.parent)]
    raise ResolveError(
        f"more than {MAX_SDIST_BUILDS} sdists to build for one lock; pin versions that ship wheels"
    )


def _sdist_needed(stderr: str) -> tuple[str, str | None] | None:
    """(package, version or None) when uv failed only for want of a wheel it may not build."""
    m = _NEEDS_SDIST.search(stderr)
    if m is None:
        return None
    name = canonicalize_name(m[1])
    pinned = re.search(rf"(?<![\w.-]){re.escape(m[1])}==([\w.+!-]+?) has no usable wheels", stderr)
    return name, pinned[1] if pinned else None


Sdist = tuple[str, str, "str | None", str]  # filename, URL, sha256, version


def _find_sdist(
    name: str, version: str | None, settings: IndexSettings, skip: set[str]
) -> Sdist | None:
    """The sdist of ``name`` to build: of ``version``, else the newest (a final release
    before a pre-release) not in ``skip``; None when the find-links and indexes have none."""
    found: dict[Version, Sdist] = {}
    with make_client(settings) as client:
        for filename, url, sha in project_files(name, settings, client):
            try:
                sname, sversion = parse_sdist_filename(filename)
            except InvalidSdistFilename:
                continue
            if sname == name and str(sversion) not in skip:
                found.setdefault(sversion, (filename, url, sha, str(sversion)))
    if version is not None:
        return next((s for v, s in found.items() if v == Version(version)), None)
    if not found:
        return None
    return found[max(found, key=lambda v: (not v.is_prerelease, v))]


def _build_sdist(name: str, sdist: Sdist, settings: IndexSettings, tmp: Path) -> Path:
    """Fetch the sdist (hash-checked when the index gives one) and build it in the sandbox."""
    filename, url, sha, version = sdist
    work = tmp / f"sdist-{name}-{version}"
    work.mkdir(parents=True)
    archive = work / filename
    _download_checked(url, archive, sha, settings, name)
    src = unpack_sdist(archive, work / "src")
    wheel = build_in_sandbox(src, f"{name} {version}", settings, expect=name)
    if parse_wheel_filename(wheel.name)[1] != Version(version):
        raise ResolveError(f"{name} {version}: its sdist built another version; refused")
    return wheel


def _download_checked(
    url: str, dest: Path, sha256: str | None, settings: IndexSettings, what: str
) -> None:
    with make_client(settings) as client:

        def attempt() -> None:
            h = hashlib.sha256()
            with dest.open("wb") as f:
                for chunk in iter_url(url, client):
                    f.write(chunk)
                    h.update(chunk)
            if sha256 and h.hexdigest() != sha256:
                dest.unlink()
                raise IntegrityError(
                    f"{what}: sdist {url} has sha256 {h.hexdigest()}, the lock says {sha256}; "
                    "nothing was kept, check the index"
                )

        with_retries(url, attempt, what)


__all__ = [
    "ARCHES",
    "Lock",
    "LockedWheel",
    "Target",
    "best_wheel",
    "parse_graph",
    "parse_lock",
    "read_lock",
    "resolve",
    "uv_error",
]
