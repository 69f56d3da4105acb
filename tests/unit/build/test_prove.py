"""The prove step's own pieces (the proof itself is tested in tests/unit/runtime)."""

from __future__ import annotations

from pathlib import Path

from torchslim.build.prove import _with_packages, proof_from_dict
from torchslim.runtime.proofresult import Failure, Proof

SITE = "usr/local/lib/python3.11/dist-packages"


def test_failing_files_are_named_with_their_package(tmp_path: Path) -> None:
    """A library missing upstream is reported with the distribution that needs it."""
    site = tmp_path / SITE
    (site / "cv2").mkdir(parents=True)
    (site / "cv2" / "cv2.abi3.so").write_bytes(b"\x7fELF")
    (site / "opencv_python.libs").mkdir()
    (site / "opencv_python.libs" / "libQt5Core-39545cc7.so.5.15.0").write_bytes(b"\x7fELF")
    dist = site / "opencv_python-4.8.1.78.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: opencv-python\nVersion: 4.8.1.78\n"
    )
    (dist / "RECORD").write_text(
        "cv2/cv2.abi3.so,sha256=x,4\nopencv_python.libs/libQt5Core-39545cc7.so.5.15.0,sha256=y,4\n"
    )
    gl = "ImportError: libGL.so.1: cannot open shared object file: No such file or directory"
    failures = (
        Failure("extension", f"/{SITE}/cv2/cv2.abi3.so", gl),
        Failure("library", f"/{SITE}/opencv_python.libs/libQt5Core-39545cc7.so.5.15.0", "x"),
        Failure("library", "/usr/lib/x86_64-linux-gnu/libfoo.so.1", "y"),
        Failure("cmd", "gunicorn", "not on PATH"),
    )
    named = _with_packages(failures, tmp_path)
    assert [f.package for f in named] == ["opencv-python 4.8.1.78"] * 2 + [None, None]
    assert named[0].line() == f"extension /{SITE}/cv2/cv2.abi3.so (opencv-python 4.8.1.78): {gl}"
    back = proof_from_dict(Proof("failed", "userns+chroot", failures=named).to_dict())
    assert back.failures == named
