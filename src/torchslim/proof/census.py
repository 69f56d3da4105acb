"""What the service loads while it is served: every Python source and bytecode file its
processes open.

CPython's import-time report sees only what goes through the ``import`` statement, so it
misses ``importlib.import_module``: uvicorn's event loop and protocols, gunicorn's
workers, transformers' lazy modules. Instead a ``sitecustomize`` put first on
``PYTHONPATH`` adds an audit hook (PEP 578) to every Python process of the service: each
``open`` of a ``.py`` or ``.pyc`` is appended to a file in a folder bound in for the
proof. The import system opens each module it loads from source or bytecode with
``io.open_code``, which raises that event whatever asked for the import; so do
``linecache`` and ``inspect`` when they read a source. Extension modules (``dlopen``)
are not seen: nothing keyed on the census removes them. A ``sitecustomize`` of the image
runs after ours, as it would have without it.

Nothing is added to the image: the folder is a bind under the proof's own ``/tmp``.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from torchslim.sandbox.run import Bind

INSIDE = "/tmp/.torchslim-census"
OPENED = "opened"

SITECUSTOMIZE = f'''\
"""torchslim's proof: record the Python files this process opens (proof.census)."""
import os as _os
import sys as _sys


_HERE = _os.path.dirname(_os.path.abspath(__file__))


def _record():
    flags = _os.O_WRONLY | _os.O_APPEND | _os.O_CREAT | _os.O_CLOEXEC
    try:
        fd = _os.open(_os.path.join(_HERE, "{OPENED}"), flags, 0o666)
    except OSError:
        return
    seen = set()

    def hook(event, args):
        if event != "open" or not args:
            return
        path = args[0]
        if not isinstance(path, str) or path in seen or not path.endswith((".py", ".pyc")):
            return
        seen.add(path)
        try:
            _os.write(fd, (path + "\\n").encode("utf-8", "surrogateescape"))
        except OSError:
            pass

    _sys.addaudithook(hook)


def _chain():
    """The image's own sitecustomize, if it has one: ours only shadows it."""
    from importlib.machinery import PathFinder
    from importlib.util import module_from_spec

    path = [p for p in _sys.path if _os.path.abspath(p or ".") != _HERE]
    spec = PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = module_from_spec(spec)
    _sys.modules["sitecustomize"] = module  # what the import of ours then hands back
    spec.loader.exec_module(module)


_record()
_chain()
'''


@dataclass(frozen=True)
class Census:
    """The folder bound at ``INSIDE`` for one served proof."""

    host: Path

    def bind(self) -> Bind:
        # Writable: the service's user appends to ``opened``.
        return Bind(self.host, INSIDE, writable=True)

    def env(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` with our folder first on PYTHONPATH."""
        path = env.get("PYTHONPATH")
        return {**env, "PYTHONPATH": INSIDE + (":" + path if path else "")}

    def opened(self) -> tuple[str, ...]:
        """The files opened, each once, in the order first seen (every process together)."""
        try:
            text = (self.host / OPENED).read_bytes().decode("utf-8", "surrogateescape")
        except OSError:
            return ()
        return tuple(dict.fromkeys(line for line in text.splitlines() if line.startswith("/")))


@contextlib.contextmanager
def census_folder() -> Iterator[Census]:
    """A fresh folder holding the ``sitecustomize``, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="torchslim-census-") as tmp:
        host = Path(tmp)
        (host / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
        host.chmod(0o755)
        yield Census(host)
