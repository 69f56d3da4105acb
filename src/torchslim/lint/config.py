"""``.torchslim-lint.toml``: rules to ignore and severities to change.

```toml
ignore = ["TS108"]
[severity]
TS104 = "warning"
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from torchslim.lint.errors import LintError
from torchslim.lint.rules import RULES, SEVERITY_RANK, Severity

CONFIG_NAME = ".torchslim-lint.toml"


@dataclass(frozen=True)
class LintConfig:
    ignore: frozenset[str] = frozenset()
    severity: dict[str, Severity] = field(default_factory=dict)


def _known(rule_id: str, where: str) -> str:
    rid = rule_id.upper()
    if rid not in RULES:
        raise LintError(
            f"{where}: unknown rule id {rule_id!r}; known ids are TS101..TS{100 + len(RULES)} "
            "(see docs/lint.md)"
        )
    return rid


def load_lint_config(path: Path | None) -> LintConfig:
    """Read ``path``; with None, ``./.torchslim-lint.toml`` if it exists, else defaults."""
    if path is None:
        path = Path.cwd() / CONFIG_NAME
        if not path.is_file():
            return LintConfig()
    try:
        with path.open("rb") as f:
            data: dict[str, Any] = tomllib.load(f)
    except OSError as exc:
        raise LintError(f"{path}: cannot read lint config: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise LintError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(data) - {"ignore", "severity"}
    if unknown:
        raise LintError(
            f"{path}: unknown key {sorted(unknown)[0]!r}; expected 'ignore' or [severity]"
        )
    ignore = data.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(x, str) for x in ignore):
        raise LintError(f"{path}: key `ignore`: expected a list of rule ids like ['TS108']")
    sev = data.get("severity", {})
    if not isinstance(sev, dict):
        raise LintError(f"{path}: key `severity`: expected a table like TS104 = 'warning'")
    severity: dict[str, Severity] = {}
    for rid, level in sev.items():
        if level not in SEVERITY_RANK:
            raise LintError(
                f"{path}: severity.{rid}: expected error, warning or info, got {level!r}"
            )
        severity[_known(rid, str(path))] = cast(Severity, level)
    return LintConfig(frozenset(_known(r, str(path)) for r in ignore), severity)
