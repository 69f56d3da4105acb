"""The notebook image's command: start Jupyter only with a token, never as an open server.

Shipped into the image's site-packages as ``torchslim_notebook`` (runs on the image's
Python, standard library only). The token comes from ``JUPYTER_TOKEN`` or, when that is
not set, from the file ``JUPYTER_TOKEN_FILE`` names (default ``/run/secrets/jupyter-token``,
where Docker and Kubernetes mount a secret). No token, or an empty one, is refused in one
line on stderr (exit 2). The token reaches Jupyter through the environment, not argv (where
``ps`` would show it); ``--allow-root`` and token or password arguments are refused.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

TOKEN_FILE = "/run/secrets/jupyter-token"
NOTEBOOK_DIR = "/app/notebooks"
PORT = 8888
REFUSAL = (
    "torchslim notebook: refusing to start without a token (an empty one would serve an "
    "unauthenticated Jupyter): set JUPYTER_TOKEN or mount it at JUPYTER_TOKEN_FILE "
    f"(default {TOKEN_FILE})"
)
_FORBIDDEN = ("allow-root", "allow_root", "token", "password", "disable_check_xsrf")


def find_token(environ: Mapping[str, str]) -> str | None:
    """The token: ``JUPYTER_TOKEN`` when set (even empty), else the token file's first
    line; None when there is none or it is blank."""
    value = environ.get("JUPYTER_TOKEN")
    if value is None:
        path = environ.get("JUPYTER_TOKEN_FILE") or TOKEN_FILE
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError):
            return None
        value = lines[0] if lines else ""
    value = value.strip()
    return value or None


def refused_argument(args: Sequence[str]) -> str | None:
    """The first argument that would open the server or run it as root, or None."""
    for arg in args:
        if any(word in arg.lower() for word in _FORBIDDEN):
            return arg
    return None


def jupyter_argv(python: str, args: Sequence[str]) -> list[str]:
    """JupyterLab on every interface, port 8888, serving the notebook folder."""
    return [
        python,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=0.0.0.0",
        f"--ServerApp.port={PORT}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={NOTEBOOK_DIR}",
        *args,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    token = find_token(os.environ)
    if token is None:
        sys.stderr.write(REFUSAL + "\n")
        return 2
    bad = refused_argument(args)
    if bad is not None:
        why = "the token comes from JUPYTER_TOKEN or its file, and Jupyter never runs as root"
        sys.stderr.write(f"torchslim notebook: refusing argument {bad!r}: {why}\n")
        return 2
    if hasattr(os, "getuid") and os.getuid() == 0:
        sys.stderr.write("torchslim notebook: refusing to run as root; run as the image's user\n")
        return 2
    os.environ["JUPYTER_TOKEN"] = token
    os.environ.pop("JUPYTER_TOKEN_FILE", None)
    sys.stdout.flush()
    os.execv(sys.executable, jupyter_argv(sys.executable, args))
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
