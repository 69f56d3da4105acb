"""Every rule fires on a real Dockerfile of the corpus; expectations are per file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from torchslim.lint import RULES, LintError, format_result, lint_paths, lint_text

CORPUS = Path(__file__).parents[2] / "corpus" / "dockerfiles"

# file → the rule ids torchslim must report on it, no more, no less.
EXPECTED: dict[str, set[str]] = {
    "01-pytorch-devel-single": {"TS101", "TS103", "TS106", "TS108"},
    "02-pytorch-latest-untagged": {"TS106", "TS108", "TS109"},
    "03-pytorch-runtime-good": set(),
    "04-cuda-runtime-pip-torch": {"TS103", "TS104", "TS105", "TS106", "TS108", "TS113"},
    "05-cuda-devel-deadsnakes": {"TS101", "TS102", "TS106", "TS108", "TS113"},
    "06-python-slim-cuda-wheel-cpu-service": {"TS106", "TS108", "TS117"},
    "07-python-slim-cpu-index-good": set(),
    "08-multistage-site-packages-mismatch": {"TS108", "TS111"},
    "09-multistage-to-conda-prefix": {"TS108", "TS111"},
    "10-conda-env-yml": {"TS103", "TS106", "TS108"},
    "11-conda-install-pytorch-clean": set(),
    "12-uv-sync-dev": {"TS103", "TS106", "TS108", "TS109", "TS110"},
    "13-uv-multistage-good": set(),
    "14-poetry-no-venv": {"TS103", "TS106", "TS108", "TS110"},
    "15-poetry-export-multistage": set(),
    "16-jupyter-no-token": {"TS103", "TS106", "TS108", "TS109", "TS110", "TS112"},
    "17-jupyter-shell-form": {"TS106", "TS108", "TS110", "TS112"},
    "18-ssh-dev-container": {
        "TS101",
        "TS102",
        "TS103",
        "TS104",
        "TS105",
        "TS106",
        "TS107",
        "TS108",
        "TS110",
        "TS113",
        "TS114",
    },  # fmt: skip
    "19-secrets-and-add-url": {"TS108", "TS114", "TS115", "TS116", "TS117"},
    "20-apt-no-cleanup-user-root": {"TS104", "TS105", "TS106", "TS108"},
    "21-escape-backtick-heredoc": {"TS103"},
    "22-ignored-and-arg-base": set(),
    "23-python-latest-compilers": {"TS102", "TS108", "TS109"},
    "24-nvidia-cuda-base-good": set(),
}


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.Dockerfile"))


def test_corpus_is_complete() -> None:
    names = {p.stem for p in corpus_files()}
    assert names == set(EXPECTED) and len(names) >= 20
    for p in corpus_files():
        head = p.read_text().splitlines()[:6]
        assert any("Pattern:" in h for h in head) and any("How common:" in h for h in head)


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.stem)
def test_corpus_file(path: Path) -> None:
    result = lint_paths([path], config=None, min_severity="info")
    assert result.rule_ids() == EXPECTED[path.stem]


def test_every_rule_is_triggered_by_the_corpus() -> None:
    fired = set().union(*EXPECTED.values())
    assert fired == set(RULES)


def test_rules_have_id_severity_why_fix() -> None:
    for rid, rule in RULES.items():
        assert rid == rule.id and rid.startswith("TS") and len(rid) == 5
        assert rule.severity in ("error", "warning", "info")
        assert rule.why and "\n" not in rule.why and rule.fix


def test_finding_lines_point_at_the_instruction() -> None:
    result = lint_paths([CORPUS / "19-secrets-and-add-url.Dockerfile"])
    where = {(f.rule, f.line) for f in result.findings}
    assert ("TS115", 10) in where and ("TS116", 14) in where
    # ENV HF_TOKEN=${HF_TOKEN} copies the ARG: only the ARG line (6) and the literal (7).
    assert sorted(f.line for f in result.findings if f.rule == "TS114") == [6, 7]


def test_secret_names_are_segment_matched() -> None:
    ids = {f.rule for f in lint_text("FROM debian:12\nENV TOKENIZERS_PARALLELISM=false\nUSER 1\n")}
    assert "TS114" not in ids
    ids = {f.rule for f in lint_text("FROM debian:12\nENV AWS_SECRET_ACCESS_KEY=x\nUSER 1\n")}
    assert "TS114" in ids


@pytest.mark.parametrize(
    ("line", "fires"),
    [
        ("RUN pip install torch", True),
        ("RUN python3 -m pip install torch", True),
        ("RUN uv pip install --system torch", True),
        ("RUN pip install --no-cache-dir torch", False),
        ("RUN PIP_NO_CACHE_DIR=1 pip install torch", False),
        ("RUN --mount=type=cache,target=/root/.cache/pip pip install torch", False),
        ("RUN uv pip install --no-cache --system torch", False),
        ('RUN ["/opt/venv/bin/python", "-m", "pip", "install", "x"]', True),
        ('RUN ["/opt/venv/bin/pip", "install", "--no-cache-dir", "x"]', False),
    ],
)
def test_package_cache_variants(line: str, fires: bool) -> None:
    text = f'FROM python:3.11-slim\n{line}\nUSER 1000\nHEALTHCHECK CMD ["true"]\n'
    assert ("TS103" in {f.rule for f in lint_text(text)}) is fires


def test_builder_stage_mistakes_do_not_count() -> None:
    text = (
        "FROM python:3.11 AS build\n"
        "RUN apt-get update && apt-get install -y build-essential\n"
        "RUN pip install -r requirements-dev.txt\n"
        "FROM python:3.11-slim\nCOPY --from=build /opt/venv /opt/venv\n"
        'USER 1000:1000\nHEALTHCHECK CMD ["true"]\n'
    )
    assert lint_text(text) == []


def test_stage_lineage_counts() -> None:
    text = (
        "FROM python:3.11-slim AS base\nRUN apt-get update && apt-get install -y gcc\n"
        "FROM base\nUSER 1000\n"
    )
    assert {"TS102", "TS104", "TS105"} <= {f.rule for f in lint_text(text)}


def test_inline_ignore_before_instruction() -> None:
    text = "FROM python:3.11-slim\n# torchslim: ignore=TS103, ts117\nRUN pip install torch\n"
    ids = {f.rule for f in lint_text(text)}
    assert "TS103" not in ids and "TS117" not in ids and "TS106" in ids


def test_config_file_ignore_and_severity(tmp_path: Path) -> None:
    cfg = tmp_path / ".torchslim-lint.toml"
    cfg.write_text('ignore = ["TS108"]\n[severity]\nTS106 = "info"\n')
    path = CORPUS / "02-pytorch-latest-untagged.Dockerfile"
    result = lint_paths([path], config=cfg, min_severity="info")
    assert result.rule_ids() == {"TS106", "TS109"}
    assert {f.severity for f in result.findings if f.rule == "TS106"} == {"info"}
    assert result.exit_code("error") == 0 and result.exit_code("warning") == 1
    only_warn = lint_paths([path], config=cfg, min_severity="warning")
    assert only_warn.rule_ids() == {"TS109"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('ignore = ["TS000"]\n', "unknown rule id 'TS000'"),
        ("colour = 1\n", "unknown key 'colour'"),
        ('[severity]\nTS101 = "fatal"\n', "expected error, warning or info"),
        ("ignore = [\n", "not valid TOML"),
    ],
)
def test_bad_config(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / ".torchslim-lint.toml"
    cfg.write_text(text)
    with pytest.raises(LintError, match=message):
        lint_paths([CORPUS / "03-pytorch-runtime-good.Dockerfile"], config=cfg)


def test_exit_code_by_severity() -> None:
    result = lint_paths([CORPUS / "01-pytorch-devel-single.Dockerfile"])
    assert result.exit_code("error") == 1
    assert lint_paths([CORPUS / "07-python-slim-cpu-index-good.Dockerfile"]).exit_code("info") == 0
    assert result.exit_code("none") == 0
    with pytest.raises(LintError):
        result.exit_code("fatal")


def test_formats() -> None:
    result = lint_paths([CORPUS / "16-jupyter-no-token.Dockerfile"])
    tty = format_result(result, "tty")
    assert "TS112" in tty and "16-jupyter-no-token.Dockerfile:9" in tty
    as_json = json.loads(format_result(result, "json"))
    assert {f["rule"] for f in as_json["findings"]} == EXPECTED["16-jupyter-no-token"]
    sarif = json.loads(format_result(result, "sarif"))
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    for res in run["results"]:
        assert rule_ids[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note")
        assert res["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1
    gitlab = json.loads(format_result(result, "gitlab"))
    assert len({g["fingerprint"] for g in gitlab}) == len(gitlab) == len(result.findings)
    assert {g["severity"] for g in gitlab} <= {"critical", "major", "minor", "info"}
    assert all(g["location"]["lines"]["begin"] >= 1 for g in gitlab)
    clean = lint_paths([CORPUS / "03-pytorch-runtime-good.Dockerfile"])
    assert "no findings" in format_result(clean, "tty")
