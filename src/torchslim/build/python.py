"""The python step: install every locked wheel, slim, check, then split into layers.

All wheels are staged, slimmed and closure-checked together as one tree, then each
file goes to the layer of the distribution that installed it (``layerplan``: torch ·
nvidia groups · triton · deps), so a layer's bytes depend on its own wheels only and
stay shareable across services.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import posixpath
import shutil
import time
import zipfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from torchslim.build.dates import Dates
from torchslim.build.layercache import LayerCache, staging
from torchslim.build.layerplan import plan_python_layers
from torchslim.build.plan import Plan
from torchslim.build.report import LayerReport
from torchslim.cache import BlobStore
from torchslim.config import Steps
from torchslim.debian import RootfsInfo
from torchslim.deps.install import Scheme, install_wheel
from torchslim.deps.lock import Lock
from torchslim.deps.pylock import LockedWheel
from torchslim.deps.wheels import fetch_wheels
from torchslim.errors import ResolveError
from torchslim.oci.layer import Layer
from torchslim.sbom.model import Removal
from torchslim.slim.apply import InstallSkips, slim_tree
from torchslim.slim.bytecode import drop_unimported, source_of_pyc
from torchslim.slim.closure import check_closure, raise_for_missing, upstream_warnings
from torchslim.slim.ledger import Ledger, Revert
from torchslim.slim.pyc import precompile
from torchslim.slim.rules import rules_fingerprint
from torchslim.slim.used import GPU_KEEP, UsedResult, drop_unused
from torchslim.slim.used import PROFILE as USED_PROFILE
from torchslim.units import human

ELF_MACHINE = {"amd64": "EM_X86_64", "arm64": "EM_AARCH64"}


class _RoutingLedger(Ledger):
    """One ledger for the whole stage that also books each removal to its layer's ledger,
    and keeps every removed path (by layer, with the wheel that installed it) for the SBOM."""

    def __init__(
        self,
        per_layer: dict[str, Ledger],
        owner: dict[str, str],
        site: str,
        dist_of: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.per_layer = per_layer
        self.owner = owner
        self.site = site
        self.dist_of = dist_of or {}
        self.removals: dict[str, list[Removal]] = {g: [] for g in per_layer}

    def add(self, rule_id: str, path: str, nbytes: int) -> None:
        super().add(rule_id, path, nbytes)
        group = _owner_of(path, self.owner, self.site, "deps")
        self.per_layer[group].add(rule_id, path, nbytes)
        self.removals[group].append(Removal(rule_id, path, nbytes, self.dist_of.get(path)))

    def revert(
        self, rule_id: str, path: str, nbytes: int, reason: str, *, applied: bool = True
    ) -> None:
        super().revert(rule_id, path, nbytes, reason, applied=applied)
        group = _owner_of(path, self.owner, self.site, "deps")
        self.per_layer[group].revert(rule_id, path, nbytes, reason, applied=applied)
        if applied:  # the file is back: no longer removed
            kept = self.removals[group]
            kept[:] = [r for r in kept if (r.rule, r.path) != (rule_id, path)]


def _owner_of(path: str, owner: dict[str, str], site: str, default: str) -> str:
    """The layer of an image path: its installing wheel's, a .pyc's source's, its package's."""
    if path in owner:
        return owner[path]
    source = source_of_pyc(path)
    if source is not None and source in owner:
        return owner[source]
    if path.startswith(site + "/"):
        top = site + "/" + path[len(site) + 1 :].split("/")[0] + "/"
        for known, group in owner.items():
            if known.startswith(top):
                return group
    return default


def _split_tree(
    root: Path, split: Path, owner: dict[str, str], site: str, groups: list[str]
) -> None:
    """Move every file of ``root`` to ``split/<layer>/``, parents made with the same modes."""
    default = "deps" if "deps" in groups else groups[-1]
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        names = filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]
        for name in names:
            image_path = "/" + (rel_dir / name).as_posix()
            group = _owner_of(image_path, owner, site, default)
            dest = split / group / rel_dir / name
            if not dest.parent.is_dir():
                for part in reversed([*(rel_dir / "x").parents][:-1]):
                    d = split / group / part
                    if not d.is_dir():
                        d.mkdir(parents=True)
                        d.chmod((root / part).stat().st_mode & 0o7777)
            os.replace(Path(dirpath) / name, dest)


def _used_line(used: UsedResult, wheels: Mapping[str, LockedWheel], gpu: bool) -> str:
    """What profile ``used`` took out, naming each distribution, and how to keep one."""
    names = ", ".join(
        f"{d.name} {wheels[d.name].version} ({human(d.bytes)})" if d.name in wheels
        else f"{d.name} ({human(d.bytes)})"
        for d in used.distributions
    )  # fmt: skip
    dists = f"{len(used.distributions)} distributions never loaded ({names})" if names else ""
    mods = f"{used.modules} modules never loaded ({human(used.module_bytes)})"
    first = used.distributions[0].name if used.distributions else "torch/_dynamo"
    gpu_paths = "; torch's own modules stay whole (served without a GPU)" if gpu else ""
    return (
        f"Profile used: dropping {dists + '; ' if dists else ''}{mods}{gpu_paths}; keep one "
        f'with keep = ["{first}"]'
    )


def stub_libraries(root: Path, libs: Sequence[str]) -> None:
    """Empty files at the base's library paths: enough for the closure check to find names."""
    for lib in libs:
        path = root / lib.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def scheme_for(rootfs: RootfsInfo) -> Scheme:
    """Where ``installer`` puts each part of a wheel in the image."""
    return Scheme(
        purelib=rootfs.site_packages,
        platlib=rootfs.site_packages,
        scripts="/usr/local/bin",
        data="/usr/local",
        headers=f"/usr/local/include/python{rootfs.python_version}",
    )


