"""The prove step: run the image's own files before anything is written.

The image's layers are laid out as a scratch root of hard links to the trees the layers
were made from (``LayerCache.tree``: kept from the build, else unpacked once); the
image's interpreter, in a user namespace (no daemon), loads every kept shared object and
extension module (after ``import torch``), imports the entry module ``cmd`` names, finds
``cmd``'s executable on the image's PATH and runs ``smoke`` (``runtime.proof``). A proven
image's result is cached by its digest, so an unchanged image is not proven again.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path

from torchslim.build import census, notebook, proofcache, reverts
from torchslim.build.assemble import Assembly
from torchslim.build.layercache import LayerCache, staging
from torchslim.build.plan import APP_ROOT, INIT_ENTRYPOINT, Plan
from torchslim.build.proofroot import proof_root
from torchslim.build.report import LayerReport
from torchslim.build.revertsearch import search_reverts
from torchslim.config import Steps
from torchslim.debian import RootfsInfo
from torchslim.errors import BuildError
from torchslim.oci.image import Image
from torchslim.project.pyproject import read_pyproject, script_command
from torchslim.proof.census import ran_code_under
from torchslim.proof.prove import Failure, Proof, prove_rootfs
from torchslim.proof.result import LOADS
from torchslim.proof.serve import ServeSpec, SmokeRequest
from torchslim.slim.bytecode import modules_opened
from torchslim.slim.image import ImageView
from torchslim.slim.ledger import Revert
from torchslim.slim.owners import owner_of, package_owners
from torchslim.slim.used import PROFILE as USED_PROFILE


class ProofError(BuildError):
    """The image does not work, and undoing slimming does not make it work."""


def not_proven(reason: str) -> Proof:
    return Proof("not-proven", None, reason)


def _env(image: Image) -> dict[str, str]:
    config = image.config().get("config") or {}
    pairs = (str(e).partition("=") for e in config.get("Env") or [])
    return {k: v for k, _, v in pairs}


def serve_spec(plan: Plan, token: str | None = None) -> ServeSpec | None:
    """What the served proof asks of a service image (None: no port, nothing to serve);
    the notebook target's with ``token``, the one its proof's env gives."""
    cfg = plan.cfg
    if plan.notebook and token is not None:
        return notebook_spec(plan, token)
    if not plan.service or cfg.port is None:
        return None
    requests = []
    for r in cfg.requests:
        method, body, headers = r.wire(cfg.root)
        requests.append(SmokeRequest(method, r.path, r.status, body, headers))
    return ServeSpec(
        port=cfg.port,
        health=cfg.health,
        requests=tuple(requests),
        writable=tuple(cfg.writable),
        timeout=float(cfg.proof_timeout),
        census=plan.census or plan.prefetch,
    )


def notebook_spec(plan: Plan, token: str) -> ServeSpec:
    """Jupyter answers its status with the token, and 403 without it."""
    authorized = {"Authorization": f"token {token}"}
    return ServeSpec(
        port=notebook.PORT,
        health=f"/api/status?token={token}",
        requests=(
            SmokeRequest("GET", "/api/status", 403),
            SmokeRequest("GET", "/api/kernelspecs", 200, headers=authorized),
        ),
        writable=(*plan.cfg.writable, notebook.NOTEBOOK_DIR),
        timeout=float(plan.cfg.proof_timeout),
    )


def prove_image(
    plan: Plan,
    image: Image,
    rootfs: RootfsInfo,
    layers: LayerCache,
    steps: Steps,
    *,
    fresh: bool = False,
) -> Proof:
    """Prove ``image`` (or reuse the proof of the same digest, unless ``fresh``)."""
    token = notebook.proof_token(image.digest()) if plan.notebook else None
    service = serve_spec(plan, token)
    key = proofcache.proof_key(image, plan.cfg.smoke if plan.service else [], service)
    if not fresh and (hit := proofcache.cached_proof(key)) is not None:
        steps.step("Proof: this exact image was proven before")
        layers.keep_proof(key, hit)
        return hit
    if not fresh and (shared := layers.shared_proof(key)) is not None:
        steps.step("Proof: this exact image was proven by the build that wrote --cache-from")
        proofcache.save_proof(key, shared)
        return shared
    steps.step(f"Proving the image runs ({plan.platform})")
    started = time.monotonic()
    user = plan.cfg.user
    trees = [layers.tree(image, layer) for layer in image.layers()]
    with (
        staging("rootfs") as scratch,
        proof_root(image, trees, scratch, workdir=APP_ROOT) as root,
    ):
        loads_key = proofcache.loads_key(image, trees, rootfs.python_exe)
        loads = None if fresh else proofcache.cached_loads(loads_key)
        proof = prove_rootfs(
            root,
            python_exe=rootfs.python_exe,
            env={**_env(image), **({"JUPYTER_TOKEN": token} if token else {})},
            user=(user, user),
            workdir=APP_ROOT,
            cmd=_cmd(plan, rootfs),
            init=INIT_ENTRYPOINT.get(plan.cfg.init, []) if plan.service else [],
            smoke=list(plan.cfg.smoke) if plan.service else [],
            arch=plan.platform.arch,
            service=service,
            progress=lambda s: steps.step(f"Proof: waiting for the service to answer ({s:.0f} s)"),
            check_paths=[] if loads is not None else None,  # loaded before: load nothing
        )
        if loads is not None:
            proof = proofcache.with_loads(proof, loads)
        if proof.failures or proof.warnings:
            proof = dataclasses.replace(
                proof,
                failures=_with_packages(proof.failures, root),
                warnings=_with_packages(proof.warnings, root),
            )
    # The step's whole cost: laying out the layers and running the checks.
    proof = dataclasses.replace(proof, seconds=time.monotonic() - started)
    if loads is None:
        proofcache.save_loads(loads_key, proof)
    if proof.ok:
        proofcache.save_proof(key, proof)
        layers.keep_proof(key, proof)
    return proof


def _cmd(plan: Plan, rootfs: RootfsInfo) -> list[str]:
    """The image's command, as its config says."""
    if plan.notebook:
        return notebook.command(rootfs.python_exe)
    return list(plan.cfg.cmd) if plan.service else [rootfs.python_exe]


