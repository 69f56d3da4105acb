"""Rule table invariants, glob semantics and profile validation."""

from __future__ import annotations

import re

import pytest

from torchslim.errors import ConfigError
from torchslim.slim.globs import glob_match, match_self_or_parent
from torchslim.slim.rules import PROFILES, RULES, check_profile, rule_by_id, rules_for


def test_rule_ids_are_unique_kebab_case_with_one_line_why() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    for rule in RULES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.id), rule.id
        assert rule.why and "\n" not in rule.why and len(rule.why) <= 100
        assert rule.keep_in <= set(PROFILES), rule.id
        assert rule.patterns


def test_full_profile_removes_only_caches() -> None:
    assert [r.id for r in rules_for("full")] == ["pycache"]


def test_headers_kept_under_compile_only() -> None:
    assert rule_by_id("torch-headers").keep_in == {"compile", "full"}
    assert "torch-headers" in [r.id for r in rules_for("inference")]
    assert "torch-headers" in [r.id for r in rules_for("distributed")]
    assert "torch-headers" not in [r.id for r in rules_for("compile")]


def test_unknown_profile_names_valid_ones() -> None:
    with pytest.raises(ConfigError) as exc:
        check_profile("tiny")
    msg = str(exc.value)
    assert "'tiny'" in msg and "\n" not in msg
    for name in PROFILES:
        assert name in msg


def test_rule_by_id_unknown() -> None:
    with pytest.raises(KeyError, match="torch-headers"):
        rule_by_id("nope")


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("torch/lib/*_test.so", "torch/lib/libx_test.so", True),
        ("torch/lib/*_test.so", "torch/lib/sub/libx_test.so", False),  # * stays in a segment
        ("**/*.a", "libfoo.a", True),  # **/ may be zero segments
        ("**/*.a", "a/b/c/libfoo.a", True),
        ("*/**/tests/**", "tests/test_x.py", False),  # not a top-level tests package
        ("*/**/tests/**", "sympy/tests/test_x.py", True),
        ("*/**/tests/**", "sympy/core/tests/test_x.py", True),
        ("torch/bin/**", "torch/bin/upgrader_models/x.ptl", True),
        ("lib?.so", "libx.so", True),
        ("lib[!x].so", "libx.so", False),
    ],
)
def test_glob(pattern: str, path: str, expected: bool) -> None:
    assert glob_match(pattern, path) is expected


def test_keep_glob_matches_parent_directory() -> None:
    assert match_self_or_parent("torch/include", "torch/include/c10/macros/Macros.h")
    assert not match_self_or_parent("torch/include", "torch/includes/x.h")


def test_matches_respects_exclude_and_dist_info() -> None:
    bin_tests = rule_by_id("torch-bin-tests")
    assert bin_tests.matches("torch/bin/test_api")
    assert not bin_tests.matches("torch/bin/torch_shm_manager")
    suites = rule_by_id("package-test-suites")
    assert not suites.matches("torch/testing/_internal/common_utils.py")
    assert not suites.matches("foo-1.0.dist-info/licenses/test/LICENSE")
    assert not rule_by_id("static-libraries").matches("x-1.0.dist-info/libfoo.a")
