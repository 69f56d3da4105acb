"""CI gates: `--max-size SIZE` and `--fail-on SEVERITY|ID`, with documented exit codes."""

from __future__ import annotations

import re

from torchslim.analyze.findings import RULES
from torchslim.analyze.model import SEVERITIES, Analysis
from torchslim.errors import ConfigError

EXIT_OK = 0
EXIT_SIZE = 4  # compressed image larger than --max-size
EXIT_FINDING = 5  # a finding at or above --fail-on severity, or with a --fail-on id
EXIT_BOTH = 6  # both gates failed

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}


def parse_size(text: str) -> int:
    """``"2GB"`` → 2_000_000_000; ``"1.5GiB"``, ``"800MB"``, plain bytes."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if m is None or m.group(2).lower() not in _UNITS:
        raise ConfigError(f"--max-size {text!r} is not a size; write e.g. 2GB, 800MB or 1.5GiB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _check_fail_on(fail_on: list[str]) -> None:
    for item in fail_on:
        if item not in SEVERITIES and item not in RULES:
            raise ConfigError(
                f"--fail-on {item!r} is neither a severity ({', '.join(SEVERITIES)}) "
                "nor a finding id (see docs/analyze.md)"
            )


def failing_findings(analysis: Analysis, fail_on: list[str]) -> list[str]:
    _check_fail_on(fail_on)
    ranks = [SEVERITIES.index(x) for x in fail_on if x in SEVERITIES]
    floor = min(ranks) if ranks else None
    return [
        f.id
        for f in analysis.findings
        if f.id in fail_on or (floor is not None and f.rank >= floor)
    ]


def gate_exit_code(analysis: Analysis, *, max_size: int | None, fail_on: list[str]) -> int:
    """0 when every gate passes; 4 size, 5 findings, 6 both. Size = compressed bytes."""
    over = max_size is not None and analysis.compressed > max_size
    hit = bool(failing_findings(analysis, fail_on))
    if over and hit:
        return EXIT_BOTH
    return EXIT_SIZE if over else EXIT_FINDING if hit else EXIT_OK
