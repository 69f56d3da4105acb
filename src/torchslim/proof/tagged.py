"""The tagged lines the proof's in-sandbox programs report on: ``TAG <json>``."""

from __future__ import annotations

import json
from typing import Any


def parse_tagged(line: str) -> tuple[str, Any] | None:
    """``("R", {...})`` from ``R {...}``; None for a line that is not one (its JSON broken)."""
    tag, _, payload = line.partition(" ")
    try:
        return tag, (json.loads(payload) if payload else None)
    except ValueError:
        return None
