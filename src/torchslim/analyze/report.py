"""Outputs of an analysis: terminal (rich), JSON, SARIF 2.1.0, one self-contained HTML page,
and the diff as a terminal table or Markdown for a merge request."""

from __future__ import annotations

import html
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from torchslim.analyze.diff import Delta, DiffResult
from torchslim.analyze.findings import RULES
from torchslim.analyze.model import Analysis, CategoryTotal
from torchslim.analyze.treemap import Rect, squarify
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


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def pull_times(compressed: int) -> dict[str, float]:
    """Transfer time alone at each bandwidth; registries and unpacking add to it."""
    return {k: round(pull_seconds(compressed, bw), 2) for k, bw in BANDWIDTHS.items()}


def _answer_lines(a: Analysis) -> list[tuple[str, bool, str]]:
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
    console.print(f"[bold]{a.image}[/]  {a.digest[:19]}  {a.platform}  {len(a.layers)} layers")
    for q, yes, why in _answer_lines(a):
        mark = "[bold red]yes[/]" if yes else "[green]no [/]"
        console.print(f"  {mark}  {q}  [dim]{why}[/]", soft_wrap=True, markup=True)
    e = a.estimate
    now, after = pull_times(a.compressed), pull_times(e.compressed)
    console.print(
        f"\n  size: {human(a.compressed)} compressed, {human(a.uncompressed)} uncompressed"
        f" → after `torchslim build` ≈ {human(e.compressed)} / {human(e.uncompressed)}"
    )
    console.print(
        "  pull: " + ", ".join(f"{k} {_seconds(now[k])} → {_seconds(after[k])}" for k in BANDWIDTHS)
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
                f.paths[0] if f.paths else "",
                f.fix,
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
            c.examples[0][0] if c.examples else "",
        )
    console.print(t)
    pk = [p for p in a.packages if p.bytes][:15]
    if pk:
        t = Table(title="Largest packages")
        for col in ("kind", "package", "version", "size", "dev"):
            t.add_column(col)
        for p in pk:
            t.add_row(p.kind, p.name, p.version, human(p.bytes), "dev" if p.dev else "")
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
            lay.created_by[:80],
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

_PALETTE = {
    "cuda": "#76b900",
    "torch": "#ee4c2c",
    "python": "#3776ab",
    "debian": "#a80030",
    "conda": "#43b02a",
    "cache": "#f0a30a",
    "build": "#6a00ff",
    "headers": "#8e44ad",
    "static": "#9b59b6",
    "tests": "#d35400",
    "secrets": "#000000",
    "ssh": "#c0392b",
    "shells": "#7f8c8d",
    "other": "#95a5a6",
}


def _color(cid: str) -> str:
    head = cid.split(".")[0].split("-")[0]
    base = _PALETTE.get(head, "#95a5a6")
    if cid == "python.dev":
        return "#5dade2"
    return base


