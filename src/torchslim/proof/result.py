"""The proof's result: what was proven about an image, how, and what failed (one line each).

``Proof.summary()`` is one line for the build report (``label()`` the same without time
and method, for an image label);
``Proof.to_dict()`` is the JSON report's ``proof`` object and ``Proof.from_dict`` its
inverse (the proof cache).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from torchslim.proof.serve import Served

Status = Literal["proven", "failed", "not-proven"]
Check = Literal[
    "torch", "extension", "library", "entry", "cmd", "workdir", "smoke", "checker", "serve"
]
LOADS: tuple[Check, ...] = ("torch", "extension", "library")  # hints: serving decides
DeferredSource = Literal["driver", "interconnect"]
DEFERRED_WHY: dict[str, str] = {
    "driver": "need the NVIDIA driver, injected at run time",
    "interconnect": "are plugins for RDMA/MPI/UCX stacks the image does not ship",
}


@dataclass(frozen=True)
class Deferred:
    """A file that loads only with a library the host or the cluster provides, not the image.

    ``driver``: libcuda.so.1 and friends, injected by the NVIDIA container toolkit.
    ``interconnect``: NVSHMEM/cuFile/NCCL transport plugins that need libibverbs,
    libmlx5, MPI, PMIx, UCX or libfabric and are dlopen'ed only when configured.
    """

    path: str
    needs: str  # the missing soname, e.g. libcuda.so.1
    source: DeferredSource

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "needs": self.needs, "source": self.source}


@dataclass(frozen=True)
class Failure:
    """One thing that does not work in the image, in one line."""

    check: Check
    subject: str  # the image path, module or command
    message: str
    package: str | None = None  # ``Name Version`` of the distribution that owns ``subject``

    def line(self) -> str:
        owner = f" ({self.package})" if self.package else ""
        return f"{self.check} {self.subject}{owner}: {self.message}"

    def to_dict(self) -> dict[str, str | None]:
        return {
            "check": self.check,
            "subject": self.subject,
            "message": self.message,
            "package": self.package,
        }


# "after 3.1 s", "in 0.4 s": how long a step took differs from host to host and run to run.
_TIMING = re.compile(r" (?:after|in) \d+(?:\.\d+)? s\b")


@dataclass(frozen=True)
class Proof:
    """What was proven about an image, how, and what failed."""

    status: Status
    method: str | None  # userns+chroot, chroot, userns+chroot+qemu-aarch64 …
    reason: str | None = None  # why not proven
    libraries: int = 0  # shared libraries that loaded
    extensions: int = 0  # extension modules that imported (torch included)
    deferred: tuple[Deferred, ...] = ()  # files that load only with what the host provides
    skipped: dict[str, int] = field(default_factory=dict)  # ELF files not meant for dlopen
    entry: str | None = None  # the entry checked (EntryPoint.describe), None: none
    entry_check: str | None = None  # "imports" or "compiles" (never run)
    entry_note: str | None = None  # why no entry was checked
    cmd: str | None = None  # cmd[0], checked on PATH
    smoke: Literal["passed", "failed", "not-configured", "not-run"] = "not-configured"
    failures: tuple[Failure, ...] = ()
    seconds: float = 0.0
    checker_runs: int = 0
    served: Served | None = None  # the verdict for a service: started, answered, stopped
    warnings: tuple[Failure, ...] = ()  # what failed alone while the service worked

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
        parts = []
        if self.served is not None:
            asked = f", {self.served.requests} smoke requests" if self.served.requests else ""
            parts.append(f"served: {self.served.health}{asked}")
        parts.append(
            f"{self.libraries:,} shared objects and {self.extensions:,} extension modules load"
            + self._deferred_note()
            + (f" ({len(self.warnings)} fail alone, unused at start)" if self.warnings else "")
        )
        parts.append(f"entry {self.entry} {self.entry_check}" if self.entry else "no Python entry")
        if self.cmd:
            parts.append(f"cmd {self.cmd} on PATH")
        if self.smoke == "passed":
            parts.append("smoke passed")
        return f"proven: {'; '.join(parts)} ({self.seconds:.1f} s, {self.method})"

    def label(self) -> str:
        """The summary without time and method: the same on every host, so a label keeps
        the image digest reproducible."""
        text = _TIMING.sub("", self.summary())
        if self.status == "proven":
            text = text[: text.rindex(" (")]
        return text

    def _deferred_note(self) -> str:
        counts = {s: sum(1 for d in self.deferred if d.source == s) for s in DEFERRED_WHY}
        notes = [f"{n} {DEFERRED_WHY[s]}" for s, n in counts.items() if n]
        return f" ({'; '.join(notes)})" if notes else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "summary": self.summary(),
            "method": self.method,
            "reason": self.reason,
            "libraries": self.libraries,
            "extensions": self.extensions,
            "deferred": [d.to_dict() for d in self.deferred],
            "skipped": dict(self.skipped),
            "entry": self.entry,
            "entry_check": self.entry_check,
            "entry_note": self.entry_note,
            "cmd": self.cmd,
            "smoke": self.smoke,
            "failures": [f.to_dict() for f in self.failures],
            "seconds": round(self.seconds, 3),
            "checker_runs": self.checker_runs,
            "served": self.served.to_dict() if self.served else None,
            "warnings": [w.to_dict() for w in self.warnings],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Proof:
        """Inverse of ``to_dict`` (the proof cache reads it back)."""

        def failures(key: str) -> tuple[Failure, ...]:
            return tuple(
                Failure(x["check"], x["subject"], x["message"], x.get("package"))
                for x in d.get(key) or []
            )

        return cls(
            status=d["status"],
            method=d.get("method"),
            reason=d.get("reason"),
            libraries=int(d.get("libraries", 0)),
            extensions=int(d.get("extensions", 0)),
            deferred=tuple(Deferred(x["path"], x["needs"], x["source"]) for x in d["deferred"]),
            skipped={str(k): int(v) for k, v in dict(d.get("skipped") or {}).items()},
            entry=d.get("entry"),
            entry_check=d.get("entry_check"),
            entry_note=d.get("entry_note"),
            cmd=d.get("cmd"),
            smoke=d.get("smoke", "not-configured"),
            failures=failures("failures"),
            seconds=float(d.get("seconds", 0.0)),
            checker_runs=int(d.get("checker_runs", 0)),
            served=Served.from_dict(d["served"]) if d.get("served") else None,
            warnings=failures("warnings"),
        )
