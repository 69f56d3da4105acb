"""The build report: layers, slimming ledger, size against --no-slim, pull times."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from torchslim.atomic import write_atomic
from torchslim.buildcache.entry import AnyEntry
from torchslim.buildcache.export import ExportResult
from torchslim.buildcache.remote import FetchStats
from torchslim.deps.audit import DevFinding
from torchslim.display import safe, styled
from torchslim.oci.image import Image
from torchslim.oci.layer import Layer
from torchslim.oci.referrers import Artifact
from torchslim.oci.sink import Written
from torchslim.oci.upload import PushResult
from torchslim.proof.result import Proof
from torchslim.sbom.model import Removal
from torchslim.slim.ledger import Ledger
from torchslim.units import BANDWIDTHS, human, pull_seconds


@dataclass
class LayerReport:
    name: str
    digest: str
    size: int
    uncompressed: int  # -1: unknown (a pulled base's layers)
    cached: bool
    seconds: float
    ledger: dict[str, Any] = field(default_factory=dict)
    # Every path slimming (or the Debian unpacker) took out of this layer: the SBOM's
    # per-component removals. Kept in the layer cache, so a warm build has them too.
    removals: list[Removal] = field(default_factory=list)

    @classmethod
    def of(
        cls, name: str, layer: Layer, cached: bool, seconds: float, extra: dict[str, Any]
    ) -> LayerReport:
        """The report of a layer from what the layer cache keeps beside it."""
        d = layer.descriptor
        removals = [Removal.from_json(row) for row in extra.get("removals", [])]
        ledger = extra.get("ledger", {})
        return cls(
            name, d.digest, d.size, layer.uncompressed_size, cached, seconds, ledger, removals
        )


@dataclass
class BuildResult:
    """One built image (one platform), not yet written anywhere."""

    name: str
    tag: str
    platform: str
    image: Image
    layers: list[LayerReport]
    ledger: Ledger
    dev_findings: list[DevFinding]
    seconds: float
    profile: str
    slimmed: bool
    proof: Proof | None = None
    # The image's init ("none" or "tini") and, when the build chose it (init = "auto"), why.
    init: str = "none"
    init_why: str | None = None
    # Every layer the build used, by key (what --cache-to exports), and what --cache-from
    # served (None without it).
    cache_entries: dict[str, AnyEntry] = field(default_factory=dict)
    cache_fetched: FetchStats | None = None
    # Each named step's wall time (build.timing), in order: where the build's time went.
    step_seconds: list[tuple[str, float]] = field(default_factory=list)
    # CycloneDX, SPDX and provenance of ``image`` (sbom.documents): attached when written.
    artifacts: list[Artifact] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return self.image.digest()

    @property
    def compressed(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def uncompressed(self) -> int:
        # A pulled base's layers have no known uncompressed size (-1): not counted.
        return sum(layer.uncompressed for layer in self.layers if layer.uncompressed >= 0)

    @property
    def no_slim_uncompressed(self) -> int:
        """Size without slimming: the image plus every byte the ledger removed."""
        return self.uncompressed + self.ledger.total()


def merged_ledger(reports: Sequence[LayerReport]) -> Ledger:
    """The image's ledger: every layer's, together."""
    ledger = Ledger()
    for report in reports:
        if report.ledger:
            ledger.merge(Ledger.from_dict(report.ledger))
    return ledger


def to_dict(result: BuildResult, written: Written | None = None) -> dict[str, Any]:
    return {
        "name": result.name,
        "tag": result.tag,
        "digest": result.digest,
        "platform": result.platform,
        "profile": result.profile if result.slimmed else None,
        "output": written.location if written else None,
        "seconds": round(result.seconds, 2),
        "steps": [{"step": name, "seconds": round(sec, 2)} for name, sec in result.step_seconds],
        "size": {
            "compressed": result.compressed,
            "uncompressed": result.uncompressed,
            "no_slim_uncompressed": result.no_slim_uncompressed,
            "ratio_vs_no_slim": round(result.uncompressed / result.no_slim_uncompressed, 4)
            if result.no_slim_uncompressed
            else 1.0,
        },
        "pull_seconds": {
            k: round(pull_seconds(result.compressed, v), 2) for k, v in BANDWIDTHS.items()
        },
        "layers": [
            {
                "name": layer.name,
                "digest": layer.digest,
                "compressed": layer.size,
                "uncompressed": layer.uncompressed,
                "cached": layer.cached,
            }
            for layer in result.layers
        ],
        "ledger": result.ledger.to_dict(),
        "proof": result.proof.to_dict() if result.proof is not None else None,
        "init": {"init": result.init, "why": result.init_why},
        "cache_from": _fetched_dict(result.cache_fetched),
        "sbom": [
            {"file": a.title, "artifact_type": a.artifact_type, "digest": a.digest}
            for a in result.artifacts
        ],
        "dev_packages": [
            {"package": f.package, "brought_by": list(f.chain[1:])} for f in result.dev_findings
        ],
    }


def _fetched_dict(stats: FetchStats | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    return {
        "hits": stats.hits,
        "misses": stats.misses,
        "proof_records": stats.proofs,
        "learned_records": stats.learned,
        "bytes_downloaded": stats.bytes,
        "requests": stats.requests,
        "warnings": list(stats.warnings),
    }


def export_dict(exported: ExportResult) -> dict[str, Any]:
    blobs = exported.blobs
    return {
        "reference": exported.reference,
        "entries_written": len(exported.written),
        "entries_present": len(exported.present),
        "bytes_uploaded": blobs.bytes_uploaded,
        "bytes_mounted_or_present": blobs.bytes_skipped,
    }


def push_dict(push: PushResult) -> dict[str, Any]:
    return {
        "reference": push.reference,
        "manifest_digest": push.manifest_digest,
        "uploaded": [{"digest": d, "size": n} for d, n in push.uploaded],
        "skipped": [{"digest": d, "size": n} for d, n in push.skipped],
        "mounted": [{"digest": d, "size": n} for d, n in push.mounted],
        "bytes_uploaded": push.bytes_uploaded,
        "bytes_skipped": push.bytes_skipped,
    }


def outcome_dict(
    results: Sequence[BuildResult],
    written: Written | None,
    exported: ExportResult | None = None,
) -> dict[str, Any]:
    """One platform: that build's report; several: the index digest and one report each."""
    if len(results) == 1:
        data = to_dict(results[0], written)
    else:
        digest = written.digest if written else ""
        data = {"digest": digest, "platforms": [to_dict(r, written) for r in results]}
    if written is not None and written.push is not None:
        data["push"] = push_dict(written.push)
    if written is not None and written.referrers:
        data["referrers"] = list(written.referrers)
    if exported is not None:
        data["cache_to"] = export_dict(exported)
    return data


