"""docs/project.md lists every config key, every default ignore pattern and secret rule."""

from __future__ import annotations

from pathlib import Path

from torchslim.config import ProjectConfig
from torchslim.project.ignore import DEFAULT_IGNORE
from torchslim.project.secrets import SECRET_RULES

DOC = Path(__file__).resolve().parents[3] / "docs" / "project.md"


def test_every_key_pattern_and_rule_is_documented() -> None:
    text = DOC.read_text()
    keys = {f.alias or n for n, f in ProjectConfig.model_fields.items()} - {"root", "file"}
    missing = [k for k in sorted(keys) if f"| `{k}` |" not in text]
    assert not missing, f"config keys not in docs/project.md: {missing}"
    for pattern, why in DEFAULT_IGNORE:
        assert f"| `{pattern}` | {why} |" in text, pattern
    for rule in SECRET_RULES:
        assert f"| `{rule.id}` | {rule.what} | {rule.why} |" in text, rule.id
