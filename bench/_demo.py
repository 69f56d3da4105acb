"""A realistic demo image for the benches: real Debian packages, real wheels, part of torch."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.artifacts import CACHE, install_debs, install_wheels, torch_entries, tree, wheels  # noqa: E402
from support.images import Entry, Spec, file, layer, write_archive  # noqa: E402


def demo_archive(dest: Path) -> Path:
    """Uncompressed layers, as classic `docker save` writes them (dive reads only those).

    5 layers: OS packages, dev wheels, torch slice, an app layer that rewrites a model,
    and a cleanup layer that deletes apt lists (the bytes stay in the lower layer)."""
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        os_root = Path(tmp) / "os"
        os_root.mkdir()
        install_debs(["make", "cpp-12", "openssh-server", "libc6-dev"], os_root)
        (os_root / "var/lib/apt/lists").mkdir(parents=True)
        (os_root / "var/lib/apt/lists/deb.debian.org_bookworm_Packages").write_bytes(
            b"P" * 3_000_000
        )
        py_root = Path(tmp) / "py"
        install_wheels(
            wheels(
                [
                    "pytest==8.3.3",
                    "pluggy==1.5.0",
                    "iniconfig==2.0.0",
                    "packaging==24.1",
                    "jupyter-core==5.7.2",
                    "platformdirs==4.3.6",
                    "traitlets==5.14.3",
                ]
            ),
            py_root,
        )
        torch = torch_entries(
            (
                "torch/bin/",
                "torch/include/",
                "torch/lib/libtorch_global_deps",
                "torch/lib/libshm",
                "torch/__init__.py",
            )
        )
        model = bytes(range(256)) * 20_000
        spec = Spec(
            [
                layer(tree(os_root), "none"),
                layer(tree(py_root), "none"),
                layer(torch, "none"),
                layer(
                    [file("app/model.pt", model), file("app/serve.py", b"print('hi')\n")], "none"
                ),
                layer([file("app/model.pt", model[::-1]), Entry("var/lib/apt/.wh.lists")], "none"),
            ],
            history=[
                "apt-get install make cpp-12 openssh-server libc6-dev",
                "pip install pytest jupyter-core",
                "pip install torch (slice)",
                "COPY app /app",
                "COPY model.pt; rm -rf /var/lib/apt/lists",
            ],
        )
        write_archive(dest, spec, ["demo/torch-app:latest"])
    return dest


__all__ = ["CACHE", "demo_archive"]