def write_json(
    results: Sequence[BuildResult],
    written: Written | None,
    path: Path,
    exported: ExportResult | None = None,
) -> None:
    write_atomic(path, json.dumps(outcome_dict(results, written, exported), indent=2) + "\n")


def render_push(push: PushResult, console: Console) -> None:
    console.print(
        f"Pushed {safe(push.reference)}: uploaded {len(push.uploaded)} blob(s), "
        f"{human(push.bytes_uploaded)}; skipped {len(push.skipped)} the registry had; "
        f"mounted {len(push.mounted)} ({human(push.bytes_skipped)} not sent)",
        soft_wrap=True,
    )
    console.print(f"Manifest digest: {push.manifest_digest}", soft_wrap=True)


def render_outcome(
    results: Sequence[BuildResult],
    written: Written | None,
    console: Console,
    exported: ExportResult | None = None,
) -> None:
    for result in results:
        render(result, console)
    if len(results) > 1 and written is not None:
        console.print(f"Index digest: {written.digest}", soft_wrap=True)
    if written is not None and written.push is not None:
        render_push(written.push, console)
    if written is not None and written.referrers:
        where = " (under the tag sha256-…: no referrers API)" if written.referrers_tag else ""
        console.print(
            f"Attached {len(written.referrers)} referrer(s): SBOMs and provenance{where}",
            soft_wrap=True,
        )
    if written is not None:
        console.print(f"Wrote {safe(written.location)}", soft_wrap=True)
    if exported is not None:
        blobs = exported.blobs
        console.print(
            f"Build cache {safe(exported.reference)}: {len(exported.written)} entries written, "
            f"{len(exported.present)} already there; uploaded {human(blobs.bytes_uploaded)}, "
            f"{human(blobs.bytes_skipped)} present or mounted",
            soft_wrap=True,
        )


