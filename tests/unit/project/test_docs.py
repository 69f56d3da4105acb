"""The README lists every config key; docs/project.md every default ignore pattern and
secret rule."""

from __future__ import annotations

from pathlib import Path

from torchslim.config import ProjectConfig
from torchslim.project.ignore import DEFAULT_IGNORE
from torchslim.project.secrets import SECRET_RULES

ROOT = Path(__file__).resolve().parents[3]


def test_every_key_is_in_the_readme() -> None:
    text = ROOT.joinpath("README.md").read_text()
    table = text[text.index("#### Every key") :]
    keys = {f.alias or n for n, f in ProjectConfig.model_fields.items()} - {"root", "file"}
    missing = [k for k in sorted(keys) if f"| `{k}` |" not in table]
    assert not missing, f"config keys not in the README's key table: {missing}"


def test_every_pattern_and_rule_is_in_docs_project() -> None:
    text = ROOT.joinpath("docs", "project.md").read_text()
    for pattern, why in DEFAULT_IGNORE:
        assert f"| `{pattern}` | {why} |" in text, pattern
    for rule in SECRET_RULES:
        assert f"| `{rule.id}` | {rule.what} | {rule.why} |" in text, rule.id
