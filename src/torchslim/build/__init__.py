"""The build: a flat list of named steps over one plan (after apko's ``buildImage``).

``plan_build`` makes every decision (and finds every configuration error) up front;
``build`` turns one plan into an image for one platform and writes nothing;
``publish`` hands the images to a sink (ko's build vs publish). A multi-platform
build is ``build`` per platform, published as one index::

    bp = plan_build(cfg, BuildOptions(output="oci:out"), load_pip_settings())
    results = [build(plan, steps) for plan in bp.plans]
    written = publish(bp, results, steps)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from torchslim.build import annotate, base, imageconfig, lock, prove
from torchslim.build.assemble import Assembly, image_facts
from torchslim.build.dates import Dates
from torchslim.build.layercache import LayerCache
from torchslim.build.plan import BuildOptions, BuildPlan, Plan, plan_build, with_init
from torchslim.build.report import BuildResult, merged_ledger
from torchslim.build.sbom import Invocation, read_ahead, sbom_documents
from torchslim.build.timing import TimedSteps
from torchslim.buildcache import CacheSources, ExportResult, export_entries
from torchslim.cache import BlobStore
from torchslim.config import QuietSteps, Steps
from torchslim.deps.lock import Lock
from torchslim.errors import TorchslimError
from torchslim.oci.distribution import RegistryClient
from torchslim.oci.mutate import with_annotations, with_config
from torchslim.oci.reference import parse_reference
from torchslim.oci.sink import Sink, Written, sink_for
from torchslim.torchmeta import LABEL_PROOF

__all__ = [
    "BuildOptions",
    "BuildPlan",
    "BuildResult",
    "Invocation",
    "Plan",
    "build",
    "check_output",
    "plan_build",
    "publish",
    "publish_cache",
    "resolve_lock",
]


def build(
    plan: Plan, steps: Steps | None = None, invocation: Invocation | None = None
) -> BuildResult:
    """The image ``plan`` describes, built, cached and proven, with its SBOMs and provenance
    (``invocation``: the command that asked for it); nothing is written to an output.

    ``init = "auto"``: built without an init first; when the served proof shows the
    service did not stop on SIGTERM as PID 1, built again with Debian's tini."""
    timed = TimedSteps(steps or QuietSteps())  # the report says where the time went
    steps = timed
    store = BlobStore(warn=steps.warn)  # a corrupt cached blob is evicted with a warning
    sources = _sources(plan, store, steps)  # one per build: a dead source warns once
    try:
        result = _build_init(plan, steps, invocation, store, sources)
    finally:
        if sources is not None:
            sources.close()
    result.cache_fetched = sources.stats if sources is not None else None
    result.step_seconds = timed.finish()
    return result


def _build_init(
    plan: Plan,
    steps: Steps,
    invocation: Invocation | None,
    store: BlobStore,
    sources: CacheSources | None,
) -> BuildResult:
    """``build`` with its init decided (``init = "auto"``: see there)."""

    def one(init_plan: Plan) -> BuildResult:
        return _build(init_plan, steps, invocation, store, sources)

    if plan.cfg.init != "auto" or not plan.service:
        return one(plan)
    if not plan.prove:
        why = "no proof (--no-prove) showed that the service stops on SIGTERM as PID 1"
        return _with_init(one(with_init(plan, "tini")), "tini", why)
    first = one(with_init(plan, "none"))
    served = first.proof.served if first.proof is not None else None
    if served is not None and (served.stopped or "").startswith("on SIGTERM"):
        why = f"the served proof saw the service stop {served.stopped} as PID 1"
        steps.step(f"init auto: none ({why})")
        return _with_init(first, "none", why)
    why = "the served proof saw the service not stop on SIGTERM as PID 1; tini forwards it"
    if plan.base is not None:  # tini comes from Debian's archive; an own base has none
        why = "the service did not stop on SIGTERM as PID 1, and tini comes only with base = debian"
        steps.warn(
            f'init = "auto": {why}; handle SIGTERM in the service, or add an init to your base'
        )
        return _with_init(first, "none", why)
    steps.step(f"init auto: tini ({why}); building again with Debian's tini")
    second = one(with_init(plan, "tini"))
    # The next build makes the no-init variant first too: --cache-to keeps its layers.
    second.cache_entries = {**first.cache_entries, **second.cache_entries}
    return _with_init(second, "tini", why)


def _with_init(result: BuildResult, init: str, why: str) -> BuildResult:
    return dataclasses.replace(result, init=init, init_why=f'init = "auto": {init}, as {why}')


def _sources(plan: Plan, store: BlobStore, steps: Steps) -> CacheSources | None:
    if not plan.cache_from:
        return None
    return CacheSources(plan.cache_from, store, tls_verify=plan.tls_verify, warn=steps.warn)


