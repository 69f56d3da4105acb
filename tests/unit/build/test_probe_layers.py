"""Layers as a runtime merges them: whiteouts, opaque dirs, replaced files."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.images import ImageMaker
from support.trees import PASSWD_ROOT, slim_tree, write

from torchslim.build.probe import probe_image, require_python
from torchslim.errors import BuildError


def test_whiteout_removes_the_shell(tmp_path: Path, make_image: ImageMaker) -> None:
    base = slim_tree(tmp_path / "slim")
    only_sh = tmp_path / "no-sh"
    write(only_sh / "usr/bin/.wh.sh", "")  # an OCI whiteout is an empty file named .wh.NAME
    both = tmp_path / "no-shells"
    write(both / "usr/bin/.wh.sh", "")
    write(both / "usr/bin/.wh.dash", "")

    assert probe_image(make_image([base])).shell == "/bin/sh"
    assert probe_image(make_image([base, only_sh])).shell == "/bin/dash"
    assert probe_image(make_image([base, both])).shell is None


def test_whiteout_of_a_directory_hides_its_subtree(tmp_path: Path, make_image: ImageMaker) -> None:
    base = slim_tree(tmp_path / "slim")
    upper = tmp_path / "upper"
    write(upper / "usr/local/lib/.wh.python3.11", "")
    p = probe_image(make_image([base, upper]))
    assert not p.exists("/usr/local/lib/python3.11/os.py")
    assert p.python_exe is None


def test_whiteout_hides_lower_layers_only(tmp_path: Path, make_image: ImageMaker) -> None:
    """A layer that deletes and re-creates a path in one go keeps its own copy."""
    base = slim_tree(tmp_path / "slim")
    upper = tmp_path / "upper"
    write(upper / "etc/.wh.passwd", "")
    write(upper / "etc/passwd", PASSWD_ROOT + "svc:x:1000:1000::/srv:/bin/false\n")
    p = probe_image(make_image([base, upper]))
    assert p.user_for(1000) == "svc"


def test_opaque_dir_drops_everything_below(tmp_path: Path, make_image: ImageMaker) -> None:
    base = slim_tree(tmp_path / "slim")
    upper = tmp_path / "opaque"
    write(upper / "usr/local/.wh..wh..opq", "")
    write(upper / "usr/local/README", "replaced /usr/local\n")
    p = probe_image(make_image([base, (upper, "zstd")]))
    assert p.exists("/usr/local/README")
    assert p.exists("/usr/local")
    assert not p.exists("/usr/local/bin/python3.11")
    assert p.shell == "/bin/sh"  # outside the opaque dir: untouched
    with pytest.raises(BuildError, match="no usable Python"):
        require_python(p, "base")


def test_upper_passwd_with_uid_1000_is_reused(tmp_path: Path, make_image: ImageMaker) -> None:
    base = slim_tree(tmp_path / "slim")
    upper = tmp_path / "user"
    write(upper / "etc/passwd", PASSWD_ROOT + "worker:x:1000:1000:w:/home/worker:/bin/sh\n")
    p = probe_image(make_image([base, upper]))
    assert p.user_for(1000) == "worker"
    assert p.users[1000] == ("worker", "/home/worker")
    assert probe_image(make_image([base])).user_for(1000) is None


def test_file_replacing_a_directory_hides_its_children(
    tmp_path: Path, make_image: ImageMaker
) -> None:
    base = slim_tree(tmp_path / "slim")
    upper = tmp_path / "upper"
    write(upper / "usr/local/lib/python3.11", "not a directory any more\n")
    p = probe_image(make_image([base, upper]))
    assert p.exists("/usr/local/lib/python3.11")
    assert not p.exists("/usr/local/lib/python3.11/os.py")
    assert p.python_exe is None