def _reverts_by_group(
    reverts: Sequence[Revert],
    groups: Sequence[tuple[str, list[str]]],
    wheel_files: dict[str, Path],
    site_packages: str,
) -> dict[str, list[Revert]]:
    """Which layer each undone change shapes, for the layer keys: a proof that undoes a
    data file of one package rebuilds that package's layer, not torch's.

    A change goes to the layers whose wheels put files in its top-level folder (read
    from the wheels' own file lists). A shared library goes to every layer: keeping one
    keeps what it links against (``slim.apply``), wherever that lies; so does a path
    no wheel names.
    """
    tops: dict[str, set[str]] = {}
    for group, names in groups:
        for name in names:
            with zipfile.ZipFile(wheel_files[name]) as whl:
                for entry in whl.namelist():
                    tops.setdefault(entry.split("/", 1)[0], set()).add(group)
    site = site_packages.rstrip("/") + "/"
    out: dict[str, list[Revert]] = {group: [] for group, _ in groups}
    for r in reverts:
        top = r.path.removeprefix(site).split("/", 1)[0] if r.path.startswith(site) else ""
        library = ".so" in posixpath.basename(r.path)
        for group in out if library or top not in tops else tops[top]:
            out[group].append(r)
    return out


@dataclasses.dataclass
class _Stage:
    """A Python tree installed, slimmed, checked and compiled, with what slimming booked."""

    root: Path
    owner: dict[str, str]  # image path → its layer
    dist_of: dict[str, str]  # image path → the wheel that installed it
    ledgers: dict[str, Ledger]
    routing: _RoutingLedger


StageKey = tuple[tuple[str, str, str], ...]


def _linked(stage: _Stage, root: Path) -> _Stage:
    """A copy of ``stage`` at ``root``: its files hard-linked (nothing after staging writes
    into a file; removing or moving one leaves the other copy whole), its bookings copied."""
    shutil.copytree(stage.root, root, symlinks=True, copy_function=os.link, dirs_exist_ok=True)
    ledgers, routing = copy.deepcopy((stage.ledgers, stage.routing))
    return _Stage(root, dict(stage.owner), dict(stage.dist_of), ledgers, routing)


