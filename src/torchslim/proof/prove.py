"""Prove an image by running it: in its own root filesystem, with its own interpreter.

``prove_rootfs`` checks, before any output is written:

1. for a service (a port), **the verdict**: the image's own command starts, listens on
   the port (not only on loopback), answers its health path and the smoke requests,
   and stops on SIGTERM (``serve``);
2. the app's entry module imports (``entry.entry_from_cmd`` has the rules): for a
   script or ``python -m``, what its top level imports is imported, not only found;
3. ``cmd``'s executable is on the image's PATH (``rootpath``; no sandbox needed);
4. the ``smoke`` command, when configured, exits 0;
5. every kept ELF shared object and extension module loads (``checker``: torch first,
   then extension modules by import, then libraries with ``ctypes.CDLL``). A library
   that needs only what the host provides (the NVIDIA driver's ``libcuda.so.1``;
   RDMA/MPI/UCX for transport plugins) is *deferred*, not failed. These loads are
   hints: when 1-4 pass, a file that fails on its own (scipy's
   ``_matfuncs_sqrtm_triu``, matplotlib's Tk backend) is a warning, not a refusal;
   the build still undoes slimming that made a file fail.

It runs in ``sandbox.run_in_root`` (no daemon), under qemu-user for a foreign
architecture. Where neither can run, the result is *not proven* with the reason:
never a silent pass. A crash (segfault) while loading names that file, and the
checker resumes after it (``proofrun``).
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from torchslim.oci.unpack import resolve_in_root
from torchslim.proof.checkrun import CHECKER, CheckerOutcome, loads, run_checker
from torchslim.proof.entry import EntryPoint, entry_from_cmd
from torchslim.proof.result import Deferred, Failure, Proof, Status
from torchslim.proof.rootpath import cmd_problem
from torchslim.proof.serve import Served, ServeSpec, serve
from torchslim.sandbox.run import (
    DEFAULT_PATH,
    Emulation,
    SandboxError,
    emulation_for,
    run_in_root,
    sandbox_available,
    sandbox_method,
)

__all__ = [
    "CHECKER",
    "Deferred",
    "EntryPoint",
    "Failure",
    "Proof",
    "entry_from_cmd",
    "prove_rootfs",
]


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
    init: Sequence[str] = (),
    check_paths: list[str] | None = None,
    arch: str,
    timeout: float = 300.0,
    smoke_timeout: float = 120.0,
    service: ServeSpec | None = None,
    progress: Callable[[float], None] | None = None,
) -> Proof:
    """Prove the image whose files are in ``root`` (see the module docstring).

    ``env`` is the image's environment, ``user`` its numeric uid:gid, ``workdir`` its
    working directory, ``arch`` its OCI architecture (``amd64``, ``linux/arm64``).
    ``check_paths`` (image paths) limits the loading to those files; None loads all.
    ``init``: the image's entrypoint before ``cmd`` (``tini --``), for the served run.
    """
    start = time.monotonic()
    if not os.access(root, os.R_OK | os.X_OK) or not root.is_dir():
        return Proof("not-proven", sandbox_method(), f"cannot read the image's root {root}")
    entry = entry_from_cmd(cmd, workdir, env)
    problem = cmd_problem(root, cmd[0], env.get("PATH", DEFAULT_PATH), workdir) if cmd else None
    failures = [Failure("cmd", cmd[0], problem)] if problem else []
    found = resolve_in_root(root, workdir or "/")
    if found is None or not found.is_dir():  # nothing runs without it
        failures.append(Failure("workdir", workdir, "the working directory is not in the image"))
        return Proof("failed", sandbox_method(), failures=tuple(failures))
    common: dict[str, Any] = {
        "cmd": cmd[0] if cmd and not problem else None,
        "entry_note": entry.note,
        "smoke": "not-run" if smoke else "not-configured",
    }
    emulation = emulation_for(arch)
    method = sandbox_method()
    reason = sandbox_available() or (emulation if isinstance(emulation, str) else None)
    served: Served | None = None
    if reason is None and not isinstance(emulation, str):
        method = f"{method}+{emulation.method}" if emulation else method
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:  # alongside the checker
                smoking = (
                    pool.submit(_smoke, root, smoke, env, user, workdir, emulation, smoke_timeout)
                    if smoke
                    else None
                )
                serving = (
                    pool.submit(
                        serve,
                        root,
                        [*init, *cmd],
                        service,
                        env=env,
                        user=user,
                        workdir=workdir,
                        emulation=emulation,
                        progress=progress,
                    )  # fmt: skip
                    if service is not None and cmd and not problem
                    else None
                )
                # Nothing left for the checker when the loads are known and the service
                # itself imports its entry: the served verdict alone runs.
                skip = serving is not None and check_paths == []
                outcome = (
                    CheckerOutcome(done=True, entry_done=entry.kind != "none")
                    if skip
                    else run_checker(
                        root,
                        python_exe,
                        env=env,
                        user=user,
                        workdir=workdir,
                        entry=entry,
                        check_paths=check_paths,
                        emulation=emulation,
                        timeout=timeout,
                    )  # fmt: skip
                )
                smoke_failure = smoking.result() if smoking else None
                served = serving.result() if serving else None
        except SandboxError as exc:
            reason = str(exc)
    if reason is not None:
        status: Status = "failed" if failures else "not-proven"
        return Proof(status, method, reason, failures=tuple(failures),
                     seconds=time.monotonic() - start, **common)  # fmt: skip
    libraries, extensions, deferred, load_failures = loads(outcome)
    failures += outcome.failures
    if served is not None and not served.ok:
        failures.insert(0, Failure("serve", served.command, served.failure or ""))
    if outcome.entry_error:
        entry_failure = Failure("entry", entry.describe(), outcome.entry_error)
        # A served service that answered imported its app: the checker's context differs.
        failures += [] if served is not None and served.ok else [entry_failure]
    if smoke:
        common["smoke"] = "failed" if smoke_failure else "passed"
        failures += [smoke_failure] if smoke_failure else []
    # Loads decide only when nothing else runs the service; else they are hints.
    warnings: list[Failure] = []
    if failures or _nothing_runs(entry, served):
        failures += load_failures
    else:
        warnings = load_failures
    return Proof(
        "failed" if failures else "proven",
        method,
        libraries=libraries,
        extensions=extensions,
        deferred=tuple(deferred),
        skipped=dict(outcome.skipped),
        entry=entry.describe() if outcome.entry_done else None,
        entry_check=entry.proven_as() if outcome.entry_done else None,
        failures=tuple(failures),
        seconds=time.monotonic() - start,
        checker_runs=outcome.runs,
        served=served,
        warnings=tuple(warnings),
        **common,
    )


def _nothing_runs(entry: EntryPoint, served: Served | None) -> bool:
    """No served verdict and no Python entry imported: the loads are all there is."""
    return served is None and entry.kind == "none"
