"""The same example built both ways in one run: the generated Dockerfile with buildah
(`podman build`) and `torchslim build`. Prints image sizes and cold/warm build times.

Both start from nothing cached: torchslim with an empty TORCHSLIM_CACHE, podman with
--no-cache for the cold build. Warm = after touching one app file (service/main.py): the
image changes, so torchslim serves it again (its library loads are cached by layer). No
change = the same project again: torchslim proves nothing again.
The Dockerfile's builder and runtime bases are an OS-only image torchslim built
(`--target os`, with python3.11-venv so the builder can make its venv); pip inside the
build gets the local torch wheel folder and the host CA bundle through build args.

Run:  .venv/bin/python bench/dockerfile_vs_torchslim.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "hello-torch"
ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "tests" / "podman" / "containers.conf")}
CA = "/etc/ssl/certs/ca-certificates.crt"


def run(*args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, env=env or ENV).stdout


def torchslim(project: Path, cache: Path, *extra: str) -> tuple[float, dict]:
    report = project.parent / "report.json"
    start = time.monotonic()
    run(
        sys.executable,
        "-m",
        "torchslim.cli",
        "build",
        str(project),
        "--force",
        "--json",
        str(report),
        *extra,
        env={**ENV, "TORCHSLIM_CACHE": str(cache)},
    )
    return time.monotonic() - start, json.loads(report.read_text())


def podman_build(project: Path, base: str, tag: str, *extra: str) -> float:
    start = time.monotonic()
    run(
        "podman",
        "build",
        "--format",
        "docker",
        "--target",
        "runtime",
        "-t",
        tag,
        *extra,
        "--build-arg",
        f"BUILDER_IMAGE={base}",
        "--build-arg",
        f"RUNTIME_IMAGE={base}",
        "--build-arg",
        "PIP_FIND_LINKS=/wheels",
        "--build-arg",
        f"PIP_CERT={CA}",
        "-v",
        "/opt/wheels:/wheels:ro",
        "-v",
        f"{CA}:{CA}:ro",
        str(project),
    )
    return time.monotonic() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        project = tmp / "hello-torch"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("pylock*.toml"))
        with (project / "torchslim.toml").open("a") as f:
            f.write('apt = ["python3.11-venv"]\n')
        # Setup, not timed: the OS base for the Dockerfile, and the Dockerfile itself.
        torchslim(
            project,
            tmp / "setup-cache",
            "--target",
            "os",
            "--tag",
            "bench-os",
            "--output",
            f"docker-archive:{tmp / 'os.tar'}",
        )
        run("podman", "load", "-i", str(tmp / "os.tar"))
        base = "localhost/hello-torch:bench-os"
        run(sys.executable, "-m", "torchslim.cli", "dockerfile", str(project), "--force")
        (project / "pylock.toml").unlink(missing_ok=True)

        cache = tmp / "cache"
        ts_cold, report = torchslim(project, cache, "--output", f"oci:{tmp / 'ts'}")
        df_cold = podman_build(project, base, "localhost/hello-torch:bench-df", "--no-cache")
        main_py = project / "service" / "main.py"
        main_py.write_text(main_py.read_text() + "\n# touched by bench\n")
        ts_warm, warm_report = torchslim(project, cache, "--output", f"oci:{tmp / 'ts2'}")
        df_warm = podman_build(project, base, "localhost/hello-torch:bench-df")
        ts_same, _ = torchslim(project, cache, "--output", f"oci:{tmp / 'ts3'}")
        df_same = podman_build(project, base, "localhost/hello-torch:bench-df")
        df_size = json.loads(run("podman", "image", "inspect", "localhost/hello-torch:bench-df"))[
            0
        ]["Size"]
        ts_size = report["size"]["uncompressed"]
        run("podman", "rmi", "-f", "localhost/hello-torch:bench-df", base)

        print(f"{'':22} {'Dockerfile+buildah':>19} {'torchslim build':>16} {'ratio ts/df':>12}")
        print(
            f"{'image (uncompressed)':22} {df_size / 1e6:16.1f} MB {ts_size / 1e6:13.1f} MB "
            f"{ts_size / df_size:12.1%}"
        )
        print(f"{'cold build':22} {df_cold:17.1f} s {ts_cold:14.1f} s {ts_cold / df_cold:12.1%}")
        warm = ts_warm / df_warm
        print(f"{'warm (1 app file)':22} {df_warm:17.1f} s {ts_warm:14.1f} s {warm:12.1%}")
        same = ts_same / df_same
        print(f"{'no change':22} {df_same:17.1f} s {ts_same:14.1f} s {same:12.1%}")
        proof = warm_report["proof"]
        print(
            f"warm rebuild's proof: {proof['seconds']:.1f} s ({proof['summary'][:100]}…); "
            "target: warm <= 30 % of the Dockerfile's, served proof included"
        )


if __name__ == "__main__":
    main()