class KeptStages:
    """The Python trees this build staged, kept until it ends.

    A build that learns from its proof (``bytecode = "imported"``, profile ``used``,
    eStargz's prefetch) assembles again with what the proof saw; the tree before the
    census's own steps is the same, so the second assembly starts from a copy of it
    (hard links) instead of installing, slimming and compiling again. Within one build
    only the undone slimming changes that tree: it is the key."""

    def __init__(self) -> None:
        self._scratch = contextlib.ExitStack()
        self._dir: Path | None = None
        self._kept: dict[StageKey, _Stage] = {}

    @staticmethod
    def key(reverts: Sequence[Revert]) -> StageKey:
        return tuple(sorted((r.rule, r.path, r.reason) for r in reverts))

    def restore(self, key: StageKey, root: Path) -> _Stage | None:
        """The stage kept under ``key``, its tree linked into ``root`` (empty) and its
        bookings copied; None when there is none."""
        kept = self._kept.get(key)
        return None if kept is None else _linked(kept, root)

    def keep(self, key: StageKey, stage: _Stage) -> None:
        if self._dir is None:
            self._dir = self._scratch.enter_context(staging("stages"))
        self._kept[key] = _linked(stage, self._dir / str(len(self._kept)))

    def close(self) -> None:
        self._scratch.close()
        self._dir, self._kept = None, {}


def _stage(
    plan: Plan,
    lock: Lock,
    rootfs: RootfsInfo,
    base_libs: Sequence[str],
    steps: Steps,
    reverts: Sequence[Revert],
    groups: list[tuple[str, list[str]]],
    paths: Mapping[str, Path],
    root: Path,
) -> _Stage:
    """Install every wheel into ``root``, slim (but for ``reverts``), check that every kept
    shared library finds its dependencies, and compile the bytecode."""
    scheme = scheme_for(rootfs)
    keep = [*plan.keep, *(r.path for r in reverts)]
    wheels = [n for _, names in groups for n in names]
    owner: dict[str, str] = {}
    dist_of: dict[str, str] = {}
    steps.step(f"Installing {len(wheels)} wheels")
    total, done = sum(paths[n].stat().st_size for n in wheels), 0
    skip = InstallSkips(plan.profile, keep, rootfs.site_packages) if plan.slim else None
    skipped: dict[str, tuple[str, int]] = {}  # never written: slimming removes them
    for group, names in groups:
        for n in names:
            held: dict[str, tuple[str, int]] = {}
            written = install_wheel(
                paths[n], root, scheme, rootfs.python_exe, skip=skip, skipped=held
            )
            skipped.update(held)
            for image_path in [*written, *held]:
                owner[image_path] = group
                dist_of[image_path] = n
            done += paths[n].stat().st_size
            steps.progress("installing wheels", done, total)
    ledgers = {g: Ledger() for g, _ in groups}
    routing = _RoutingLedger(ledgers, owner, rootfs.site_packages, dist_of)
    removed: dict[str, str] = {}
    if plan.slim:
        steps.step(f"Slimming (profile {plan.profile})")
        removed = slim_tree(
            root, rootfs.site_packages, profile=plan.profile, keep=keep, ledger=routing,
            skipped=skipped,
        )  # fmt: skip
        for r in reverts:
            routing.revert(r.rule, r.path, r.bytes, r.reason, applied=False)
    steps.step("Checking that every kept shared library finds its dependencies; compiling bytecode")
    # Bytecode is compiled meanwhile, in processes of its own: the check only reads ELF
    # files, compiling only writes __pycache__; leaving the block waits for both.
    with staging("libs") as stub, ThreadPoolExecutor(max_workers=1) as background:
        compiling = background.submit(precompile, root, rootfs.site_packages, rootfs.python_version)
        stub_libraries(stub, base_libs)
        missing = check_closure(
            [(root, "/"), (stub, "/")],
            removed=removed,
            check_prefixes=[rootfs.site_packages],
            allow_missing=plan.cfg.allow_missing,
            interpreter=rootfs.python_exe,
            machine=ELF_MACHINE.get(plan.platform.arch, "EM_X86_64"),
        )
        compiling.result()
    for warning in upstream_warnings(missing):
        steps.warn(warning)
    raise_for_missing(missing)
    return _Stage(root, owner, dist_of, ledgers, routing)