_SITE_PATH = re.compile(r"(/[^\s()'\",]+-packages/[^\s()'\",]+\.py)")
_FRAME_PATH = re.compile(r"\(([\w./-]+\.py), line \d+\)")


def _with_packages(failures: tuple[Failure, ...], root: Path) -> tuple[Failure, ...]:
    """Each failure with the distribution it comes from (the RECORD files): the failing
    file's, or for a service or entry that raised, the module named in the error (the
    one that lacks a name) else the frame that raised, so a break names its package."""
    owners = package_owners(ImageView([(root, "/")]))
    out = []
    for f in failures:
        package = None
        if f.check in ("library", "extension"):
            package = owner_of(f.subject, owners)
        elif f.check in ("serve", "entry"):
            package = _message_owner(f.message, owners)
        out.append(dataclasses.replace(f, package=package) if package else f)
    return tuple(out)


def _message_owner(message: str, owners: dict[str, str]) -> str | None:
    full = _SITE_PATH.search(message)
    if full and (hit := owner_of(full[1], owners)):
        return hit
    frame = _FRAME_PATH.search(message)
    if frame:
        tail = "-packages/" + frame[1]
        return next((o for p, o in owners.items() if p.endswith(tail)), None)
    return None


def raise_for_failures(proof: Proof, plan: Plan, *, unslimmed: bool = True) -> None:
    """A failed proof is the project's problem here (slimming was undone or not involved).

    ``unslimmed``: the failure was seen with slimming undone too (else: "as built")."""
    if proof.status != "failed":
        return
    proof = dataclasses.replace(proof, failures=_with_script_hint(proof.failures, plan))
    first = proof.failures[0].line()
    more = f" (and {len(proof.failures) - 1} more)" if len(proof.failures) > 1 else ""
    lines = "\n".join(f"  {f.line()}" for f in proof.failures[:20])
    unslim = plan.slim and unslimmed
    why = "not because of slimming (it fails unslimmed too)" if unslim else "as built"
    fix = _fix(proof.failures[0])
    fix = "" if "--no-prove" in first else fix  # the failure's own line already says what to do
    output = proof.served.output if proof.served and not proof.served.ok else ""
    lines += f"\n  the service's last output: {output}" if output else ""
    raise ProofError(f"proof: the image does not work, {why}: {first}{more}{fix}\n{lines}")


