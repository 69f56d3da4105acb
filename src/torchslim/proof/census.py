"""What the service loads while it is served: every file its processes open (Python
sources and bytecode among them) or map (shared libraries).

CPython's import-time report sees only what goes through the ``import`` statement, so it
misses ``importlib.import_module``: uvicorn's event loop and protocols, gunicorn's
workers, transformers' lazy modules. Instead a ``sitecustomize`` put first on
``PYTHONPATH`` adds an audit hook (PEP 578) to every Python process of the service: each
``open`` of a ``.py`` or ``.pyc`` is written, one line each, to a FIFO in a folder bound
read-only into the proof (and each file whose code starts to run: ``exec`` events, and
the main script), which a thread here drains into memory. The import system opens
each module it loads from source or bytecode with ``io.open_code``, which raises that
event whatever asked for the import; so do ``linecache`` and ``inspect`` when they read a
source, and ``open()`` for data files. Shared libraries (``dlopen``, DT_NEEDED) raise no
event: ``/proc/self/maps`` is read at most every 0.2 s while the process imports and
opens, and the files mapped there are written too (eStargz's prefetch wants them; nothing
keyed on the census removes them). A ``sitecustomize`` of the image runs after ours, as
it would have without it.

Nothing is added to the image, and the sandbox gets nothing of the host it can write to:
the folder is a read-only bind under the proof's own ``/tmp``; a FIFO's writes reach only
its reader.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from torchslim.sandbox.run import Bind

INSIDE = "/tmp/.torchslim-census"
OPENED = "opened"
RAN = "ran "  # a line of code that ran: "ran /app/service/main.py"

SITECUSTOMIZE = f'''\
"""torchslim's proof: record the Python files this process opens (proof.census)."""
import os as _os
import sys as _sys
import time as _time


_HERE = _os.path.dirname(_os.path.abspath(__file__))


def _record():
    try:  # the FIFO torchslim reads (each write of a line is atomic: under PIPE_BUF)
        fd = _os.open(_os.path.join(_HERE, "{OPENED}"), _os.O_WRONLY | _os.O_CLOEXEC)
    except OSError:
        return
    seen = set()

    def write(line):
        try:
            _os.write(fd, (line + "\\n").encode("utf-8", "surrogateescape"))
        except OSError:
            pass

    def absolute(path):
        if path.startswith("/"):
            return path
        try:  # found through "" on sys.path (python -c, a script's folder)
            return _os.path.abspath(path)
        except OSError:
            return None

    scanned = [0.0]

    def mapped():
        """Files mapped into this process (shared libraries: what dlopen and DT_NEEDED
        load, which no audit event names), read at most every 0.2 s."""
        now = _time.monotonic()
        if now - scanned[0] < 0.2:
            return
        scanned[0] = now
        try:
            maps = _os.open("/proc/self/maps", _os.O_RDONLY | _os.O_CLOEXEC)
        except OSError:
            return
        try:
            data = b"".join(iter(lambda: _os.read(maps, 1 << 16), b""))
        except OSError:
            data = b""
        finally:
            _os.close(maps)
        for line in data.splitlines():
            fields = line.split(None, 5)
            if len(fields) == 6 and fields[5].startswith(b"/"):
                path = fields[5].decode("utf-8", "surrogateescape")
                if path not in seen:
                    seen.add(path)
                    write(path)

    def hook(event, args):
        if event in ("import", "open"):
            mapped()
        if event == "exec" and args:  # a module's or runpy's code starts to run
            name = getattr(args[0], "co_filename", None)
            if isinstance(name, str) and name.endswith(".py") and ("!" + name) not in seen:
                seen.add("!" + name)
                name = absolute(name)
                if name:
                    write("{RAN}" + name)
            return
        if event != "open" or not args:
            return
        path = args[0]
        if not isinstance(path, str) or path in seen:
            return
        seen.add(path)
        path = absolute(path)
        if path:
            write(path)

    _sys.addaudithook(hook)
    mapped()
    script = _sys.argv[0] if getattr(_sys, "argv", None) else ""
    if script.endswith(".py") and _os.path.isfile(script):  # python3 app.py: runs unseen
        write("{RAN}" + _os.path.abspath(script))


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


MAX_RECORDED = 32 << 20  # bytes of paths kept: a service cannot make the host hold more


class Census:
    """The folder bound read-only at ``INSIDE`` for one served proof, and the reader of its
    FIFO ``opened``: what the service writes there goes to this process's memory (at most
    ``MAX_RECORDED``), never to the host's disk."""

    def __init__(self, host: Path) -> None:
        self.host = host
        fifo = host / OPENED
        os.mkfifo(fifo)
        fifo.chmod(0o666)  # the service's user is "other" to a host folder
        # A reader that exists before any writer (their open never blocks), and a writer of
        # our own, so the reader sees end-of-file only once ``close`` drops it and every
        # process of the service has exited.
        self._read = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.set_blocking(self._read, True)
        self._hold: int | None = os.open(fifo, os.O_WRONLY | os.O_CLOEXEC)
        self._data = bytearray()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while chunk := os.read(self._read, 1 << 16):
            if len(self._data) < MAX_RECORDED:
                self._data += chunk[: MAX_RECORDED - len(self._data)]

    def bind(self) -> Bind:
        return Bind(self.host, INSIDE, writable=False)

    def env(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` with our folder first on PYTHONPATH."""
        path = env.get("PYTHONPATH")
        return {**env, "PYTHONPATH": INSIDE + (":" + path if path else "")}

    def close(self) -> None:
        if self._hold is None:
            return
        os.close(self._hold)
        self._hold = None
        self._thread.join(timeout=5.0)  # the service's processes are gone by now
        os.close(self._read)

    def read(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The files opened, and the files whose code ran, each once, in the order first
        seen (every process together); whole lines only (the last may be cut at
        ``MAX_RECORDED``)."""
        self.close()
        text = bytes(self._data).decode("utf-8", "surrogateescape")
        lines = text.splitlines()[: text.count("\n")]
        opened = dict.fromkeys(line for line in lines if line.startswith("/"))
        ran = dict.fromkeys(line[len(RAN) :] for line in lines if line.startswith(RAN + "/"))
        return tuple(opened), tuple(ran)


def ran_code_under(ran: tuple[str, ...], folder: str) -> bool:
    """Whether code of a Python file under ``folder`` (the app's) ran: a service whose
    health path and requests answer without running the app's code (Streamlit runs a page
    only for a browser session, though it opens the file at start) leaves the census blind
    to what that code needs."""
    prefix = folder.rstrip("/") + "/"
    return any(path.startswith(prefix) for path in ran)


@contextlib.contextmanager
def census_folder() -> Iterator[Census]:
    """A fresh folder holding the ``sitecustomize`` and the FIFO, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="torchslim-census-") as tmp:
        host = Path(tmp)
        (host / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
        host.chmod(0o755)
        census = Census(host)
        try:
            yield census
        finally:
            census.close()