def python_layers(
    plan: Plan,
    lock: Lock,
    rootfs: RootfsInfo,
    base_libs: Sequence[str],
    dates: Dates,
    layers: LayerCache,
    store: BlobStore,
    steps: Steps,
    reverts: Sequence[Revert] = (),
    imports: Sequence[str] | None = None,
    stages: KeptStages | None = None,
) -> list[tuple[Layer, LayerReport]]:
    """The Python layers of ``lock``, from the cache when every one of them is there.

    ``reverts``: slimming changes a proof showed to break a file; they are not made
    (their files are kept) and each is listed in the ledger with the loader's message.
    ``imports``: the site-packages modules the served proof imported: only theirs keep a
    ``.pyc`` (``bytecode = "imported"``), or only they are kept (profile ``used``,
    ``slim.used``); None keeps every module and ``.pyc``. ``stages``: the trees this
    build staged before (``KeptStages``), to start from and to keep this one in.
    """
    if not plan.slim:
        imports = None
    scheme = scheme_for(rootfs)
    wheels = {w.name: w for w in lock.packages}
    if "torch" not in wheels:
        raise ResolveError(f"the lock has no torch wheel for {plan.torch.requirement}")
    groups = plan_python_layers(list(wheels))
    paths: dict[str, Path] | None = None
    by_group: dict[str, list[Revert]] = {group: [] for group, _ in groups}
    if reverts:
        paths = fetch_wheels(lock, store, plan.settings, steps.progress)
        by_group = _reverts_by_group(reverts, groups, paths, rootfs.site_packages)
    keys: dict[str, tuple[int, str]] = {}
    for group, names in groups:
        mtime = dates.layer_epoch(names)
        keys[group] = (
            mtime,
            layers.key(
                "python",
                mtime,
                group,
                sorted(wheels[n].sha256 for n in names),
                dataclasses.asdict(scheme),
                rootfs.python_exe,
                plan.slim,
                plan.profile,
                rules_fingerprint(plan.profile) if plan.slim else None,
                sorted(plan.keep),
                sorted((r.rule, r.path, r.reason) for r in by_group[group]),
                sorted(imports) if imports is not None else None,
                list(GPU_KEEP) if plan.profile == USED_PROFILE and plan.torch.cuda else None,
            ),
        )
    hits = {g: layers.hit_parts(g, key) for g, (_, key) in keys.items()}
    if all(hit is not None for hit in hits.values()):
        return [(part[0], part[1]) for hit in hits.values() if hit is not None for part in hit]

    with staging("python") as root, staging("split") as split:
        stage_key = KeptStages.key(reverts)
        stage = stages.restore(stage_key, root) if stages is not None else None
        if stage is not None:
            steps.step("Starting from the Python tree this build installed and slimmed")
        else:
            steps.step(f"Fetching {len(wheels)} wheels")
            paths = paths or fetch_wheels(lock, store, plan.settings, steps.progress)
            stage = _stage(plan, lock, rootfs, base_libs, steps, reverts, groups, paths, root)
            if stages is not None:
                stages.keep(stage_key, stage)
        owner, dist_of, routing = stage.owner, stage.dist_of, stage.routing
        ledgers = stage.ledgers
        if imports is not None and plan.profile == USED_PROFILE:
            used = drop_unused(
                root, rootfs.site_packages, imports, dist_of, plan.keep, rootfs.python_version,
                routing, gpu=plan.torch.cuda is not None,
            )  # fmt: skip
            steps.step(_used_line(used, wheels, plan.torch.cuda is not None))
        elif imports is not None:
            drop_unimported(root, rootfs.site_packages, imports, rootfs.python_version, routing)
        _split_tree(root, split, owner, rootfs.site_packages, [g for g, _ in groups])
        out: list[tuple[Layer, LayerReport]] = []
        for group, _ in groups:
            hit = hits[group]
            if hit is not None:
                out.extend((part[0], part[1]) for part in hit)
                continue
            mtime, key = keys[group]
            started = time.monotonic()
            (split / group).mkdir(exist_ok=True)
            extra = {
                "ledger": ledgers[group].to_dict(),
                "removals": [r.to_json() for r in routing.removals[group]],
            }
            made = layers.write_parts(group, key, split / group, mtime=mtime, extra=extra)
            made[0][1].seconds = time.monotonic() - started
            out.extend(made)
    return out
