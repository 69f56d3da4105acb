"""Apply the rules of a profile to a staging tree and fill the ledger.

The staging directory ``root`` is the image's ``/``; only ``root + site_packages`` is
touched. Order of work:

0. (while installing, ``InstallSkips``) files of ``at_install`` rules are never written;
   ``slim_tree`` books them with the rest (``skipped``);
1. plan: each file is claimed by the first remove-rule (``RULES`` order) that applies;
   it is removed when that rule is active in the profile and no ``keep`` glob matches;
2. safety net: a planned shared library that a kept ELF names in DT_NEEDED is kept
   (warning), so slimming can never break the dynamic loader;
3. remove, record each file's bytes in the ledger, drop emptied directories;
4. strip-symbols on the kept ELF files (bytes saved go to the ledger); a stripped copy
   that fails the loader's checks (``slim.strip``) is dropped and listed as reverted;
5. rewrite each ``*.dist-info/RECORD``: lines of removed files go, stripped files get
   new hashes and sizes, so pip and importlib.metadata stay consistent with the disk.

With ``backup``, every removed file, every original of a stripped file and every RECORD
is kept there (``slim.backup``), so ``slim.restore`` can undo a change file by file.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from torchslim.errors import BuildError
from torchslim.slim.backup import Backup
from torchslim.slim.elf import strip_tool
from torchslim.slim.globs import match_self_or_parent
from torchslim.slim.ledger import Ledger
from torchslim.slim.record import rewrite_records
from torchslim.slim.rules import RULES, Rule, check_profile
from torchslim.slim.site import SiteView
from torchslim.slim.strip import StripResult, strip_checked

log = logging.getLogger(__name__)


def _walk(site: Path) -> list[str]:
    """Every file and symlink under ``site``, as sorted POSIX paths relative to it."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(site):
        base = Path(dirpath).relative_to(site).as_posix()
        prefix = "" if base == "." else base + "/"
        out.extend(prefix + d for d in dirnames if os.path.islink(os.path.join(dirpath, d)))
        out.extend(prefix + f for f in filenames)
    return sorted(out)


class KeepGlobs:
    """User ``--keep`` globs: relative to site-packages, or absolute image paths."""

    def __init__(self, globs: Sequence[str], site_packages: str) -> None:
        self.relative = [g.strip("/") for g in globs if not g.startswith("/")]
        absolute = [g.rstrip("/") for g in globs if g.startswith("/")]
        # Plain paths (a proof's undone changes: thousands) are looked up, not matched.
        self.exact = {g for g in absolute if not any(c in g for c in "*?[")}
        self.absolute = [g for g in absolute if g not in self.exact]
        self.site_packages = site_packages

    def __call__(self, rel: str) -> bool:
        image = posixpath.join(self.site_packages, rel)
        if self.exact:
            parts = image.split("/")
            if any("/".join(parts[:i]) in self.exact for i in range(2, len(parts) + 1)):
                return True
        return any(match_self_or_parent(g, rel) for g in self.relative) or any(
            match_self_or_parent(g, image) for g in self.absolute
        )


class InstallSkips:
    """Which files a build need not write at all: those an ``at_install`` rule removes.

    Such a rule decides by path alone and none of its files is ever loaded, so writing
    them only to delete them is wasted work (torch's 9,436 headers are three quarters of
    its wheel's files and about half its install time on ext4). Agrees with ``_plan``: the
    first rule whose globs match a file owns it; when that rule has a guard (it must look
    at the file) or is not ``at_install``, the file is written and ``slim_tree`` decides.
    """

    def __init__(self, profile: str, keep: Sequence[str], site_packages: str) -> None:
        check_profile(profile)
        self.profile = profile
        self.site = "/" + site_packages.strip("/")
        self.keeper = KeepGlobs(keep, self.site)
        self.removers = [r for r in RULES if r.action == "remove"]

    def __call__(self, image_path: str) -> str | None:
        """The id of the rule that removes ``image_path``; None: write it."""
        if not image_path.startswith(self.site + "/"):
            return None
        rel = image_path[len(self.site) + 1 :]
        if self.keeper(rel):
            return None
        rule = next((r for r in self.removers if r.matches(rel)), None)
        if rule is None or rule.guard is not None or not rule.at_install:
            return None
        return rule.id if rule.active_in(self.profile) else None


def _plan(view: SiteView, files: list[str], profile: str, keep: KeepGlobs) -> dict[str, Rule]:
    removers = [r for r in RULES if r.action == "remove"]
    plan: dict[str, Rule] = {}
    for rel in files:
        if keep(rel):
            continue
        for rule in removers:
            if rule.applies(view, rel):
                if rule.active_in(profile):
                    plan[rel] = rule
                break  # the first rule that applies owns the file, active or not
    return plan


