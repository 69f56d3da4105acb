"""The build report: layers, slimming ledger, size against --no-slim, pull times."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from torchslim.build import BuildOutcome, BuildResult
from torchslim.oci.push import PushResult
from torchslim.units import BANDWIDTHS, human, pull_seconds


def to_dict(result: BuildResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "tag": result.tag,
        "digest": result.digest,
        "platform": result.platform,
        "profile": result.profile if result.slimmed else None,
        "output": str(result.output) if result.output else None,
        "seconds": round(result.seconds, 2),
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
        "dev_packages": [
            {"package": f.package, "brought_by": list(f.chain[1:])} for f in result.dev_findings
        ],
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


def outcome_dict(outcome: BuildOutcome) -> dict[str, Any]:
    """One platform: that build's report; several: the index digest and one report each."""
    if len(outcome.results) == 1:
        data = to_dict(outcome.results[0])
    else:
        data = {"digest": outcome.digest, "platforms": [to_dict(r) for r in outcome.results]}
    if outcome.pushed is not None:
        data["push"] = push_dict(outcome.pushed)
    return data


def write_json(outcome: BuildOutcome, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(outcome_dict(outcome), indent=2) + "\n")
    os.replace(tmp, path)


def render_push(push: PushResult, console: Console) -> None:
    console.print(
        f"Pushed {push.reference}: uploaded {len(push.uploaded)} blob(s), "
        f"{human(push.bytes_uploaded)}; skipped {len(push.skipped)} the registry had; "
        f"mounted {len(push.mounted)} ({human(push.bytes_skipped)} not sent)",
        soft_wrap=True,
    )
    console.print(f"Manifest digest: {push.manifest_digest}", soft_wrap=True)


def render_outcome(outcome: BuildOutcome, console: Console) -> None:
    for result in outcome.results:
        render(result, console)
    if len(outcome.results) > 1 and outcome.digest:
        console.print(f"Index digest: {outcome.digest}", soft_wrap=True)
    if outcome.pushed is not None:
        render_push(outcome.pushed, console)


def render(result: BuildResult, console: Console) -> None:
    layers = Table(title=f"{result.name}:{result.tag}  {result.platform}", title_justify="left")
    layers.add_column("layer")
    layers.add_column("compressed", justify="right")
    layers.add_column("uncompressed", justify="right")
    layers.add_column("digest")
    layers.add_column("", style="dim")
    for layer in result.layers:
        layers.add_row(
            layer.name,
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
        ledger = Table(title=f"Removed by profile '{result.profile}'", title_justify="left")
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
    pulls = ", ".join(
        f"{pull_seconds(result.compressed, bps):.1f}s at {label}"
        for label, bps in BANDWIDTHS.items()
    )
    console.print(f"Estimated pull (transfer only): {pulls}")
    console.print(f"Manifest digest: {result.digest}", soft_wrap=True)
    if result.output:
        console.print(f"Wrote {result.output}")
