"""Drive the proof's checker in the sandbox: resume after a crash, merge what each run said.

``proofcheck`` runs in the image; each crash (SIGSEGV, SIGBUS, a hang) leaves the
target it was loading unanswered, which becomes that file's failure, and the next
run starts after it.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchslim.proof import checker as proofcheck
from torchslim.proof import elfread
from torchslim.proof.entry import EntryPoint
from torchslim.proof.result import Check, Deferred, DeferredSource, Failure
from torchslim.proof.tagged import parse_tagged
from torchslim.sandbox.run import Emulation, SandboxResult, run_in_root


def checker_source() -> str:
    """What runs in the image: ``elfread`` then ``checker``, one script (one future import)."""
    elf = Path(elfread.__file__).read_text(encoding="utf-8")
    main = Path(proofcheck.__file__).read_text(encoding="utf-8")
    return elf + "\n" + main.replace("from __future__ import annotations\n", "", 1)


CHECKER = checker_source()
MAX_CRASHES = 20
MAX_CHECKER_OUTPUT = 16 << 20
_KIND_CHECK: dict[str, Check] = {"torch": "torch", "ext": "extension", "lib": "library"}


@dataclass
class CheckerOutcome:
    """What the checker runs reported, merged across resumes."""

    targets: list[list[str]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    entry_error: str | None = None
    entry_done: bool = False
    done: bool = False
    pending: int | None = None  # B without R: the target being loaded when it died
    crashes: dict[int, str] = field(default_factory=dict)  # target → how the checker died
    failures: list[Failure] = field(default_factory=list)  # not tied to one target
    runs: int = 0


def parse_checker_output(stdout: str, outcome: CheckerOutcome) -> None:
    """Merge one run's tagged lines (see ``proofcheck``) into ``outcome``."""
    outcome.pending = None
    for line in stdout.splitlines():
        parsed = parse_tagged(line)
        if parsed is None:
            continue
        tag, value = parsed
        if tag == "T" and isinstance(value, list):
            outcome.targets = value
        elif tag == "S" and isinstance(value, dict):
            outcome.skipped = value
        elif tag == "B" and isinstance(value, int):
            outcome.pending = value
        elif tag == "R" and isinstance(value, dict):
            outcome.results[int(value["i"])] = value
            outcome.pending = None
        elif tag == "E" and isinstance(value, dict):
            outcome.entry_done, outcome.entry_error = True, value.get("error")
        elif tag == "D":
            outcome.done = True


def _crash_note(result: SandboxResult, outcome: CheckerOutcome) -> str:
    """``killed by SIGSEGV (Fatal Python error: …)``; for SIGBUS, the truncated files."""
    fatal = [ln for ln in result.stderr.splitlines() if ln.startswith("Fatal Python error")]
    bus = _broken(outcome) if result.returncode == -signal.SIGBUS else ""
    return result.exit_text() + (f" ({fatal[-1]})" if fatal else "") + bus


def _broken(outcome: CheckerOutcome) -> str:
    """Names of the truncated files found so far: the likely cause of a SIGBUS."""
    names = [
        Path(outcome.targets[i][1]).name
        for i, r in sorted(outcome.results.items())
        if str(r.get("error", "")).startswith("truncated")
    ]
    return f"; truncated: {', '.join(names[:3])}" if names else ""


def _subject(target: list[str]) -> tuple[Check, str]:
    kind, path, module = target
    return _KIND_CHECK.get(kind, "library"), (path or module)


def run_checker(
    root: Path,
    python_exe: str,
    *,
    env: dict[str, str],
    user: tuple[int, int],
    workdir: str,
    entry: EntryPoint,
    check_paths: list[str] | None,
    emulation: Emulation | None,
    timeout: float,
) -> CheckerOutcome:
    """Run the checker, resuming after each crash; every crash is a failure naming its file."""
    outcome = CheckerOutcome()
    deadline = time.monotonic() + timeout
    request: dict[str, Any] = {
        "workdir": workdir,
        "check_paths": check_paths,
        "entry": entry.to_dict(),
        "resume": 0,
        "torch_context": True,
    }
    while True:
        outcome.runs += 1
        result = run_in_root(
            root,
            [python_exe, "-c", CHECKER],
            env=env,
            user=user,
            cwd=workdir,
            timeout=max(deadline - time.monotonic(), 1.0),
            stdin=json.dumps(request).encode(),
            max_output=MAX_CHECKER_OUTPUT,
            emulation=emulation,
        )
        if result.setup_error and not outcome.targets:
            outcome.failures.append(Failure("checker", python_exe, result.setup_error))
            return outcome
        parse_checker_output(result.stdout, outcome)
        if outcome.done:
            return outcome
        if outcome.pending is None:
            # Died outside a load: before discovery (the interpreter does not start) or in
            # the entry check.
            check: Check = "entry" if outcome.targets else "checker"
            subject = entry.describe() if outcome.targets else python_exe
            stderr = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
            note = _crash_note(result, outcome) + (": " if stderr else "") + " | ".join(stderr[-3:])
            outcome.failures.append(Failure(check, subject, note))
            return outcome
        outcome.crashes[outcome.pending] = _crash_note(result, outcome)
        if outcome.pending == 0 and outcome.targets[0][0] == "torch":
            request["torch_context"] = False
        request["resume"] = outcome.pending + 1
        crashes = len(outcome.crashes)
        if crashes >= MAX_CRASHES or time.monotonic() >= deadline:
            left = len(outcome.targets) - request["resume"]
            why = "too many crashes" if crashes >= MAX_CRASHES else f"{timeout:.0f}s spent"
            outcome.failures.append(
                Failure("checker", python_exe, f"{left} files not checked: {why}")
            )
            return outcome


def loads(outcome: CheckerOutcome) -> tuple[int, int, list[Deferred], list[Failure]]:
    """Libraries and extension modules that loaded, the deferred ones, the failures."""
    libraries = extensions = 0
    deferred: list[Deferred] = []
    failures: list[Failure] = []
    for i, target in enumerate(outcome.targets):
        result = outcome.results.get(i)
        check, subject = _subject(target)
        if i in outcome.crashes:
            failures.append(Failure(check, subject, outcome.crashes[i]))
        if result is None:
            continue
        if not result.get("ok"):
            failures.append(Failure(check, subject, str(result.get("error"))))
        elif result.get("deferred"):
            source: DeferredSource = (
                "interconnect" if result.get("source") == "interconnect" else "driver"
            )
            deferred.append(Deferred(subject, str(result["deferred"]), source))
        elif check == "library":
            libraries += 1
        else:
            extensions += 1
    return libraries, extensions, deferred, failures
