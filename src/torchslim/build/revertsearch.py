"""Which slimming changes a failing service needs undone, found by serving it.

``reverts.find_reverts`` names the changes a failing *load* needs (the file and the
message say which). A service that fails at start or on a request says no such thing: it
may have read a data file a rule removed. So the image is built with every change of the
rules undone and served: when that fails too, slimming is not the cause. When it serves,
the changes (in rule, package, path order, so halves follow packages) are halved while
one half alone is enough, within a bound on rebuilds, until what is left is small;
that is undone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

MAX_REBUILDS = 8  # each is a rebuild of the Python layers and a served proof

T = TypeVar("T")


@dataclass(frozen=True)
class Search(Generic[T]):
    """The outcome: ``undo`` serves (None when nothing undone does), after ``tries``."""

    undo: list[T] | None
    tries: int
    narrowed: bool  # False when the bound or two needed halves stopped the halving


def search_reverts(
    changes: Sequence[T],
    serves: Callable[[list[T]], bool],
    *,
    max_rebuilds: int = MAX_REBUILDS,
    enough: Callable[[list[T]], bool] | None = None,
) -> Search[T]:
    """The smallest run of ``changes`` found whose undoing makes ``serves`` true.

    ``serves(undo)`` builds the image with ``undo`` undone (on top of what is undone
    already) and proves it. The first try undoes everything; then each step keeps the
    half that serves alone. Two culprits in different halves stop the halving there, and
    so does ``enough`` (a set too small to be worth more rebuilds).
    """
    current = list(changes)
    if not current or max_rebuilds < 1:
        return Search(None, 0, False)
    tries = 1
    if not serves(current):
        return Search(None, tries, True)
    while len(current) > 1 and not (enough is not None and enough(current)):
        half = len(current) // 2
        for part in (current[:half], current[half:]):
            if tries >= max_rebuilds:
                return Search(current, tries, False)
            tries += 1
            if serves(part):
                current = part
                break
        else:
            return Search(current, tries, False)  # each half needs something of the other
    return Search(current, tries, True)


__all__ = ["MAX_REBUILDS", "Search", "search_reverts"]
