"""Run the rules over parsed Dockerfiles; apply ignores and severity overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torchslim.lint.config import LintConfig
from torchslim.lint.errors import LintError
from torchslim.lint.parser import Dockerfile, read_dockerfile
from torchslim.lint.rules import RULES, SEVERITY_RANK, Severity


@dataclass(frozen=True)
class Finding:
    rule: str
    name: str
    severity: Severity
    file: str
    line: int
    message: str
    why: str
    fix: str


FailOn = Severity | str  # "error" | "warning" | "info" | "none"


@dataclass
class LintResult:
    files: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def exit_code(self, fail_on: FailOn = "error") -> int:
        """1 when any finding is at or above ``fail_on`` ("none" never fails)."""
        if fail_on == "none":
            return 0
        if fail_on not in SEVERITY_RANK:
            raise LintError(f"--fail-on: expected error, warning, info or none, got {fail_on!r}")
        floor = SEVERITY_RANK[fail_on]
        return int(any(SEVERITY_RANK[f.severity] >= floor for f in self.findings))

    def rule_ids(self, file: str | None = None) -> set[str]:
        return {f.rule for f in self.findings if file is None or f.file == file}


def check_ignores(df: Dockerfile) -> None:
    for ins in df.instructions:
        if ins.ignore is None:
            continue
        for rid in ins.ignore.ids:
            if rid not in RULES:
                raise LintError(
                    f"{df.path}:{ins.ignore.line}: ignore comment names unknown rule {rid!r}; "
                    f"known ids are TS101..TS{100 + len(RULES)} (see docs/lint.md)"
                )


def lint_dockerfile(df: Dockerfile, config: LintConfig, min_severity: Severity) -> list[Finding]:
    check_ignores(df)
    ignored_at: dict[int, set[str]] = {}
    for ins in df.instructions:
        if ins.ignore:
            ignored_at.setdefault(ins.line, set()).update(ins.ignore.ids)
    floor = SEVERITY_RANK[min_severity]
    out: list[Finding] = []
    for rule in RULES.values():
        if rule.id in config.ignore:
            continue
        severity = config.severity.get(rule.id, rule.severity)
        if SEVERITY_RANK[severity] < floor:
            continue
        seen: set[tuple[int, str]] = set()
        for hit in rule.check(df):
            if rule.id in ignored_at.get(hit.line, ()) or (hit.line, hit.message) in seen:
                continue
            seen.add((hit.line, hit.message))
            out.append(
                Finding(
                    rule.id,
                    rule.name,
                    severity,
                    str(df.path),
                    hit.line,
                    hit.message,
                    rule.why,
                    rule.fix,
                )  # fmt: skip
            )
    out.sort(key=lambda f: (f.line, f.rule))
    return out


# The names docker build and podman build look for, in the order they look.
DOCKERFILE_NAMES = ("Dockerfile", "dockerfile", "Containerfile", "containerfile")


def is_dockerfile_name(name: str) -> bool:
    """``Dockerfile``, ``dockerfile``, ``Containerfile`` (and ``.x`` variants), ``*.dockerfile``."""
    lower = name.lower()
    return lower.split(".")[0] in ("dockerfile", "containerfile") or lower.endswith(
        (".dockerfile", ".containerfile")
    )


def find_dockerfiles(root: Path) -> list[Path]:
    """The default build files in ``root`` (Dockerfile, dockerfile, Containerfile)."""
    found: list[Path] = []
    for name in DOCKERFILE_NAMES:
        path = root / name
        # A case-insensitive file system answers for "dockerfile" with "Dockerfile".
        if path.is_file() and not any(path.samefile(f) for f in found):
            found.append(path)
    return found


def _expand(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(c for c in p.iterdir() if c.is_file() and is_dockerfile_name(c.name))
            if not found:
                raise LintError(f"{p}: no Dockerfile in this directory; pass the file itself")
            files.extend(found)
        else:
            files.append(p)
    return files


def lint_files(paths: list[Path], config: LintConfig, min_severity: Severity) -> LintResult:
    if min_severity not in SEVERITY_RANK:
        raise LintError(f"--severity: expected error, warning or info, got {min_severity!r}")
    result = LintResult()
    for path in _expand(paths):
        df = read_dockerfile(path)
        result.files.append(str(path))
        result.findings.extend(lint_dockerfile(df, config, min_severity))
    return result
