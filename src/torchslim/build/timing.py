"""Where a build's time goes: each step's wall time, as the build names its steps."""

from __future__ import annotations

import re
import time

from torchslim.config import Steps

# "Proof: waiting for the service to answer (3 s)" and the like: one step, not many.
_COUNTER = re.compile(r"\s*\(\d+(\.\d+)? s\)$")


class TimedSteps:
    """Steps passed on to ``inner``; each step lasts until the next one starts."""

    def __init__(self, inner: Steps) -> None:
        self.inner = inner
        self._seconds: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def step(self, text: str) -> None:
        now = time.monotonic()
        self._close(now)
        self._current = (_COUNTER.sub("", text), now)
        self.inner.step(text)

    def progress(self, label: str, done: int, total: int) -> None:
        self.inner.progress(label, done, total)

    def warn(self, text: str) -> None:
        self.inner.warn(text)

    def _close(self, now: float) -> None:
        if self._current is not None:
            name, started = self._current
            self._seconds[name] = self._seconds.get(name, 0.0) + now - started
            self._current = None

    def finish(self) -> list[tuple[str, float]]:
        """Every step with its seconds (a step named twice adds up), in first-seen order."""
        self._close(time.monotonic())
        return list(self._seconds.items())
