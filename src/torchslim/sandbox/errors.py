"""The sandbox's own error: it could not start (not the command inside it)."""

from __future__ import annotations

from torchslim.errors import BuildError


class SandboxError(BuildError):
    """The sandbox itself could not start (not the command inside it)."""
