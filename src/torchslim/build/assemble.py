"""The image on top of its base: Python layers, app and model layers, and its config.

Assembled once, and again when the proof shows a slimming change breaks a file (with
that change undone). Everything it needs was settled by the steps before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torchslim.build import (
    annotate,
    census,
    debugtools,
    files,
    imageconfig,
    notebook,
    python,
    reverts,
)
from torchslim.build.base import Base, OpenedBase
from torchslim.build.dates import Dates
from torchslim.build.layercache import LayerCache
from torchslim.build.lock import target_of
from torchslim.build.plan import Plan
from torchslim.build.report import LayerReport
from torchslim.cache import BlobStore
from torchslim.config import Steps
from torchslim.deps.lock import Lock
from torchslim.errors import BuildError
from torchslim.oci.image import Image
from torchslim.oci.layer import Layer
from torchslim.oci.mutate import append_layers, with_config
from torchslim.project.metadata import image_metadata
from torchslim.slim.ledger import Revert


def image_facts(plan: Plan, opened: OpenedBase, dates: Dates) -> imageconfig.ImageFacts:
    """What the config says that the plan cannot know: dates, base, checkout, metadata."""
    meta = image_metadata(plan.cfg)
    return imageconfig.ImageFacts(
        created=dates.created,
        base_name=annotate.base_name(plan),
        base_digest=opened.image.digest() if opened.image is not None else None,
        revision=files.git_revision(plan.cfg.root),
        licenses=meta.licenses,
        description=meta.description,
    )


def not_in_base(
    config: dict[str, object], new: list[tuple[Layer, LayerReport]], steps: Steps
) -> list[tuple[Layer, LayerReport]]:
    """A shared base (``build --target base``) already holds these layers: not added again."""
    rootfs = config.get("rootfs")
    present = set(rootfs.get("diff_ids") or []) if isinstance(rootfs, dict) else set()
    out = []
    for layer, report in new:
        if layer.diff_id in present:
            steps.step(f"Layer {report.name} is already in the base: not added again")
        else:
            out.append((layer, report))
    return out


class Assembly:
    """Makes the image for a set of undone slimming changes (``reverts``)."""

    def __init__(
        self,
        plan: Plan,
        os_: Base,
        python_lock: Lock | None,
        dates: Dates,
        facts: imageconfig.ImageFacts,
        layers: LayerCache,
        store: BlobStore,
        steps: Steps,
        *,
        glibc: str | None = None,
        assembled: Callable[[Image], object] | None = None,
    ) -> None:
        self.plan, self.os, self.python = plan, os_, python_lock
        self.assembled = assembled  # told of each image made (the SBOM reads ahead)
        self.glibc = glibc  # the base's, for the notebook layer's wheel target
        self.dates, self.facts = dates, facts
        self.layers, self.store, self.steps = layers, store, steps
        known = reverts.saved_reverts(layers, plan, python_lock, os_.rootfs) if python_lock else []
        self.reverts: list[Revert] = known  # what earlier proofs found, for these wheels
        # The site-packages modules the served proof saw imported (``plan.census``): the
        # Python layers keep only their .pyc (bytecode = "imported") or only them (profile
        # used); None: everything (the first try of a service never served before).
        self.imports: list[str] | None = None
        # Without a proof there is no census: everything, on every host alike.
        if plan.census and python_lock:
            self.imports = census.saved_imports(layers, plan, python_lock, os_.rootfs)
        # eStargz: the files the last served proof opened go first (the base is made).
        if plan.prefetch and python_lock:
            layers.prefetch = tuple(
                census.saved_prefetch(layers, plan, python_lock, os_.rootfs) or ()
            )
        # A build that learns from its proof assembles again: from the tree it staged.
        self.stages = python.KeptStages() if plan.census or plan.prefetch else None
        self._tools: tuple[Layer, LayerReport] | None = None
        self._notebook: tuple[Layer, LayerReport] | None = None

    def tools(self) -> tuple[Layer, LayerReport]:
        """The debug target's tools layer (made once: a proof's reassembly reuses it)."""
        if self._tools is None:
            mtime = self.dates.image_epoch
            made = debugtools.tools_layer(self.plan, mtime, self.layers, self.store, self.steps)
            self._tools = made
        return self._tools

    def notebook(self) -> tuple[Layer, LayerReport]:
        """The notebook target's Jupyter layer (made once, as the tools layer is)."""
        if self._notebook is None:
            if self.python is None:
                raise BuildError("--target notebook: the service has no Python lock")
            self._notebook = notebook.notebook_layer(
                self.plan,
                self.python,
                target_of(self.plan, self.glibc),
                self.os.rootfs,
                self.dates.image_epoch,
                self.layers,
                self.store,
                self.steps,
            )
        return self._notebook

    def close(self) -> None:
        """Remove what the build kept for its next assembly."""
        if self.stages is not None:
            self.stages.close()

    def image(self, undo: Sequence[Revert]) -> tuple[Image, list[LayerReport]]:
        plan, os_ = self.plan, self.os
        new = list(os_.new)
        if self.python is not None:
            made = python.python_layers(
                plan,
                self.python,
                os_.rootfs,
                os_.libs,
                self.dates,
                self.layers,
                self.store,
                self.steps,
                undo,
                self.imports,
                self.stages,
            )
            new += not_in_base(os_.image.config(), made, self.steps)
        if plan.service:
            python_version = os_.rootfs.python_version
            new += files.service_layers(plan, python_version, self.dates.image_epoch, self.layers)
        if plan.debug:
            new.append(self.tools())
        if plan.notebook:
            new.append(self.notebook())
        image = append_layers(
            os_.image,
            [(layer, self.store, f"torchslim: {report.name}") for layer, report in new],
            created=self.dates.created,
        )
        image = with_config(image, **imageconfig.image_config(plan, os_.rootfs, self.facts))
        if self.assembled is not None:
            self.assembled(image)
        return image, [*os_.reports, *(report for _, report in new)]
