"""``analyze --html``: one self-contained page (inline SVG treemap and layer bars, no scripts).

Every string from the image is escaped: file names and labels are data, never markup.
"""

from __future__ import annotations

import html

from torchslim.analyze.model import Analysis, CategoryTotal
from torchslim.analyze.report import answer_lines, pull_times, seconds_text
from torchslim.analyze.treemap import Rect, squarify
from torchslim.units import BANDWIDTHS, human

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
    "debug": "#16a085",
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
        for q, yes, why in answer_lines(a)
    )
    size_rows = "".join(
        f"<tr><td>{esc(k)}</td><td class=num>{seconds_text(now[k])}</td>"
        f"<td class=num>{seconds_text(after[k])}</td></tr>"
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
