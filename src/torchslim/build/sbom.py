"""The sbom step: CycloneDX, SPDX and provenance of one built image (docs/sbom.md).

Made after the proof, from the final image: its files (each layer's metadata is read once
and kept by layer digest, so a warm build reads no layer), the lock (wheel and ``.deb``
hashes, the signed Debian release files), the removals every layer's cache entry keeps,
and how the build was asked for. Nothing here depends on a clock or on where the image
goes, so the same inputs give the same bytes; the sinks attach the documents, and
``write_sbom_files`` writes them for ``--sbom DIR``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torchslim import __version__
from torchslim.atomic import write_atomic
from torchslim.build.annotate import OCI
from torchslim.build.base import OpenedBase
from torchslim.build.lock import Locked
from torchslim.build.plan import BuildOptions, Plan
from torchslim.build.report import BuildResult, LayerReport
from torchslim.config import Steps
from torchslim.oci.image import Image
from torchslim.oci.referrers import Artifact
from torchslim.sbom.artifacts import SUFFIXES, documents
from torchslim.sbom.collect import collect
from torchslim.sbom.layermeta import layer_meta_store
from torchslim.sbom.model import BaseRef, ImageIdentity, Removal, TorchInfo
from torchslim.sbom.provenance import (
    LOCAL_BUILDER,
    Material,
    ProvenanceInputs,
    file_material,
    git_material,
    image_material,
)
from torchslim.sbom.tree import layer_meta, tree_from_image

STEM = "sbom"  # sbom.cdx.json, sbom.spdx.json, sbom.provenance.json


@dataclass(frozen=True)
class Invocation:
    """How the build was asked for: provenance's ``externalParameters`` and builder."""

    command: tuple[str, ...] = ("torchslim", "build")
    options: Mapping[str, Any] = field(default_factory=dict)
    builder_id: str = LOCAL_BUILDER

    @classmethod
    def of(cls, command: Sequence[str], opts: BuildOptions, **kw: Any) -> Invocation:
        """``command`` (``torchslim build PROJECT``) and the options that differ from their
        defaults. What only says where reports go (``--json``, ``--sbom``) is not a build
        parameter: it is left out, so it does not change the statement."""
        default = asdict(BuildOptions())
        given = {k: v for k, v in asdict(opts).items() if v != default.get(k)}
        return cls(tuple(command), given, **kw)


def removals_of(reports: Sequence[LayerReport]) -> list[Removal]:
    return [r for report in reports for r in report.removals]


def base_ref(image: Image, opened: OpenedBase) -> BaseRef:
    """The base as the image's labels name it, pinned by digest when it is an image."""
    labels = (image.config().get("config") or {}).get("Labels") or {}
    name = str(labels.get(OCI + "base.name") or "")
    return BaseRef(name, opened.image.digest() if opened.image is not None else None)


def materials(plan: Plan, locked: Locked, base: BaseRef) -> list[Material]:
    """Every input by digest: config, lock, Debian release files, base image, git commit."""
    root = plan.cfg.root
    out = [file_material(plan.cfg.file, "config", root)]
    if plan.lock_path.is_file():  # a command-line target's lock is named by its file name
        lock_root = root if plan.lock_path.is_relative_to(root) else plan.lock_path.parent
        out.append(file_material(plan.lock_path, "lock", lock_root))
    for suite, release in sorted(locked.project.debian_releases.items()):
        algo, _, hexpart = release.get("sha256", "").partition(":")
        out.append(Material(f"debian:{suite}/InRelease", release.get("url", ""), {algo: hexpart}))
    if base.digest is not None:
        if plan.base is not None and plan.base.transport == "docker":
            out.append(image_material("base", base.name, base.digest))
        else:
            algo, _, hexpart = base.digest.partition(":")
            out.append(Material("base", plan.cfg.base, {algo: hexpart}))
    git = git_material(root)
    if git is not None:
        out.append(git)
    return out


def _internal(plan: Plan, base: BaseRef) -> dict[str, Any]:
    """What torchslim decided from the config and options."""
    return {
        "target": plan.target,
        "tag": plan.tag,
        "profile": plan.profile if plan.slim else "none",
        "keep": list(plan.keep),
        "compression": plan.compression,
        "compressionLevel": plan.compression_level,
        "python": plan.cfg.python,
        "torch": plan.torch.requirement if plan.target != "os" else None,
        "base": base.name,
        "proven": plan.prove,
    }


def read_ahead(image: Image) -> None:
    """Read ``image``'s layers' SBOM metadata into the store now, so ``sbom_documents``
    finds every layer there: a build calls it while the proof runs, on the other core."""
    store = layer_meta_store()
    for layer in image.layers():
        layer_meta(image, layer, store)


def sbom_documents(
    plan: Plan,
    image: Image,
    *,
    locked: Locked,
    opened: OpenedBase,
    reports: Sequence[LayerReport],
    invocation: Invocation,
    steps: Steps,
) -> list[Artifact]:
    """CycloneDX, SPDX and the provenance statement of ``image`` (the final, proven one)."""
    steps.step(f"Writing the SBOM and provenance ({plan.platform})")
    labels = (image.config().get("config") or {}).get("Labels") or {}
    ident = ImageIdentity(
        name=plan.cfg.name,
        digest=image.digest(),
        platform=str(plan.platform),
        tag=plan.tag,
        created=str(image.config().get("created") or "1970-01-01T00:00:00Z"),
        description=labels.get(OCI + "description"),
        licenses=labels.get(OCI + "licenses"),
    )
    base = base_ref(image, opened)
    torch = None
    if plan.target != "os":
        t = plan.torch
        torch = TorchInfo(version=t.version, variant=t.variant, cuda=t.cuda)
    tree = tree_from_image(image, layer_meta_store())
    inputs = collect(
        tree,
        ident,
        base,
        locked_wheels=locked.python.packages if locked.python is not None else (),
        locked_debs=locked.debian,
        mirror=plan.debian.mirror if plan.debian_base else None,
        removals=removals_of(reports),
        torch=torch,
    )
    prov = ProvenanceInputs(
        image=ident,
        command=invocation.command,
        options=invocation.options,
        internal=_internal(plan, base),
        materials=materials(plan, locked, base),
        source_date_epoch=plan.source_date_epoch,
        builder_id=invocation.builder_id,
        tool_version=__version__,
    )
    return documents(inputs, prov, stem=STEM)


def write_sbom_files(directory: Path, results: Sequence[BuildResult]) -> list[Path]:
    """``--sbom DIR``: one platform's documents in DIR, several in ``DIR/<os>-<arch>/``."""
    out = []
    for result in results:
        where = directory if len(results) == 1 else directory / result.platform.replace("/", "-")
        for artifact in result.artifacts:
            path = where / (artifact.title or STEM + SUFFIXES[artifact.artifact_type])
            write_atomic(path, artifact.data)
            out.append(path)
    return out
