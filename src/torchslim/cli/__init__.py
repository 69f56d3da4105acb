"""Thin click commands; each calls one function and prints its result.

``torchslim.cli:main`` is the console script; the command modules register on it.
"""

from torchslim.cli import build, generate, images  # noqa: F401 - registers the commands
from torchslim.cli.app import main

__all__ = ["main"]
