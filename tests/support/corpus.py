"""The project corpus (tests/projects): copy a project, build it, look inside what was built.

Building and podman live in tests/e2e/test_projects.py; these helpers run no container.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from torchslim.oci.transport import open_image

PROJECTS = Path(__file__).resolve().parents[1] / "projects"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

Rgb = tuple[int, int, int]


def copy_project(name: str, dest: Path) -> Path:
    """A copy of ``tests/projects/<name>`` at ``dest`` (without bytecode or an old lock)."""
    shutil.copytree(
        PROJECTS / name, dest, ignore=shutil.ignore_patterns("__pycache__", "pylock.toml")
    )
    return dest


def torchslim(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """``torchslim ARGS`` from this checkout's source, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "torchslim.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


@dataclass(frozen=True)
class Built:
    """A project built to a docker-archive, with its JSON report and the build's wall time."""

    name: str
    project: Path
    archive: Path
    report: dict[str, Any]
    seconds: float

    def layer(self, name: str) -> dict[str, Any]:
        return next(layer for layer in self.report["layers"] if layer["name"] == name)

    def timing(self) -> dict[str, object]:
        """What the corpus run records per project: build time, size, proof time."""
        return {
            "build_s": round(self.seconds, 1),
            "compressed": self.report["size"]["compressed"],
            "uncompressed": self.report["size"]["uncompressed"],
            "proof_s": self.report["proof"]["seconds"],
            "built_layers": [x["name"] for x in self.report["layers"] if not x["cached"]],
        }


def build_project(project: Path, archive: Path, *extra: str) -> Built:
    """``torchslim build PROJECT --output docker-archive:ARCHIVE --json …``; must succeed."""
    report = archive.with_suffix(".json")
    start = time.monotonic()
    proc = torchslim(
        "build", str(project), "--output", f"docker-archive:{archive}", "--json", str(report),
        *extra,
    )  # fmt: skip
    seconds = time.monotonic() - start
    assert proc.returncode == 0, f"build of {project.name} failed:\n{proc.stderr[-6000:]}"
    return Built(project.name, project, archive, json.loads(report.read_text()), seconds)


def failed_build(project: Path, tmp_path: Path, *extra: str) -> str:
    """Build ``project``; it must fail in one error line and write nothing. The line."""
    out = tmp_path / "bad.tar"
    proc = torchslim("build", str(project), "--output", f"docker-archive:{out}", *extra)
    assert proc.returncode == 1, proc.stderr
    # the project's own traceback may be quoted in the line; torchslim's never shows
    assert not any(line.startswith("Traceback") for line in proc.stderr.splitlines())
    lines = error_lines(proc)
    assert len(lines) == 1, proc.stderr
    assert not out.exists()
    return lines[0]


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The ``error:`` lines a failed command printed."""
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def _tar_of(data: bytes) -> tarfile.TarFile:
    """A layer blob as a tar (gzip or zstd compressed)."""
    if data[:4] == ZSTD_MAGIC:
        data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:*")


def layer_files(archive: Path, digest: str) -> set[str]:
    """Regular files (tar names) of the layer ``digest`` in a docker-archive."""
    image = open_image(f"docker-archive:{archive}")
    layer = next(x for x in image.layers() if x.digest == digest)
    with image.open_layer(layer) as blob, _tar_of(blob.read()) as tar:
        return {m.name for m in tar.getmembers() if m.isfile()}


def png(width: int, height: int, pixel: Callable[[int, int], Rgb]) -> bytes:
    """An 8-bit RGB PNG (no filter) whose pixel at (x, y) is ``pixel(x, y)``."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    raw = b"".join(
        b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def halves(width: int, height: int, left: Rgb, right: Rgb) -> bytes:
    """A PNG whose left half is ``left`` and right half ``right``."""
    return png(width, height, lambda x, _y: left if x < width // 2 else right)