def _build(
    plan: Plan,
    steps: Steps,
    invocation: Invocation | None,
    store: BlobStore,
    sources: CacheSources | None,
) -> BuildResult:
    """One build of ``plan`` (its init decided)."""
    started = time.monotonic()
    layers = LayerCache(
        store,
        compression=plan.compression,
        level=plan.compression_level,
        uid=plan.cfg.user,
        steps=steps,
        sources=sources,
    )
    existing = lock.read(plan)
    opened = base.open_base(plan, existing.base if existing else {}, steps)
    locked = lock.resolve(
        plan, existing, glibc=opened.glibc, base_pin=opened.pin(plan), store=store, steps=steps
    )
    dates = Dates(plan.source_date_epoch, locked.project.upload_epochs())
    findings = lock.dev_findings(plan, locked.python, steps)
    os_ = base.base_layers(plan, opened, locked.debian, dates, layers, store, steps)
    for warning in imageconfig.risky_env(plan):
        steps.warn(warning)
    facts = image_facts(plan, opened, dates)
    # The SBOM reads each layer's metadata; it does so while the proof runs (the proof
    # mostly waits on one core for the service), so the SBOM step later finds it read.
    with ThreadPoolExecutor(max_workers=1) as sbom_reader:
        assembly = Assembly(
            plan, os_, locked.python, dates, facts, layers, store, steps, glibc=opened.glibc,
            assembled=lambda made: sbom_reader.submit(read_ahead, made),
        )  # fmt: skip
        try:
            image, reports, proof = prove.prove_build(assembly)
        finally:
            assembly.close()
            sbom_reader.shutdown(cancel_futures=True)
    image = with_config(image, labels={LABEL_PROOF: proof.label()})
    image = with_annotations(image, annotate.manifest_annotations(image))
    artifacts = sbom_documents(
        plan, image, locked=locked, opened=opened, reports=reports,
        invocation=invocation or Invocation(), steps=steps,
    )  # fmt: skip
    return BuildResult(
        name=plan.cfg.name,
        tag=plan.tag,
        platform=str(plan.platform),
        image=image,
        layers=reports,
        ledger=merged_ledger(reports),
        dev_findings=findings,
        seconds=time.monotonic() - started,
        profile=plan.profile,
        slimmed=plan.slim,
        proof=proof,
        artifacts=artifacts,
        init=plan.cfg.init,
        cache_entries=layers.exported({layer.digest for layer in image.layers()}),
    )


def resolve_lock(plan: Plan, steps: Steps | None = None) -> Lock:
    """The lock step alone (``torchslim deps``): the prod wheels for the plan's target."""
    steps = steps or QuietSteps()
    existing = lock.read(plan)
    opened = base.open_base(plan, existing.base if existing else {}, steps)
    locked = lock.resolve(
        plan,
        existing,
        glibc=opened.glibc,
        base_pin=opened.pin(plan),
        store=BlobStore(warn=steps.warn),
        steps=steps,
    )
    assert locked.python is not None  # plans for `deps` have target "image"
    return locked.python


def check_output(bp: BuildPlan, steps: Steps | None = None) -> Sink | None:
    """The output's sink, checked before any work (an existing output needs --force)."""
    if bp.output is None:
        return None
    tls_verify = bp.plans[0].tls_verify
    progress = (steps or QuietSteps()).progress
    # Layers a build cache of the same registry holds are mounted from it, not uploaded.
    caches = [*bp.plans[0].cache_from, *([bp.cache_to] if bp.cache_to else [])]
    sink = sink_for(
        bp.output, force=bp.force, tls_verify=tls_verify, progress=progress, mount_from=caches
    )
    sink.check()
    return sink


def publish_cache(
    bp: BuildPlan, results: Sequence[BuildResult], steps: Steps | None = None
) -> ExportResult | None:
    """``--cache-to``: every layer the builds used, as entries in the cache repository.

    A registry that fails is one warning: the build's image is written already, and a
    later build misses what did not arrive."""
    ref = bp.cache_to
    if ref is None:
        return None
    steps = steps or QuietSteps()
    steps.step(f"Writing the build cache to {ref.registry}/{ref.repository}")
    entries = [e for r in results for e in r.cache_entries.values()]
    mounts: list[str] = []
    if bp.output is not None and bp.output.transport == "docker":
        out = parse_reference(bp.output.target)
        if out.registry == ref.registry:
            mounts.append(out.repository)  # the image's layers are there: mount, not upload
    try:
        with RegistryClient(ref.registry, tls_verify=bp.plans[0].tls_verify) as client:
            return export_entries(
                entries, ref, BlobStore(warn=steps.warn), client=client, mount_from=mounts,
                progress=steps.progress,
            )  # fmt: skip
    except TorchslimError as exc:
        steps.warn(f"--cache-to {ref.registry}/{ref.repository}: not written ({exc})")
        return None


def publish(
    bp: BuildPlan,
    results: Sequence[BuildResult],
    steps: Steps | None = None,
    *,
    attach_sbom: bool = True,
) -> Written | None:
    """Write the built images to the plan's output: one image, or one index of platforms,
    each with its SBOMs and provenance attached as referrers (unless ``attach_sbom`` is off:
    a layout then holds the image alone, for tools that read only one manifest)."""
    sink = check_output(bp, steps)
    if sink is None:
        return None
    (steps or QuietSteps()).step(f"Writing {bp.output}")
    referrers = [r.artifacts for r in results] if attach_sbom else []
    return sink.write(
        [r.image for r in results], name=bp.plans[0].cfg.name, tag=bp.tag, referrers=referrers
    )
