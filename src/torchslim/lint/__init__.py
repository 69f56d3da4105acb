"""``torchslim lint``: a Dockerfile parser and PyTorch-aware rules.

The CLI calls :func:`lint_paths`, prints :func:`format_result` and exits with
``result.exit_code(fail_on)``.
"""

from __future__ import annotations

from pathlib import Path

from torchslim.lint.config import CONFIG_NAME, LintConfig, load_lint_config
from torchslim.lint.engine import Finding, LintResult, lint_files
from torchslim.lint.errors import LintError
from torchslim.lint.parser import Dockerfile, parse_dockerfile, read_dockerfile
from torchslim.lint.report import Format, format_result
from torchslim.lint.rules import RULES, Rule, Severity

__all__ = [
    "CONFIG_NAME",
    "RULES",
    "Dockerfile",
    "Finding",
    "Format",
    "LintConfig",
    "LintError",
    "LintResult",
    "Rule",
    "Severity",
    "format_result",
    "lint_paths",
    "lint_text",
    "parse_dockerfile",
    "read_dockerfile",
]


def lint_paths(
    paths: list[Path], *, config: Path | None = None, min_severity: str = "info"
) -> LintResult:
    """Lint each Dockerfile (a directory means the Dockerfile* files in it).

    ``config`` is a ``.torchslim-lint.toml``; None reads ``./.torchslim-lint.toml``
    if present. Findings below ``min_severity`` are dropped.
    """
    return lint_files(paths, load_lint_config(config), min_severity)  # type: ignore[arg-type]


def lint_text(
    text: str, *, name: str = "Dockerfile", config: LintConfig | None = None
) -> list[Finding]:
    """Lint a Dockerfile held in memory (used by ``torchslim dockerfile`` and tests)."""
    from torchslim.lint.engine import lint_dockerfile

    return lint_dockerfile(parse_dockerfile(text, Path(name)), config or LintConfig(), "info")
