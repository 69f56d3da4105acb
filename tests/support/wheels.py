"""Build a small real wheel by hand (no network, no build backend)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(
    directory: Path,
    name: str = "demo",
    version: str = "1.0",
    extra: dict[str, bytes] | None = None,
) -> Path:
    """``demo-1.0-py3-none-any.whl`` with a module, a console script and a data script
    (plus ``extra`` files by their path in the wheel, which win over those)."""
    info = f"{name}-{version}.dist-info"
    files: dict[str, bytes] = {
        f"{name}/__init__.py": b"def main() -> None:\n    print('hi')\n",
        f"{name}/data.txt": b"payload\n",
        f"{name}-{version}.data/scripts/{name}-tool": b"#!python\nprint('tool')\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[console_scripts]\n{name} = {name}:main\n".encode(),
        **(extra or {}),  # an extra file of the same path replaces the default
    }
    record = "\n".join(_record_line(n, d) for n, d in files.items())
    record += f"\n{info}/RECORD,,\n"
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
        zf.writestr(f"{info}/RECORD", record)
    return path
