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
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from torchslim.atomic import write_atomic
from torchslim.build import reverts
from torchslim.build.assemble import Assembly
from torchslim.build.layercache import LayerCache, staging
from torchslim.build.plan import APP_ROOT, Plan
from torchslim.build.report import LayerReport
from torchslim.cache import cache_root
from torchslim.config import Steps
from torchslim.debian import RootfsInfo
from torchslim.errors import BuildError
from torchslim.oci.image import Image
from torchslim.oci.unpack import merge_trees
from torchslim.project.pyproject import read_pyproject, script_command
from torchslim.proof import checker as proofcheck
from torchslim.proof.prove import Deferred, Failure, Proof, prove_rootfs
from torchslim.slim.image import ImageView
from torchslim.slim.owners import owner_of, package_owners

# Bump when what a proof checks changes; with the checker's own source it keys cached proofs.
PROOF_FORMAT = 1


class ProofError(BuildError):
    """The image does not work, and undoing slimming does not make it work."""


def not_proven(reason: str) -> Proof:
    return Proof("not-proven", None, reason)


def _env(image: Image) -> dict[str, str]:
    config = image.config().get("config") or {}
    pairs = (str(e).partition("=") for e in config.get("Env") or [])
    return {k: v for k, _, v in pairs}


def _key(plan: Plan, image: Image) -> str:
    checker = hashlib.sha256(Path(proofcheck.__file__).read_bytes()).hexdigest()
    text = json.dumps([PROOF_FORMAT, checker, image.digest(), plan.cfg.smoke], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _cached(key: str) -> Proof | None:
    try:
        data = json.loads((cache_root() / "proofs" / f"{key}.json").read_text())
        return proof_from_dict(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def proof_from_dict(d: dict[str, Any]) -> Proof:
    """Inverse of ``Proof.to_dict`` for the fields a report shows."""
    return Proof(
        status=d["status"],
        method=d.get("method"),
        reason=d.get("reason"),
        libraries=int(d.get("libraries", 0)),
        extensions=int(d.get("extensions", 0)),
        deferred=tuple(Deferred(x["path"], x["needs"], x["source"]) for x in d["deferred"]),
        skipped={str(k): int(v) for k, v in dict(d.get("skipped") or {}).items()},
        entry=d.get("entry"),
        entry_check=d.get("entry_check"),
        entry_note=d.get("entry_note"),
        cmd=d.get("cmd"),
        smoke=d.get("smoke", "not-configured"),
        failures=tuple(
            Failure(x["check"], x["subject"], x["message"], x.get("package")) for x in d["failures"]
        ),
        seconds=float(d.get("seconds", 0.0)),
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
    key = _key(plan, image)
    if not fresh and (hit := _cached(key)) is not None:
        steps.step("Proof: this exact image was proven before")
        return hit
    steps.step(f"Proving the image runs ({plan.platform})")
    started = time.monotonic()
    user = plan.cfg.user
    with staging("rootfs") as scratch:
        trees = [layers.tree(image, layer) for layer in image.layers()]
        root = merge_trees(trees, scratch / "root")
        workdir = root / APP_ROOT.lstrip("/")
        if not workdir.exists() and not workdir.is_symlink():
            workdir.mkdir(parents=True)  # as a runtime creates a missing WorkingDir
        proof = prove_rootfs(
            root,
            python_exe=rootfs.python_exe,
            env=_env(image),
            user=(user, user),
            workdir=APP_ROOT,
            cmd=list(plan.cfg.cmd) if plan.service else [rootfs.python_exe],
            smoke=list(plan.cfg.smoke) if plan.service else [],
            arch=plan.platform.arch,
        )
        if proof.failures:
            proof = dataclasses.replace(proof, failures=_with_packages(proof.failures, root))
    # The step's whole cost: laying out the layers and running the checks.
    proof = dataclasses.replace(proof, seconds=time.monotonic() - started)
    if proof.ok:
        write_atomic(cache_root() / "proofs" / f"{key}.json", json.dumps(proof.to_dict()))
    return proof


def _with_packages(failures: tuple[Failure, ...], root: Path) -> tuple[Failure, ...]:
    """Each failing file with the distribution that installed it (from the RECORD files),
    so a library missing upstream is reported with the package that needs it."""
    owners = package_owners(ImageView([(root, "/")]))
    return tuple(
        dataclasses.replace(f, package=owner_of(f.subject, owners))
        if f.check in ("library", "extension")
        else f
        for f in failures
    )


def raise_for_failures(proof: Proof, plan: Plan) -> None:
    """A failed proof is the project's problem here (slimming was undone or not involved)."""
    if proof.status != "failed":
        return
    proof = dataclasses.replace(proof, failures=_with_script_hint(proof.failures, plan))
    first = proof.failures[0].line()
    more = f" (and {len(proof.failures) - 1} more)" if len(proof.failures) > 1 else ""
    lines = "\n".join(f"  {f.line()}" for f in proof.failures[:20])
    why = "not because of slimming (it fails unslimmed too)" if plan.slim else "as built"
    fix = "; fix the project or its requirements (`--no-prove` skips this check)"
    fix = "" if "--no-prove" in first else fix  # the failure's own line already says what to do
    raise ProofError(f"the image does not work, {why}: {first}{more}{fix}\n{lines}")


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


def prove_build(assembly: Assembly) -> tuple[Image, list[LayerReport], Proof]:
    """Assemble and prove; a load that fails slimmed but not unslimmed is slimming's fault:
    undo those changes, assemble and prove again (at most ``reverts.MAX_ROUNDS`` times)."""
    plan, steps = assembly.plan, assembly.steps
    image, reports = assembly.image(assembly.reverts)
    if not plan.prove:
        steps.warn("the image was not proven to run (--no-prove)")
        return image, reports, not_proven("skipped with --no-prove")
    proof = prove_image(plan, image, assembly.os.rootfs, assembly.layers, steps)
    py = assembly.python
    for _ in range(reverts.MAX_ROUNDS):
        if proof.status != "failed" or not plan.slim or py is None:
            break
        found = reverts.find_reverts(
            plan,
            py,
            assembly.os.rootfs,
            assembly.os.libs,
            proof.failures,
            assembly.reverts,
            assembly.store,
            steps,
        )
        if not found:
            break
        assembly.reverts = [*assembly.reverts, *found]
        reverts.save_reverts(plan, py, assembly.os.rootfs, assembly.reverts)
        for r in found:
            steps.warn(f"slimming undone for {r.path} (rule {r.rule}): {r.reason}")
        image, reports = assembly.image(assembly.reverts)
        proof = prove_image(plan, image, assembly.os.rootfs, assembly.layers, steps)
    raise_for_failures(proof, plan)
    if proof.status == "not-proven":
        steps.warn(f"the image was not proven to run: {proof.reason}")
    return image, reports, proof