def _svg_treemap(cats: list[CategoryTotal], width: int = 1200, height: int = 520) -> str:
    cats = [c for c in cats if c.bytes > 0]
    rects = squarify([float(c.bytes) for c in cats], Rect(0, 0, width, height))
    total = sum(c.bytes for c in cats) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="treemap of bytes per category">'
    ]
    for c, r in zip(cats, rects, strict=True):
        label = html.escape(c.id)
        tip = html.escape(
            f"{c.title}: {human(c.bytes)} ({100 * c.bytes / total:.1f}%), {c.files} files"
        )
        parts.append(
            f'<g><title>{tip}</title><rect x="{r.x:.1f}" y="{r.y:.1f}" width="{r.w:.1f}" '
            f'height="{r.h:.1f}" fill="{_color(c.id)}" stroke="#fff" stroke-width="2"/>'
        )
        if r.w > 70 and r.h > 34:
            parts.append(
                f'<text x="{r.x + 6:.1f}" y="{r.y + 18:.1f}" font-size="14" fill="#fff" '
                f'font-weight="bold">{label}</text><text x="{r.x + 6:.1f}" y="{r.y + 34:.1f}" '
                f'font-size="12" fill="#fff">{human(c.bytes)}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _svg_layers(a: Analysis, width: int = 1200) -> str:
    bar_h, gap = 22, 8
    height = max(1, len(a.layers)) * (bar_h + gap) + 10
    top = max((lay.uncompressed for lay in a.layers), default=1) or 1
    avail = width - 260
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="bytes per layer">'
    ]
    for i, lay in enumerate(a.layers):
        y = 5 + i * (bar_h + gap)
        vis = avail * lay.added_bytes / top
        dead = avail * lay.wasted_bytes / top
        parts.append(
            f'<text x="0" y="{y + 16}" font-size="13">layer {lay.index}</text>'
            f'<rect x="70" y="{y}" width="{vis:.1f}" height="{bar_h}" fill="#3776ab"><title>'
            f"visible {human(lay.added_bytes)}</title></rect>"
            f'<rect x="{70 + vis:.1f}" y="{y}" width="{dead:.1f}" height="{bar_h}" fill="#e74c3c">'
            f"<title>hidden by later layers {human(lay.wasted_bytes)}</title></rect>"
            f'<text x="{76 + vis + dead:.1f}" y="{y + 16}" font-size="12">'
            f"{human(lay.uncompressed)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px}
.muted{color:#666} .cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 14px;min-width:250px;flex:1}
.yes{color:#c0392b;font-weight:bold} .no{color:#27ae60;font-weight:bold}
table{border-collapse:collapse;width:100%;font-size:13px} td,th{border-bottom:1px solid #eee;
padding:4px 8px;text-align:left;vertical-align:top} th{background:#fafafa}
.sev-critical,.sev-high{color:#c0392b;font-weight:bold} .sev-medium{color:#d68910}
.sev-low{color:#2874a6} .sev-info{color:#777} .num{text-align:right;white-space:nowrap}
code{font-size:12px;word-break:break-all}
"""


def to_html(analysis: Analysis) -> str:
    """One page, no external assets: inline CSS and SVG; opens offline."""
    a, e = analysis, analysis.estimate
    esc = html.escape
    now, after = pull_times(a.compressed), pull_times(e.compressed)
    cards = "".join(
        f'<div class="card"><div>{esc(q)}</div><div class="{"yes" if yes else "no"}">'
        f'{"Yes" if yes else "No"}</div><div class="muted"><code>{esc(why)}</code></div></div>'
        for q, yes, why in _answer_lines(a)
    )
    size_rows = "".join(
        f"<tr><td>{esc(k)}</td><td class=num>{_seconds(now[k])}</td>"
        f"<td class=num>{_seconds(after[k])}</td></tr>"
        for k in BANDWIDTHS
    )
    findings = "".join(
        f'<tr><td class="sev-{f.severity}">{f.severity}</td><td><code>{esc(f.id)}</code><br>'
        f"{esc(f.title)}</td><td class=num>{human(f.bytes) if f.bytes else ''}</td>"
        f"<td><code>{'<br>'.join(esc(p) for p in f.paths[:3])}</code></td>"
        f"<td>{esc(f.fix)}</td></tr>"
        for f in a.findings
    )
    cats = "".join(
        f'<tr><td><span style="color:{_color(c.id)}">■</span> <code>{esc(c.id)}</code></td>'
        f"<td>{esc(c.why)}</td><td class=num>{human(c.bytes)}</td><td class=num>{c.files}</td>"
        f"<td><code>{esc(c.examples[0][0]) if c.examples else ''}</code></td></tr>"
        for c in a.categories
    )
    pkgs = "".join(
        f"<tr><td>{p.kind}</td><td>{esc(p.name)}</td><td>{esc(p.version)}</td>"
        f"<td class=num>{human(p.bytes)}</td><td>{'dev' if p.dev else ''}</td></tr>"
        for p in [p for p in a.packages if p.bytes][:30]
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>torchslim analyze: {esc(a.image)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>{esc(a.image)}</h1>
<div class="muted"><code>{esc(a.digest)}</code> · {esc(a.platform)} · {len(a.layers)} layers ·
{a.file_count} files</div>
<div class="cards">{cards}</div>
<table style="width:auto"><tr><th></th><th>now</th>
<th>after <code>torchslim build</code> (estimate)</th></tr>
<tr><td>compressed</td><td class=num>{human(a.compressed)}</td>
<td class=num>{human(e.compressed)}</td></tr>
<tr><td>uncompressed</td><td class=num>{human(a.uncompressed)}</td>
<td class=num>{human(e.uncompressed)}</td></tr>
{size_rows}</table>
<h2>Where the bytes go</h2>
{_svg_treemap(a.categories)}
<h2>Layers <span class="muted" style="font-size:13px">
(blue: visible, red: hidden by later layers)</span></h2>
{_svg_layers(a)}
<h2>Findings</h2>
<table><tr><th>severity</th><th>finding</th><th>bytes</th><th>examples</th><th>fix</th></tr>{findings}</table>
<h2>Categories</h2>
<table><tr><th>category</th><th>why</th><th>size</th><th>files</th><th>largest</th></tr>{cats}</table>
<h2>Largest packages</h2>
<table><tr><th>kind</th><th>package</th><th>version</th><th>size</th><th></th></tr>{pkgs}</table>
</body></html>
"""


# ---------------------------------------------------------------- diff


def _pct(d: Delta) -> str:
    return f"{100 * d.change / d.before:+.1f}%" if d.before else "new"


def render_diff(d: DiffResult, console: Console) -> None:
    console.print(f"[bold]{d.a}[/] → [bold]{d.b}[/]")
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
            t.add_row(r.title, human(r.before), human(r.after), Text(human(r.change), style=style))
        console.print(t)
    if d.findings_added or d.findings_removed:
        console.print(
            f"  findings fixed: {', '.join(d.findings_removed) or '-'}; "
            f"new: {', '.join(d.findings_added) or '-'}"
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
