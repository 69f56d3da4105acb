"""The probe on the real Debian base torchslim builds (bookworm, from the Debian archive)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from support.images import ImageMaker

from torchslim.build.probe import probe_image, require_python
from torchslim.cache import BlobStore
from torchslim.debian import DebianSpec, assemble, resolve

pytestmark = pytest.mark.network


@pytest.mark.skipif(
    os.geteuid() != 0 and not shutil.which("unshare"), reason="assemble runs ldconfig -r"
)
def test_real_bookworm_base(tmp_path: Path, make_image: ImageMaker) -> None:
    store = BlobStore(tmp_path / "debs")
    spec = DebianSpec("bookworm", arch="amd64")
    info = assemble(spec, resolve(spec, store), tmp_path / "rootfs", store)

    p = probe_image(make_image([tmp_path / "rootfs"]))

    # The probe, reading only the image's files, agrees with what assemble knows it built.
    assert p.python_exe == info.python_exe == "/usr/bin/python3.11"
    assert p.python_version == "3.11"
    assert p.site_packages == info.site_packages == "/usr/local/lib/python3.11/dist-packages"
    assert p.glibc == info.glibc == "2.36"
    assert p.shell is None
    assert p.user_for(spec.uid) == spec.user
    assert p.users[spec.uid] == (spec.user, spec.home)
    assert p.os_release.get("VERSION_CODENAME") == "bookworm"
    assert p.cuda_libs == {}
    require_python(p, "base", "3.11")
