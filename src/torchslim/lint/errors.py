"""The lint error type: a Dockerfile or lint config that cannot be read as written."""

from torchslim.errors import TorchslimError


class LintError(TorchslimError):
    """One line: ``file:line: what is wrong; what to do``."""

    exit_code = 2
