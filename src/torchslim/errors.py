"""One exception family. Every message is one line: what is wrong, where, and what to do."""


class TorchslimError(Exception):
    """Base class; the CLI prints ``error: <message>`` and exits with ``exit_code``."""

    exit_code = 1


class ConfigError(TorchslimError):
    """A project file (torchslim.toml, requirements, pip.conf) is missing or malformed."""

    exit_code = 2


class ResolveError(TorchslimError):
    """Requirements or Debian packages do not resolve for the target platform."""


class IntegrityError(TorchslimError):
    """A hash or signature does not match; nothing unverified is kept."""


class NetworkError(TorchslimError):
    """A mirror, index or registry could not be reached."""


class OutputExistsError(TorchslimError):
    """The output path exists and --force was not given."""


class BuildError(TorchslimError):
    """A build step failed for a reason the user can act on."""
