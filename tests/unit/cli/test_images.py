"""`torchslim rules` lists every slimming rule with what each profile does."""

from __future__ import annotations

from click.testing import CliRunner

from torchslim.cli import main
from torchslim.slim.rules import RULES


def test_rules_lists_every_rule_and_profile() -> None:
    result = CliRunner().invoke(main, ["rules"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for rule in RULES:
        assert rule.id in result.output
    for profile in ("inference", "compile", "distributed", "full"):
        assert profile in result.output


def test_rules_for_one_profile_hides_kept_rules() -> None:
    result = CliRunner().invoke(main, ["rules", "--profile", "compile"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    assert "torch-headers" not in result.output.split("inference:")[0]
    assert "torch-test-binaries" in result.output


def test_unknown_profile_is_one_line() -> None:
    result = CliRunner().invoke(main, ["rules", "--profile", "tiny"])
    assert result.exit_code == 2
    assert "tiny" in result.output and "inference" in result.output
