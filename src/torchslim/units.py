"""Sizes and pull times as reports show them (decimal units, like registries and dive)."""

from __future__ import annotations

# Bandwidths the reports quote pull times at, in bits per second.
BANDWIDTHS: dict[str, float] = {"100 Mbit/s": 100e6, "1 Gbit/s": 1e9}


def human(n: float) -> str:
    """``1234567`` → ``"1.2 MB"``; negative sizes (deltas) keep their sign."""
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{sign}{n:.0f} {unit}" if unit == "B" else f"{sign}{n:.1f} {unit}"
        n /= 1000
    return f"{sign}{n:.1f} GB"


def pull_seconds(compressed: int, bits_per_second: float) -> float:
    """Transfer time alone; registries and decompression add to it."""
    return compressed * 8 / bits_per_second