def _fix(failure: Failure) -> str:
    """The part of the project to change, for the first failure."""
    if failure.check in ("serve", "entry") and failure.package:
        name = failure.package.split()[0]
        return (
            f"; {failure.package} is locked: pin the {name} release your code needs in your "
            "requirements (`--no-prove` skips this check)"
        )
    if failure.check == "serve" and (
        "listen" in failure.message or "not on port" in failure.message
    ):
        return ""  # the line says which setting
    part = {
        "cmd": "`cmd`",
        "workdir": "`app`",
        "smoke": "`smoke`",
        "serve": "`cmd`, `port`, `health` or the app",
        "entry": "the app or its `requirements`",
    }.get(failure.check, "`requirements`")
    return f"; fix {part} (`--no-prove` skips this check)"


def _with_script_hint(failures: tuple[Failure, ...], plan: Plan) -> tuple[Failure, ...]:
    """``cmd = ["serve"]`` naming the project's own console script, which only an installed
    wheel of the project puts on PATH: the command that runs it from the shipped files."""
    data = read_pyproject(plan.cfg.root) or {}
    out = []
    for f in failures:
        run = script_command(data, f.subject) if f.check == "cmd" else None
        if run is not None:
            fix = json.dumps([*run, *plan.cfg.cmd[1:]])
            f = dataclasses.replace(
                f,
                message=f"{f.message}; {f.subject} is a script of pyproject.toml, which "
                f"torchslim does not install (it ships the files): cmd = {fix}",
            )
        out.append(f)
    return tuple(out)


# What a service says that slimming cannot have caused: where and whether it listens.
_NOT_SLIMMING = re.compile(
    r"listens only on|not on port|reached for the network|did not listen on port|"
    r"did not answer 2xx within|listened only on the unix socket"
)
_SERVED = ("serve", "entry", "smoke")
_SITE_DIR = re.compile(r"-packages/([A-Za-z_][\w.-]*)/")


def _served_failure(proof: Proof) -> Failure | None:
    """The failure of the service itself that undoing slimming might fix, if any. None
    when a file failed to load too: that explains the service, and ``find_reverts`` has
    already looked for slimming's part in it."""
    if any(f.check in LOADS for f in proof.failures):
        return None
    for f in proof.failures:
        if f.check in _SERVED and not _NOT_SLIMMING.search(f.message):
            return f
    return None


Built = tuple[Image, list[LayerReport], Proof]
SMALL_UNDO = 1 << 20  # kept whole: narrowing a megabyte further costs more rebuilds than it saves


def _bytes(undo: list[Revert]) -> int:
    return sum(r.bytes for r in undo)


