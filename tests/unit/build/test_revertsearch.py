"""The slimming search: which undone changes make a failing service serve, bounded."""

from __future__ import annotations

from torchslim.build.revertsearch import MAX_REBUILDS, search_reverts


def needs(*culprits: int):  # type: ignore[no-untyped-def]
    """A service that serves when every culprit is undone; records each try."""
    tried: list[list[int]] = []

    def serves(undo: list[int]) -> bool:
        tried.append(undo)
        return set(culprits) <= set(undo)

    return serves, tried


def test_one_culprit_among_many_is_found_within_the_bound() -> None:
    serves, tried = needs(37)
    outcome = search_reverts(list(range(64)), serves)
    assert tried[0] == list(range(64))  # everything undone first
    assert outcome.undo is not None and 37 in outcome.undo
    assert len(outcome.undo) <= 64 >> (MAX_REBUILDS // 2 - 1)
    assert outcome.tries == len(tried) <= MAX_REBUILDS


def test_a_small_set_is_narrowed_to_the_culprit() -> None:
    serves, tried = needs(5)
    outcome = search_reverts(list(range(8)), serves, max_rebuilds=20)
    assert outcome.undo == [5] and outcome.narrowed


def test_not_slimming_when_undoing_everything_fails_too() -> None:
    serves, tried = needs(99)  # not among the changes: nothing undone helps
    outcome = search_reverts(list(range(10)), serves)
    assert outcome.undo is None and outcome.tries == 1 and len(tried) == 1


def test_two_culprits_in_different_halves_keep_both() -> None:
    serves, _ = needs(1, 6)
    outcome = search_reverts(list(range(8)), serves)
    assert outcome.undo is not None and {1, 6} <= set(outcome.undo)
    assert not outcome.narrowed


def test_the_bound_stops_with_a_set_that_serves() -> None:
    serves, tried = needs(500)
    outcome = search_reverts(list(range(1024)), serves, max_rebuilds=3)
    assert len(tried) == 3 and outcome.undo is not None and 500 in outcome.undo
    assert not outcome.narrowed and serves(outcome.undo)


def test_nothing_to_undo_is_not_tried() -> None:
    serves, tried = needs(1)
    assert search_reverts([], serves).undo is None and tried == []


def test_a_set_small_enough_is_kept_whole() -> None:
    serves, tried = needs(3)
    outcome = search_reverts(list(range(64)), serves, enough=lambda undo: len(undo) <= 8)
    assert outcome.undo is not None and 3 in outcome.undo and len(outcome.undo) == 8
    assert outcome.narrowed and len(tried) <= 1 + 2 * 3
