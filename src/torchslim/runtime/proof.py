"""Prove an image by running it: in its own root filesystem, with its own interpreter.

``prove_rootfs`` checks, before any output is written:

1. every kept ELF shared object and extension module loads (``proofcheck``: torch
   first, then extension modules by import, then libraries with ``ctypes.CDLL``);
   a library that needs the NVIDIA driver (``libcuda.so.1``, injected at run time)
   is *deferred*, not failed;
2. the app's entry module imports (``entry.entry_from_cmd`` has the rules);
3. ``cmd``'s executable is on the image's PATH (``rootpath``; no sandbox needed);
4. the ``smoke`` command, when configured, exits 0.

It runs in ``sandbox.run_in_root`` (no daemon), under qemu-user for a foreign
architecture. Where neither can run, the result is *not proven* with the reason:
never a silent pass. A crash (segfault) while loading names that file, and the
checker resumes after it.
"""

from __future__ import annotations

import json
import shlex
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from torchslim.runtime import proofcheck
from torchslim.runtime.entry import EntryPoint, entry_from_cmd
from torchslim.runtime.rootpath import cmd_problem
from torchslim.runtime.sandbox import (
    DEFAULT_PATH,
    Emulation,
    SandboxError,
    SandboxResult,
    emulation_for,
    run_in_root,
    sandbox_available,
    sandbox_method,
)

__all__ = ["EntryPoint", "Failure", "Proof", "entry_from_cmd", "prove_rootfs"]

Status = Literal["proven", "failed", "not-proven"]
Check = Literal["torch", "extension", "library", "entry", "cmd", "smoke", "checker"]
CHECKER = Path(proofcheck.__file__).read_text(encoding="utf-8")
MAX_CRASHES = 20
MAX_CHECKER_OUTPUT = 16 << 20
_KIND_CHECK: dict[str, Check] = {"torch": "torch", "ext": "extension", "lib": "library"}


@dataclass(frozen=True)
class Failure:
    """One thing that does not work in the image, in one line."""

    check: Check
    subject: str  # the image path, module or command
    message: str

    def line(self) -> str:
        return f"{self.check} {self.subject}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "subject": self.subject, "message": self.message}


@dataclass(frozen=True)
class Proof:
    """What was proven about an image, how, and what failed."""

    status: Status
    method: str | None  # userns+chroot, chroot, userns+chroot+qemu-aarch64 …
    reason: str | None = None  # why not proven
    libraries: int = 0  # shared libraries that loaded
    extensions: int = 0  # extension modules that imported (torch included)
    deferred: tuple[str, ...] = ()  # files that need the host's NVIDIA driver to load
    skipped: dict[str, int] = field(default_factory=dict)  # ELF files not meant for dlopen
    entry: str | None = None  # the entry checked (EntryPoint.describe), None: none
    entry_note: str | None = None  # why no entry was checked
    cmd: str | None = None  # cmd[0], checked on PATH
    smoke: Literal["passed", "failed", "not-configured", "not-run"] = "not-configured"
    failures: tuple[Failure, ...] = ()
    seconds: float = 0.0
    checker_runs: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "proven"

    def summary(self) -> str:
        """One line for the build report and the image label."""
        if self.status == "not-proven":
            return f"not proven: {self.reason}"
        if self.failures:
            first = self.failures[0].line()
            more = f" (+{len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
            return f"proof failed: {first}{more}"
        parts = [
            f"{self.libraries:,} shared objects and {self.extensions:,} extension modules load"
            + (f" ({len(self.deferred)} need the NVIDIA driver)" if self.deferred else "")
        ]
        parts.append(f"entry {self.entry} imports" if self.entry else "no Python entry")
        if self.cmd:
            parts.append(f"cmd {self.cmd} on PATH")
        if self.smoke == "passed":
            parts.append("smoke passed")
        return f"proven: {'; '.join(parts)} ({self.seconds:.1f} s, {self.method})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "summary": self.summary(),
            "method": self.method,
            "reason": self.reason,
            "libraries": self.libraries,
            "extensions": self.extensions,
            "deferred": list(self.deferred),
            "skipped": dict(self.skipped),
            "entry": self.entry,
            "entry_note": self.entry_note,
            "cmd": self.cmd,
            "smoke": self.smoke,
            "failures": [f.to_dict() for f in self.failures],
            "seconds": round(self.seconds, 3),
            "checker_runs": self.checker_runs,
        }


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
        tag, _, payload = line.partition(" ")
        try:
            value = json.loads(payload) if payload else None
        except ValueError:
            continue
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


