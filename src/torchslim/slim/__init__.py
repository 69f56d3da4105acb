"""Slimming by named rules tied to a profile, with a ledger of every removed byte.

Entry points: ``slim_tree`` (apply a profile to a staging tree), ``precompile``
(deterministic .pyc afterwards), ``Ledger`` (rule -> files -> bytes), ``RULES``/``PROFILES``.
"""

from torchslim.slim.apply import slim_tree
from torchslim.slim.ledger import Ledger
from torchslim.slim.pyc import precompile
from torchslim.slim.rules import DEFAULT_PROFILE, PROFILES, RULES, Rule, check_profile, rule_by_id

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "RULES",
    "Ledger",
    "Rule",
    "check_profile",
    "precompile",
    "rule_by_id",
    "slim_tree",
]
