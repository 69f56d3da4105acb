"""Lint output: a terminal table, plain JSON, SARIF 2.1.0 and GitLab code quality."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any, Literal

from rich.console import Console

from torchslim.display import safe
from torchslim.lint.engine import Finding, LintResult
from torchslim.lint.errors import LintError
from torchslim.lint.rules import RULES
from torchslim.sarif import sarif_log

Format = Literal["tty", "json", "sarif", "gitlab"]
_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
_GITLAB_SEVERITY = {"error": "critical", "warning": "major", "info": "info"}


def format_result(result: LintResult, fmt: Format) -> str:
    if fmt == "tty":
        return _tty(result)
    if fmt == "json":
        return json.dumps(_json(result), indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(_sarif(result), indent=2) + "\n"
    if fmt == "gitlab":
        return json.dumps(_gitlab(result), indent=2) + "\n"
    raise LintError(f"--format: expected tty, json, sarif or gitlab, got {fmt!r}")


def _tty(result: LintResult, console: Console | None = None) -> str:
    """One line per finding (``file:line: ID severity message``), why and fix beneath."""
    buf = io.StringIO()
    out = console or Console(file=buf, width=200, force_terminal=False, color_system=None)
    for f in result.findings:
        out.print(
            f"{safe(f.file)}:{f.line}: [bold]{f.rule}[/] [{_STYLE[f.severity]}]{f.severity}[/] "
            f"{safe(f.message)} [dim]({safe(f.name)})[/]",
            soft_wrap=True,
            highlight=False,
        )
        out.print(f"    [dim]why: {f.why}[/]", soft_wrap=True, highlight=False)
        out.print(f"    [dim]fix: {f.fix}[/]", soft_wrap=True, highlight=False)
    counts = {s: sum(1 for f in result.findings if f.severity == s) for s in _STYLE}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"
    out.print(f"{len(result.files)} Dockerfile(s): {safe(summary)}", highlight=False)
    return buf.getvalue()


def _finding_dict(f: Finding) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "name": f.name,
        "severity": f.severity,
        "file": f.file,
        "line": f.line,
        "message": f.message,
        "why": f.why,
        "fix": f.fix,
    }


def _json(result: LintResult) -> dict[str, Any]:
    return {"files": result.files, "findings": [_finding_dict(f) for f in result.findings]}


def _sarif(result: LintResult) -> dict[str, Any]:
    ids = list(RULES)
    rules = [
        {
            "id": r.id,
            "name": r.name,
            "shortDescription": {"text": r.why},
            "help": {"text": r.fix},
            "defaultConfiguration": {"level": _SARIF_LEVEL[r.severity]},
        }
        for r in RULES.values()
    ]
    results = [
        {
            "ruleId": f.rule,
            "ruleIndex": ids.index(f.rule),
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f"{f.message}. {f.fix}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.file},
                        "region": {"startLine": f.line},
                    }
                }
            ],
        }
        for f in result.findings
    ]
    return sarif_log(rules, results)


def _gitlab(result: LintResult) -> list[dict[str, Any]]:
    out = []
    for f in result.findings:
        key = f"{f.rule}:{f.file}:{f.line}:{f.message}"
        out.append(
            {
                "description": f"{f.rule} {f.message}",
                "check_name": f.rule,
                "fingerprint": hashlib.sha256(key.encode()).hexdigest(),
                "severity": _GITLAB_SEVERITY[f.severity],
                "location": {"path": f.file, "lines": {"begin": f.line}},
            }
        )
    return out
