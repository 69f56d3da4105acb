"""What served proofs learned about a service, kept for the next build.

The modules the service loaded and the files it opened (``build.census``), the slimming
its proofs had to undo (``build.reverts``): each is a JSON list under a key made of
everything it depends on. It is kept in the local cache and goes with the build's layers
to ``--cache-to``, so a fresh runner with ``--cache-from`` starts from it, as a runner
with a history does, instead of serving the image once more to learn it again. The
image is the same either way: a build assembles with what is known, serves, and
assembles again only when the proof sees something new.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torchslim.atomic import write_atomic
from torchslim.build.layercache import LayerCache
from torchslim.cache import cache_root

# Whether a list read back (from disk or a registry) is of the kind's form.
Valid = Callable[[list[Any]], bool]


def path(kind: str, key: str) -> Path:
    """Where the local cache keeps ``kind``'s list under ``key``."""
    return cache_root() / kind / (key.removeprefix("sha256:") + ".json")


def read(layers: LayerCache, kind: str, key: str, valid: Valid) -> list[Any] | None:
    """The list known under ``key``: the local one, else a ``--cache-from`` source's (then
    kept locally); None when neither has a good one."""
    local = path(kind, key)
    data = _load(local)
    if data is None or not valid(data):
        data = layers.shared_learned(key, kind)
        if data is None or not valid(data):
            return None
        _store(local, data)
    layers.keep_learned(key, kind, data)
    return data


def write(layers: LayerCache, kind: str, key: str, data: Sequence[Any]) -> None:
    """Keep ``data`` under ``key``, here and for ``--cache-to``."""
    items = list(data)
    _store(path(kind, key), items)
    layers.keep_learned(key, kind, items)


def _load(file: Path) -> list[Any] | None:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, list) else None


def _store(file: Path, data: list[Any]) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(file, json.dumps(data, indent=1))
