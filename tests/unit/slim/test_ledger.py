"""The ledger on its own: aggregation, order, JSON round trip."""

from __future__ import annotations

import json

import pytest

from torchslim.slim.ledger import Ledger


def test_by_rule_sorted_by_bytes_with_whys() -> None:
    ledger = Ledger()
    ledger.add("pycache", "/s/a/__pycache__/x.pyc", 10)
    ledger.add("torch-headers", "/s/torch/include/a.h", 300)
    ledger.add("pycache", "/s/b/__pycache__/y.pyc", 5)
    rows = ledger.by_rule()
    assert [r[0] for r in rows] == ["torch-headers", "pycache"]
    assert rows[1][2:] == (2, 15)
    assert "header" in rows[0][1]
    assert ledger.total() == 315


def test_to_dict_round_trip_and_examples_capped() -> None:
    ledger = Ledger()
    for i in range(8):
        ledger.add("static-libraries", f"/s/p/lib{i}.a", 100)
    data = ledger.to_dict()
    assert json.loads(json.dumps(data)) == data
    (row,) = data["rules"]
    assert row["files"] == 8 and row["bytes"] == 800 and data["total"] == 800
    assert row["examples"] == [f"/s/p/lib{i}.a" for i in range(5)]
    assert Ledger.from_dict(data).to_dict() == data


def test_unknown_rule_refused() -> None:
    with pytest.raises(KeyError):
        Ledger().add("not-a-rule", "/x", 1)


def test_revert_of_a_booked_change_comes_off_the_totals() -> None:
    ledger = Ledger()
    ledger.add("strip-symbols", "/s/a.so", 100)
    ledger.add("strip-symbols", "/s/b.so", 50)
    ledger.add("static-libraries", "/s/c.a", 7)
    ledger.revert(
        "strip-symbols", "/s/a.so", 100, "a.so: ELF load command address/offset not page-aligned"
    )
    assert [(r[0], r[2], r[3]) for r in ledger.by_rule()] == [
        ("strip-symbols", 1, 50),
        ("static-libraries", 1, 7),
    ]
    assert ledger.total() == 57
    data = ledger.to_dict()
    assert data["rules"][0]["examples"] == ["/s/b.so"]
    assert data["reverted"] == [
        {
            "rule": "strip-symbols",
            "path": "/s/a.so",
            "bytes": 100,
            "reason": "a.so: ELF load command address/offset not page-aligned",
        }
    ]
    assert Ledger.from_dict(data).to_dict() == data
    ledger.revert("static-libraries", "/s/c.a", 7, "needed")
    assert [r[0] for r in ledger.by_rule()] == ["strip-symbols"]  # nothing left of that rule


def test_refused_change_is_listed_without_touching_totals() -> None:
    ledger = Ledger()
    ledger.add("strip-symbols", "/s/b.so", 50)
    ledger.revert("strip-symbols", "/s/x.so", 900, "stripped copy: overlap", applied=False)
    assert ledger.total() == 50
    assert [(r.path, r.bytes) for r in ledger.reverts()] == [("/s/x.so", 900)]
    other = Ledger()
    other.merge(ledger)
    assert other.to_dict() == ledger.to_dict()
    assert "reverted" not in Ledger().to_dict()
    with pytest.raises(KeyError):
        ledger.revert("not-a-rule", "/x", 1, "r")