def _search_served(assembly: Assembly, failure: Failure) -> tuple[Built | None, bool]:
    """Serve the image with the slimming of the packages the failure names undone; when it
    answers, undo only the changes it needs (``revertsearch``), remember them, and return
    that image and its proof. Also whether it was served unslimmed at all (False: slimming
    changed nothing in those packages)."""
    plan, steps, py, rootfs = assembly.plan, assembly.steps, assembly.python, assembly.os.rootfs
    if py is None:
        return None, False  # no Python layers: nothing was slimmed
    why = failure.message if len(failure.message) <= 300 else failure.message[:299] + "…"
    reason = f"the service fails without it ({why})"
    # Only the packages the failure names (a path below site-packages, the raising frame,
    # its distribution): a search over all of torch would rebuild torch's layer each try.
    dirs = set(_SITE_DIR.findall(failure.message))
    dirs |= {f.split("/")[0] for f in _FRAME_PATH.findall(failure.message) if f[:1] != "/"}
    packages = {failure.package.split()[0].lower()} if failure.package else set()
    if not dirs and not packages:
        return None, False  # the app's own code or settings: no package to look at
    steps.step("The service failed: did slimming change the packages it names?")
    changes = reverts.slimming_changes(
        plan, py, rootfs, assembly.reverts, assembly.store, steps, reason,
        dirs=dirs, packages=packages,
    )  # fmt: skip
    if not changes:
        return None, False
    steps.step(f"The service failed: serving it with {len(changes)} slimming changes undone")
    served: dict[tuple[str, ...], Built] = {}  # each undone set that served, by its paths

    def serves(undo: list[Revert]) -> bool:
        steps.step(f"Slimming search: serving with {len(undo)} of {len(changes)} changes undone")
        image, reports = assembly.image([*assembly.reverts, *undo])
        proof = prove_image(plan, image, rootfs, assembly.layers, steps)
        if proof.ok:
            served[tuple(r.path for r in undo)] = (image, reports, proof)
        return proof.ok

    outcome = search_reverts(changes, serves, enough=lambda undo: _bytes(undo) <= SMALL_UNDO)
    if outcome.undo is None:
        return None, True
    assembly.reverts = [*assembly.reverts, *outcome.undo]
    reverts.save_reverts(assembly.layers, plan, py, rootfs, assembly.reverts)
    rules = sorted({r.rule for r in outcome.undo})
    shown = ", ".join(r.path for r in outcome.undo[:3])
    more = f" and {len(outcome.undo) - 3} more" if len(outcome.undo) > 3 else ""
    steps.warn(
        f"slimming undone for {shown}{more} (rule {', '.join(rules)}): {reason}; found in "
        f"{outcome.tries} served proof{'s' if outcome.tries > 1 else ''}"
        + ("" if outcome.narrowed else " (not narrowed further)")
    )
    return served[tuple(r.path for r in outcome.undo)], True


def _from_census(
    assembly: Assembly, image: Image, reports: list[LayerReport], proof: Proof
) -> Built:
    """What the served proof saw the service load, put to use (see ``build.census``):

    - ``plan.census``: when it imported site-packages modules the image was not assembled
      for, assemble for them (``bytecode = "imported"``, profile ``used``);
    - ``plan.prefetch``: when it opened files the eStargz layers do not put first yet,
      put them first;

    and prove that image again. A served proof that recorded nothing changes nothing.
    What is no longer loaded stays, so the image settles after one more proof at most."""
    plan, py, rootfs = assembly.plan, assembly.python, assembly.os.rootfs
    served = proof.served
    if py is None or served is None or not served.ok or not served.opened:
        return image, reports, proof
    changes: list[str] = []
    if plan.census and _imports_grew(assembly, served.opened, served.ran):
        kept = "only them" if plan.profile == USED_PROFILE else "only their .pyc"
        changes.append(
            f"the service loaded {len(assembly.imports or ())} modules of site-packages; "
            f"keeping {kept}"
        )
    if plan.prefetch:
        before = set(assembly.layers.prefetch)
        files = set(census.prefetch_paths(served.opened))
        merged = sorted(before | files)
        census.save_prefetch(assembly.layers, plan, py, rootfs, merged)
        if not files <= before:
            assembly.layers.prefetch = tuple(merged)
            changes.append(f"the service opened {len(merged)} files; eStargz layers put them first")
    if not changes:
        return image, reports, proof
    assembly.steps.step(f"Census: {'; '.join(changes)}; proving that image")
    image, reports = assembly.image(assembly.reverts)
    proof = prove_image(plan, image, rootfs, assembly.layers, assembly.steps)
    if proof.status == "failed" and plan.profile == USED_PROFILE:
        raise ProofError(
            f'proof: profile "used": the image without the modules the first proof did not '
            f"import does not work: {proof.failures[0].line()}; keep what it needs with `keep` "
            "(a module's or a distribution's folder), or use profile \"inference\""
        )
    raise_for_failures(proof, plan, unslimmed=False)
    return image, reports, proof