def render(result: BuildResult, console: Console) -> None:
    title = f"{safe(result.name)}:{safe(result.tag)}  {safe(result.platform)}"
    layers = Table(title=title, title_justify="left")
    layers.add_column("layer")
    layers.add_column("compressed", justify="right")
    layers.add_column("uncompressed", justify="right")
    layers.add_column("digest")
    layers.add_column("", style="dim")
    for layer in result.layers:
        layers.add_row(
            styled(layer.name),
            human(layer.size),
            human(layer.uncompressed) if layer.uncompressed >= 0 else "?",
            layer.digest.removeprefix("sha256:")[:12],
            "cached" if layer.cached else f"built {layer.seconds:.1f}s",
        )
    layers.add_section()
    layers.add_row(
        "total", human(result.compressed), human(result.uncompressed), "", "", style="bold"
    )
    console.print(layers)

    if result.slimmed and result.ledger.total():
        ledger = Table(title=f"Removed by profile '{safe(result.profile)}'", title_justify="left")
        ledger.add_column("rule")
        ledger.add_column("files", justify="right")
        ledger.add_column("bytes", justify="right")
        ledger.add_column("why")
        for rule_id, why, files, nbytes in result.ledger.by_rule():
            ledger.add_row(rule_id, str(files), human(nbytes), why)
        ledger.add_section()
        ledger.add_row("total", "", human(result.ledger.total()), "", style="bold")
        console.print(ledger)
        ratio = result.uncompressed / result.no_slim_uncompressed
        console.print(
            f"Without slimming: {human(result.no_slim_uncompressed)} uncompressed; "
            f"this image is {ratio:.0%} of that."
        )
    undone = result.ledger.reverts()
    if undone:
        table = Table(title="Slimming undone (kept in the image)", title_justify="left")
        table.add_column("rule")
        table.add_column("file")
        table.add_column("bytes kept", justify="right")
        table.add_column("why")
        for r in undone:
            table.add_row(r.rule, Text(r.path), human(r.bytes), Text(r.reason))
        console.print(table)
    if result.proof is not None:
        console.print(f"Proof: {result.proof.summary()}", soft_wrap=True, markup=False)
    if result.init_why:
        console.print(f"Init: {result.init_why}", soft_wrap=True, markup=False)
    if (fetched := result.cache_fetched) is not None:
        console.print(
            f"Build cache: {fetched.hits} layer(s) from --cache-from ({human(fetched.bytes)} "
            f"downloaded), {fetched.misses} built here"
            + (", the proof's record reused" if fetched.proofs else "")
            + (f", {fetched.learned} learned list(s) reused" if fetched.learned else ""),
            soft_wrap=True,
        )
    pulls = ", ".join(
        f"{pull_seconds(result.compressed, bps):.1f}s at {label}"
        for label, bps in BANDWIDTHS.items()
    )
    console.print(f"Estimated pull (transfer only): {pulls}")
    console.print(f"Manifest digest: {result.digest}", soft_wrap=True)
