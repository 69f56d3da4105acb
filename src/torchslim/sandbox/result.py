"""What a command run in the sandbox did: its status, its output's tail, one-line text."""

from __future__ import annotations

import signal
from dataclasses import dataclass

from torchslim.sandbox import inner as sandboxinit

MAX_LINES, MAX_LINE = 20, 200  # what an error quotes of a command's output


@dataclass(frozen=True)
class SandboxResult:
    """What a command run in the root did; outputs keep their last ``max_output`` bytes."""

    argv: tuple[str, ...]
    returncode: int  # negative: killed by that signal
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool
    method: str

    @property
    def setup_error(self) -> str | None:
        """The sandbox's own one-line error (exit 125-127 with its mark), if it failed."""
        if self.returncode not in (
            sandboxinit.EXIT_SETUP,
            sandboxinit.EXIT_CANNOT_RUN,
            sandboxinit.EXIT_NOT_FOUND,
        ):
            return None
        for line in reversed(self.stderr.splitlines()):
            if line.startswith(sandboxinit.MARK):
                return line[len(sandboxinit.MARK) :]
        return None

    def tail(self, lines: int = 4) -> str:
        """The last non-empty lines of stderr and stdout (at most ``MAX_LINES`` of
        ``MAX_LINE`` characters each), joined with `` | ``."""
        text = [ln.strip() for ln in (self.stdout + "\n" + self.stderr).splitlines()]
        kept = [ln for ln in text if ln][-min(lines, MAX_LINES) :]
        return " | ".join(ln if len(ln) <= MAX_LINE else ln[: MAX_LINE - 1] + "…" for ln in kept)

    def exit_text(self) -> str:
        if self.timed_out:
            return f"timed out after {self.seconds:.0f}s"
        if self.returncode < 0:
            try:
                return f"killed by {signal.Signals(-self.returncode).name}"
            except ValueError:
                return f"killed by signal {-self.returncode}"
        return f"exited {self.returncode}"


def split_status(code: int, stderr: str) -> tuple[int, str]:
    """The command's status and stderr; a signal the init reported (exit 128+N) becomes -N."""
    mark = f"{sandboxinit.MARK}{sandboxinit.SIGNALED}{code - 128}"
    text = stderr.rstrip("\n")
    if code > 128 and text.endswith(mark):
        return -(code - 128), text[: -len(mark)]
    return code, stderr