def _imports_grew(assembly: Assembly, opened: Sequence[str], ran: Sequence[str]) -> bool:
    """Whether the census adds site-packages modules to ``assembly.imports`` (then set);
    the census is saved either way."""
    plan, py, rootfs = assembly.plan, assembly.python, assembly.os.rootfs
    assert py is not None
    if not ran_code_under(tuple(ran), APP_ROOT):
        if plan.profile == USED_PROFILE:
            raise ProofError(
                f'proof: profile "used": the served proof never ran the app\'s own code (no '
                f"file under {APP_ROOT} ran: the health path and requests answered without "
                "it, as Streamlit's do), so what it needs is unknown; add a request that runs "
                'it to `requests`, or use profile "inference"'
            )
        assembly.steps.warn(
            f'bytecode = "imported": the served proof never ran the app\'s own code (no file '
            f"under {APP_ROOT} ran), so every .pyc stays"
        )
        return False
    seen = modules_opened(opened, rootfs.site_packages, rootfs.python_version)
    before = assembly.imports
    if before is not None and set(seen) <= set(before):
        census.save_imports(assembly.layers, plan, py, rootfs, before)
        return False
    assembly.imports = sorted(set(seen) | set(before or ()))
    census.save_imports(assembly.layers, plan, py, rootfs, assembly.imports)
    return True


def prove_build(assembly: Assembly) -> tuple[Image, list[LayerReport], Proof]:
    """Assemble and prove; a load that fails slimmed but not unslimmed is slimming's fault:
    undo those changes, assemble and prove again (at most ``reverts.MAX_ROUNDS`` times)."""
    plan, steps = assembly.plan, assembly.steps
    image, reports = assembly.image(assembly.reverts)
    if not plan.prove:
        steps.warn("the image was not proven to run (--no-prove)")
        return image, reports, not_proven("skipped with --no-prove")
    proof = prove_image(plan, image, assembly.os.rootfs, assembly.layers, steps)
    if proof.status == "failed" and assembly.imports is not None:
        # A census of an earlier build: this one's service may load more. Start afresh.
        steps.step("Census: the image made from the last census fails; serving it whole")
        assembly.imports = None
        image, reports = assembly.image(assembly.reverts)
        proof = prove_image(plan, image, assembly.os.rootfs, assembly.layers, steps)
    py = assembly.python
    rootfs = assembly.os.rootfs
    examined = reverts.examined(plan, py, rootfs) if py is not None else set()
    for _ in range(reverts.MAX_ROUNDS):
        # Failures, and files that fail alone while the service works: slimming may have
        # broken either; a file already found to fail unslimmed too is not searched again.
        suspects = [*proof.failures, *(w for w in proof.warnings if w.subject not in examined)]
        if not suspects or not plan.slim or py is None:
            break
        found = reverts.find_reverts(
            plan, py, rootfs, assembly.os.libs, suspects, assembly.reverts, assembly.store, steps
        )  # fmt: skip
        examined |= {w.subject for w in proof.warnings}
        reverts.save_examined(plan, py, rootfs, examined)
        if not found:
            break
        assembly.reverts = [*assembly.reverts, *found]
        reverts.save_reverts(assembly.layers, plan, py, rootfs, assembly.reverts)
        for r in found:
            steps.warn(f"slimming undone for {r.path} (rule {r.rule}): {r.reason}")
        image, reports = assembly.image(assembly.reverts)
        proof = prove_image(plan, image, rootfs, assembly.layers, steps)
    unslimmed = not proof.failures or any(reverts.may_be_slimming(f) for f in proof.failures)
    failure = _served_failure(proof) if plan.slim and py is not None else None
    if failure is not None:
        searched, served_unslimmed = _search_served(assembly, failure)
        unslimmed = unslimmed or served_unslimmed
        if searched is not None:
            image, reports, proof = searched
    raise_for_failures(proof, plan, unslimmed=unslimmed)
    image, reports, proof = _from_census(assembly, image, reports, proof)
    for w in proof.warnings:
        owner = f" ({w.package})" if w.package else ""
        steps.warn(
            f"proof: {w.subject}{owner} does not load on its own ({w.message}); the service "
            "answered without it, so this is a hint, not a refusal"
        )
    if proof.status == "not-proven":
        steps.warn(f"the image was not proven to run: {proof.reason}")
    return image, reports, proof