def _crash_note(result: SandboxResult) -> str:
    fatal = [ln for ln in result.stderr.splitlines() if ln.startswith("Fatal Python error")]
    return result.exit_text() + (f" ({fatal[-1]})" if fatal else "")


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
            check: Check = "cmd" if "working directory" in result.setup_error else "checker"
            outcome.failures.append(Failure(check, python_exe, result.setup_error))
            return outcome
        parse_checker_output(result.stdout, outcome)
        if outcome.done:
            return outcome
        if outcome.pending is None:
            # Died outside a load: before discovery (the interpreter does not start) or in
            # the entry check.
            subject, check = (
                (entry.describe(), "entry") if outcome.targets else (python_exe, "checker")
            )
            bus = result.returncode == -signal.SIGBUS
            note = _crash_note(result) + (_broken(outcome) if bus else "")
            stderr = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
            tail = " | ".join(stderr[-3:])
            outcome.failures.append(Failure(check, subject, f"{note}: {tail}" if tail else note))
            return outcome
        bus = result.returncode == -signal.SIGBUS
        outcome.crashes[outcome.pending] = _crash_note(result) + (_broken(outcome) if bus else "")
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


def _loads(outcome: CheckerOutcome) -> tuple[int, int, list[str], list[Failure]]:
    libraries = extensions = 0
    deferred: list[str] = []
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
            deferred.append(subject)
        elif check == "library":
            libraries += 1
        else:
            extensions += 1
    return libraries, extensions, deferred, failures


def _smoke(
    root: Path, smoke: list[str], env: dict[str, str], user: tuple[int, int], workdir: str,
    emulation: Emulation | None, timeout: float,
) -> Failure | None:  # fmt: skip
    result = run_in_root(
        root, smoke, env=env, user=user, cwd=workdir, timeout=timeout, emulation=emulation
    )
    if result.returncode == 0 and not result.timed_out:
        return None
    why = result.setup_error or result.tail(4) or "(no output)"
    return Failure("smoke", shlex.join(smoke), f"{result.exit_text()}: {why}")


def prove_rootfs(
    root: Path,
    *,
    python_exe: str,
    env: dict[str, str],
    user: tuple[int, int],
    workdir: str,
    cmd: list[str],
    smoke: list[str],
    check_paths: list[str] | None = None,
    arch: str,
    timeout: float = 300.0,
    smoke_timeout: float = 120.0,
) -> Proof:
    """Prove the image whose files are in ``root`` (see the module docstring).

    ``env`` is the image's environment, ``user`` its numeric uid:gid, ``workdir`` its
    working directory, ``arch`` its OCI architecture (``amd64``, ``linux/arm64``).
    ``check_paths`` (image paths) limits the loading to those files; None loads all.
    """
    start = time.monotonic()
    entry = entry_from_cmd(cmd, workdir, env)
    problem = cmd_problem(root, cmd[0], env.get("PATH", DEFAULT_PATH), workdir) if cmd else None
    failures = [Failure("cmd", cmd[0], problem)] if problem else []
    common: dict[str, Any] = {
        "cmd": cmd[0] if cmd and not problem else None,
        "entry_note": entry.note,
        "smoke": "not-run" if smoke else "not-configured",
    }
    emulation = emulation_for(arch)
    method = sandbox_method()
    reason = sandbox_available() or (emulation if isinstance(emulation, str) else None)
    if reason is None and not isinstance(emulation, str):
        method = f"{method}+{emulation.method}" if emulation else method
        try:
            outcome = run_checker(
                root, python_exe, env=env, user=user, workdir=workdir, entry=entry,
                check_paths=check_paths, emulation=emulation, timeout=timeout,
            )  # fmt: skip
            smoke_failure = (
                _smoke(root, smoke, env, user, workdir, emulation, smoke_timeout) if smoke else None
            )
        except SandboxError as exc:
            reason = str(exc)
    if reason is not None:
        status: Status = "failed" if failures else "not-proven"
        return Proof(status, method, reason, failures=tuple(failures),
                     seconds=time.monotonic() - start, **common)  # fmt: skip
    libraries, extensions, deferred, load_failures = _loads(outcome)
    failures += load_failures + outcome.failures
    if outcome.entry_error:
        failures.append(Failure("entry", entry.describe(), outcome.entry_error))
    if smoke:
        common["smoke"] = "failed" if smoke_failure else "passed"
        failures += [smoke_failure] if smoke_failure else []
    return Proof(
        "failed" if failures else "proven",
        method,
        libraries=libraries,
        extensions=extensions,
        deferred=tuple(deferred),
        skipped=dict(outcome.skipped),
        entry=entry.describe() if outcome.entry_done else None,
        failures=tuple(failures),
        seconds=time.monotonic() - start,
        checker_runs=outcome.runs,
        **common,
    )
