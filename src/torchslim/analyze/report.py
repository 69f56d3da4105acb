"""Outputs of an analysis: terminal (rich), JSON, SARIF 2.1.0 (the HTML page is ``html``),
and the diff as a terminal table or Markdown for a merge request."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from torchslim.analyze.diff import Delta, DiffResult
from torchslim.analyze.findings import RULES
from torchslim.analyze.model import Analysis, CategoryTotal
from torchslim.display import safe, styled
from torchslim.sarif import sarif_log
from torchslim.units import BANDWIDTHS, human, pull_seconds

SCHEMA = "torchslim.analyze/1"
_SEV_STYLE = {
    "critical": "bold red",
    "high": "red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}
_SARIF_LEVEL = {
    "critical": "error",
    "high": "error",
    "medium": "warning",
    "low": "note",
    "info": "note",
}


def seconds_text(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def pull_times(compressed: int) -> dict[str, float]:
    """Transfer time alone at each bandwidth; registries and unpacking add to it."""
    return {k: round(pull_seconds(compressed, bw), 2) for k, bw in BANDWIDTHS.items()}


def answer_lines(a: Analysis) -> list[tuple[str, bool, str]]:
    ans = a.answers
    dev = ", ".join(ans.dev_packages[:8]) + (" …" if len(ans.dev_packages) > 8 else "")
    return [
        (
            "Is there a compiler in it?",
            ans.compiler_present,
            ", ".join(ans.compiler_evidence[:3]) or "no gcc, cc1, g++, clang or nvcc found",
        ),
        (
            "Is it built on a devel base?",
            ans.devel_base,
            ", ".join(ans.devel_evidence[:3]) or "no nvcc or CUDA headers",
        ),
        ("Are there dev-only Python packages?", bool(ans.dev_packages), dev or "none found"),
        ("Does it run as root?", ans.runs_as_root, ans.root_evidence),
    ]


# ---------------------------------------------------------------- terminal


def render_tty(analysis: Analysis, console: Console) -> None:
    a = analysis
    # Names, paths, the config's User and history come from the image: escaped (display).
    console.print(
        f"[bold]{safe(a.image)}[/]  {safe(a.digest[:19])}  {safe(a.platform)}  "
        f"{len(a.layers)} layers",
        soft_wrap=True,
    )
    for q, yes, why in answer_lines(a):
        mark = "[bold red]yes[/]" if yes else "[green]no [/]"
        console.print(f"  {mark}  {q}  [dim]{safe(why)}[/]", soft_wrap=True, markup=True)
    e = a.estimate
    now, after = pull_times(a.compressed), pull_times(e.compressed)
    console.print(
        f"\n  size: {human(a.compressed)} compressed, {human(a.uncompressed)} uncompressed"
        f" → after `torchslim build` ≈ {human(e.compressed)} / {human(e.uncompressed)}"
    )
    console.print(
        "  pull: "
        + ", ".join(f"{k} {seconds_text(now[k])} → {seconds_text(after[k])}" for k in BANDWIDTHS)
    )
    if a.findings:
        t = Table(title="Findings", show_lines=False, expand=False)
        for col in ("severity", "id", "bytes", "example", "fix"):
            t.add_column(col, overflow="fold")
        for f in a.findings:
            t.add_row(
                Text(f.severity, style=_SEV_STYLE[f.severity]),
                f.id,
                human(f.bytes) if f.bytes else "",
                styled(f.paths[0] if f.paths else ""),
                styled(f.fix),
            )
        console.print(t)
    top = max((c.bytes for c in a.categories), default=1) or 1
    t = Table(title="Where the bytes go (each byte in one category)")
    for col in ("category", "size", "", "files", "largest"):
        t.add_column(col, overflow="fold")
    for c in a.categories:
        bar = "█" * max(1, round(24 * c.bytes / top)) if c.bytes else ""
        t.add_row(
            c.id,
            human(c.bytes),
            Text(bar, style="magenta"),
            str(c.files),
            styled(c.examples[0][0] if c.examples else ""),
        )
    console.print(t)
    pk = [p for p in a.packages if p.bytes][:15]
    if pk:
        t = Table(title="Largest packages")
        for col in ("kind", "package", "version", "size", "dev"):
            t.add_column(col)
        for p in pk:
            t.add_row(
                p.kind, styled(p.name), styled(p.version), human(p.bytes), "dev" if p.dev else ""
            )
        console.print(t)
    t = Table(title="Layers")
    for col in ("#", "compressed", "uncompressed", "visible", "hidden later", "created by"):
        t.add_column(col, overflow="fold")
    for lay in a.layers:
        t.add_row(
            str(lay.index),
            human(lay.compressed),
            human(lay.uncompressed),
            human(lay.added_bytes),
            human(lay.wasted_bytes),
            styled(lay.created_by[:80]),
        )
    console.print(t)


# ---------------------------------------------------------------- JSON / SARIF


def _cat_json(c: CategoryTotal) -> dict[str, Any]:
    return {
        "id": c.id,
        "title": c.title,
        "why": c.why,
        "bytes": c.bytes,
        "files": c.files,
        "examples": [{"path": p, "bytes": s} for p, s in c.examples],
        "by_owner": dict(sorted(c.by_owner.items(), key=lambda kv: -kv[1])),
    }


def to_json(analysis: Analysis) -> dict[str, Any]:
    a, e = analysis, analysis.estimate
    ans = a.answers
    pk: dict[str, list[dict[str, Any]]] = {"python": [], "debian": [], "conda": []}
    for p in a.packages:
        pk[p.kind].append(
            {
                "name": p.name,
                "version": p.version,
                "bytes": p.bytes,
                "files": p.files,
                "dev": p.dev,
                "location": p.location,
            }
        )
    return {
        "schema": SCHEMA,
        "image": a.image,
        "digest": a.digest,
        "platform": a.platform,
        "user": a.user,
        "healthcheck": a.healthcheck,
        "size": {
            "compressed": a.compressed,
            "uncompressed": a.uncompressed,
            "files": a.files_bytes,
            "file_count": a.file_count,
        },
        "answers": {
            "compiler_present": ans.compiler_present,
            "devel_base": ans.devel_base,
            "dev_packages": ans.dev_packages,
            "runs_as_root": ans.runs_as_root,
            "evidence": {
                "compiler_present": ans.compiler_evidence,
                "devel_base": ans.devel_evidence,
                "runs_as_root": ans.root_evidence,
            },
        },
        "estimate": {
            "after_build": {"compressed": e.compressed, "uncompressed": e.uncompressed},
            "removable_bytes": e.removable_bytes,
            "removable_by": e.removable_by,
        },
        "pull_seconds": {"now": pull_times(a.compressed), "after_build": pull_times(e.compressed)},
        "categories": [_cat_json(c) for c in a.categories],
        "packages": pk,
        "layers": [
            {
                "index": lay.index,
                "digest": lay.digest,
                "diff_id": lay.diff_id,
                "media_type": lay.media_type,
                "compressed": lay.compressed,
                "uncompressed": lay.uncompressed,
                "entries": lay.entries,
                "visible_bytes": lay.added_bytes,
                "wasted_bytes": lay.wasted_bytes,
                "created_by": lay.created_by,
            }
            for lay in a.layers
        ],
        "wasted": {
            "bytes": a.wasted_bytes,
            "top": [
                {"path": p, "bytes": s, "layer": lay, "hidden_by_layer": by, "how": how}
                for p, s, lay, by, how in a.wasted_top
            ],
        },
        "findings": [
            {
                "id": f.id,
                "severity": f.severity,
                "title": f.title,
                "bytes": f.bytes,
                "paths": f.paths,
                "fix": f.fix,
                "why": f.why,
            }
            for f in a.findings
        ],
    }


def to_sarif(analysis: Analysis) -> dict[str, Any]:
    """SARIF 2.1.0, one result per finding; the image stands in for the artifact."""
    rules = [
        {
            "id": fid,
            "name": fid,
            "shortDescription": {"text": title},
            "fullDescription": {"text": why},
            "help": {"text": fix},
            "properties": {"severity": sev},
            "defaultConfiguration": {"level": _SARIF_LEVEL[sev]},
        }
        for fid, (sev, title, fix, why) in RULES.items()
    ]
    results = []
    for f in analysis.findings:
        locs = [
            {"physicalLocation": {"artifactLocation": {"uri": p.split(" (")[0]}}}
            for p in f.paths[:5]
            if p
        ] or [{"physicalLocation": {"artifactLocation": {"uri": analysis.image}}}]
        results.append(
            {
                "ruleId": f.id,
                "level": _SARIF_LEVEL[f.severity],
                "message": {"text": f"{f.title} ({human(f.bytes)}): {f.fix}"},
                "locations": locs,
                "properties": {"bytes": f.bytes, "severity": f.severity, "image": analysis.image},
            }
        )
    return sarif_log(rules, results)


# ---------------------------------------------------------------- HTML


def _pct(d: Delta) -> str:
    return f"{100 * d.change / d.before:+.1f}%" if d.before else "new"


def render_diff(d: DiffResult, console: Console) -> None:
    console.print(f"[bold]{safe(d.a)}[/] → [bold]{safe(d.b)}[/]", soft_wrap=True)
    for tot in (d.compressed, d.uncompressed):
        console.print(
            f"  {tot.title}: {human(tot.before)} → {human(tot.after)} "
            f"({human(tot.change)}, {_pct(tot)})"
        )
    console.print(
        f"  layers shared: {d.layers_shared} of {d.layers_b} "
        f"({human(d.shared_bytes)} not pulled again)"
    )
    for title, rows in (("Categories", d.categories), ("Packages", d.packages[:30])):
        if not rows:
            continue
        t = Table(title=title)
        for col in ("", "before", "after", "change"):
            t.add_column(col)
        for r in rows:
            style = "green" if r.change < 0 else "red"
            t.add_row(
                styled(r.title), human(r.before), human(r.after), Text(human(r.change), style=style)
            )
        console.print(t)
    if d.findings_added or d.findings_removed:
        console.print(
            f"  findings fixed: {safe(', '.join(d.findings_removed) or '-')}; "
            f"new: {safe(', '.join(d.findings_added) or '-')}"
        )


def diff_to_markdown(d: DiffResult) -> str:
    lines = [
        f"### `{d.a}` → `{d.b}`",
        "",
        "| | before | after | change |",
        "|---|---:|---:|---:|",
    ]
    for tot in (d.compressed, d.uncompressed):
        lines.append(
            f"| **{tot.title}** | {human(tot.before)} | {human(tot.after)} | "
            f"{human(tot.change)} ({_pct(tot)}) |"
        )
    for r in d.categories:
        lines.append(f"| {r.title} | {human(r.before)} | {human(r.after)} | {human(r.change)} |")
    lines += [
        "",
        f"Layers shared: {d.layers_shared} of {d.layers_b} "
        f"({human(d.shared_bytes)} not pulled again).",
    ]
    if d.packages:
        lines += ["", "| package | before | after | change |", "|---|---:|---:|---:|"]
        lines += [
            f"| {r.title} | {human(r.before)} | {human(r.after)} | {human(r.change)} |"
            for r in d.packages[:30]
        ]
    if d.findings_removed or d.findings_added:
        lines += [
            "",
            f"Findings fixed: {', '.join(d.findings_removed) or '–'}; "
            f"new: {', '.join(d.findings_added) or '–'}",
        ]
    return "\n".join(lines) + "\n"