def _protect_needed(view: SiteView, files: list[str], plan: dict[str, Rule]) -> None:
    """Unplan libraries that kept ELF files need and no kept file provides, until stable.

    A name a kept library already provides (e.g. ``libcupti.so.13`` in ``nvidia/cu13/lib``)
    does not rescue a planned copy of it elsewhere (Triton's own CUPTI); the closure check
    then proves that the kept copy is the one the loader finds.
    """
    needed: set[str] = set()
    scanned: set[str] = set()
    while True:
        for rel in files:
            if rel in plan or rel in scanned:
                continue
            scanned.add(rel)
            info = view.elf(rel)
            if info is not None:
                needed.update(info.needed)
        provided = {posixpath.basename(r) for r in scanned} | {
            i.soname for r in scanned if (i := view.elf(r)) is not None and i.soname
        }
        needed -= provided
        rescued = []
        for rel in sorted(plan):
            info = view.elf(rel)
            if info is None:
                continue
            names = {posixpath.basename(rel)} | ({info.soname} if info.soname else set())
            if names & needed:
                rescued.append(rel)
        if not rescued:
            return
        for rel in rescued:
            log.warning(
                "slim: keeping %s (rule %s): a kept library lists it in DT_NEEDED",
                rel,
                plan[rel].id,
            )
            del plan[rel]


def prune_empty_dirs(site: Path, removed: list[str]) -> None:
    parents = {posixpath.dirname(rel) for rel in removed}
    dirs: set[str] = set()
    for p in parents:
        while p:
            dirs.add(p)
            p = posixpath.dirname(p)
    for d in sorted(dirs, key=lambda s: (-s.count("/"), s)):
        path = site / d
        if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()


def slim_tree(
    root: Path,
    site_packages: str,
    *,
    profile: str = "inference",
    keep: Sequence[str] = (),
    ledger: Ledger,
    backup: Path | None = None,
    skipped: Mapping[str, tuple[str, int]] | None = None,
) -> dict[str, str]:
    """Slim ``root + site_packages`` by the rules of ``profile``; record every byte in ``ledger``.

    ``keep`` globs (relative to site-packages, or absolute image paths; a glob matching a
    directory keeps all below it) override every rule. RECORD files are rewritten to match.
    Returns the removed files (image paths) and the rule that removed each, for
    ``slim.closure.check_closure(removed=...)``. ``backup``: a directory (created) that
    keeps every original, for ``slim.restore.restore``. ``skipped``: image path -> (rule
    id, bytes) of the files ``InstallSkips`` kept from being written; they are booked as
    removed, in the same order as the files removed here.
    """
    check_profile(profile)
    site_packages = "/" + site_packages.strip("/")
    site = root / site_packages.lstrip("/")
    if not site.is_dir():
        raise BuildError(
            f"site-packages {site_packages} not found in staging tree {root}: "
            "install the wheels before slimming"
        )
    view = SiteView(site)
    keeper = KeepGlobs(keep, site_packages)
    files = _walk(site)
    plan = _plan(view, files, profile, keeper)
    _protect_needed(view, files, plan)

    saved = Backup(backup) if backup is not None else None
    never_written = {
        path[len(site_packages) + 1 :]: booked for path, booked in (skipped or {}).items()
    }
    if saved is not None and never_written:
        raise BuildError("slim: a backup needs every file written; install without skipping")
    removed: list[str] = []
    by_rule: dict[str, str] = {}
    for rel in sorted(plan.keys() | never_written.keys()):
        image_path = posixpath.join(site_packages, rel)
        if rel in never_written:
            rule_id, size = never_written[rel]
        else:
            rule_id, path = plan[rel].id, site / rel
            size = path.lstat().st_size
            if saved is not None:
                saved.move_removed(image_path, path, rule_id, size)
            else:
                path.unlink()
        ledger.add(rule_id, image_path, size)
        removed.append(rel)
        by_rule[image_path] = rule_id
    prune_empty_dirs(site, removed)

    changed = _strip(view, [f for f in files if f not in plan], profile, keeper, ledger, saved)
    if saved is not None:
        for record in site.glob("*.dist-info/RECORD"):
            rel = record.relative_to(site).as_posix()
            saved.copy_record(posixpath.join(site_packages, rel), record)
        saved.save()
    rewrite_records(site, set(removed), changed)
    return by_rule


def _strip(
    view: SiteView,
    files: list[str],
    profile: str,
    keep: KeepGlobs,
    ledger: Ledger,
    backup: Backup | None,
) -> set[str]:
    changed: set[str] = set()
    strippers = [r for r in RULES if r.action == "strip" and r.active_in(profile)]
    if not strippers:
        return changed
    tool = strip_tool()
    if tool is None:
        log.warning("slim: binutils 'strip' not found; skipping rule strip-symbols")
        return changed
    site_packages = keep.site_packages
    chosen: list[tuple[str, Rule]] = []
    for rel in files:
        if keep(rel):
            continue
        rule = next((r for r in strippers if r.applies(view, rel)), None)
        if rule is not None:
            chosen.append((rel, rule))

    def strip_one(rel: str) -> StripResult:
        image_path = posixpath.join(site_packages, rel)
        original = backup.file(image_path) if backup is not None else None
        return strip_checked(view.site / rel, tool, original_to=original)

    # One strip process per core: each file is its own; results are booked in file order.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(pool.map(strip_one, [rel for rel, _ in chosen]))
    for (rel, rule), result in zip(chosen, results, strict=True):
        image_path = posixpath.join(site_packages, rel)
        if result.reverted:
            ledger.revert(rule.id, image_path, result.kept, result.reverted, applied=False)
        if result.saved > 0:
            ledger.add(rule.id, image_path, result.saved)
            if backup is not None:
                backup.note_stripped(image_path, rule.id, result.saved)
            changed.add(rel)
    return changed
