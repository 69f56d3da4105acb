"""Where a build's time goes: step times add up, counters collapse into one step."""

from __future__ import annotations

import pytest

from torchslim.build import timing
from torchslim.build.timing import TimedSteps


class Recording:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def step(self, text: str) -> None:
        self.seen.append(text)

    def progress(self, label: str, done: int, total: int) -> None:
        self.seen.append(f"{label} {done}/{total}")

    def warn(self, text: str) -> None:
        self.seen.append("warn " + text)


def test_each_step_lasts_until_the_next_and_repeats_add_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter([0.0, 2.0, 2.5, 3.5, 10.0])  # one reading per step, one at the end
    monkeypatch.setattr(timing.time, "monotonic", lambda: next(clock))
    inner = Recording()
    steps = TimedSteps(inner)
    steps.step("Fetching 3 wheels")  # 0.0
    steps.progress("wheels", 1, 3)
    steps.step("Proof: waiting for the service to answer (1 s)")  # 2.0
    steps.warn("careful")
    steps.step("Proof: waiting for the service to answer (2 s)")  # 2.5 (closes at 2.5)
    steps.step("Writing layer app")  # 3.5
    assert steps.finish() == [
        ("Fetching 3 wheels", 2.0),
        ("Proof: waiting for the service to answer", 1.5),
        ("Writing layer app", 6.5),
    ]
    assert inner.seen[:3] == ["Fetching 3 wheels", "wheels 1/3", inner.seen[2]]
    assert "warn careful" in inner.seen
