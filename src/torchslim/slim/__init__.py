"""Slimming by named rules tied to a profile, with a ledger of every removed byte.

Entry points: ``slim_tree`` (apply a profile to a staging tree, optionally keeping a
backup), ``check_closure``/``raise_for_missing`` (every kept ELF file loads),
``restore`` (undo slimming for files a proof run could not load), ``precompile``
(deterministic .pyc afterwards), ``Ledger`` (rule -> files -> bytes, and reverts),
``RULES``/``PROFILES``.
"""

from torchslim.slim.apply import slim_tree
from torchslim.slim.closure import ClosureError, Missing, check_closure, raise_for_missing
from torchslim.slim.ledger import Ledger, Revert
from torchslim.slim.pyc import precompile
from torchslim.slim.restore import Restored, restore
from torchslim.slim.rules import DEFAULT_PROFILE, PROFILES, RULES, Rule, check_profile, rule_by_id

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "RULES",
    "ClosureError",
    "Ledger",
    "Missing",
    "Restored",
    "Revert",
    "Rule",
    "check_closure",
    "check_profile",
    "precompile",
    "raise_for_missing",
    "restore",
    "rule_by_id",
    "slim_tree",
]
