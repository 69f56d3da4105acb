"""Paths inside a root directory: symlinks resolve inside it; cmd[0] is found on its PATH."""

from __future__ import annotations

import os
from pathlib import Path

from torchslim.oci.unpack import resolve_in_root
from torchslim.proof.rootpath import cmd_problem, which_in_root

PATH = "/usr/local/bin:/usr/bin:/bin"


def _exe(path: Path, text: str = "\x7fELF") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    _exe(root / "usr/bin/python3.11")
    os.symlink("python3.11", root / "usr/bin/python3")
    os.symlink("usr/bin", root / "bin")  # merged /usr, as Debian has it
    return root


def test_absolute_links_resolve_inside_the_root_not_on_the_host(tmp_path: Path) -> None:
    root = _root(tmp_path)
    os.symlink("/usr/bin/python3", root / "usr/bin/py")
    os.symlink("/etc/passwd", root / "usr/bin/leak")  # the host has it; the root does not
    assert resolve_in_root(root, "/bin/py") == root / "usr/bin/python3.11"
    assert resolve_in_root(root, "/usr/bin/leak") is None
    os.symlink("../../../../../../usr/bin/python3.11", root / "usr/bin/up")
    assert resolve_in_root(root, "/usr/bin/up") == root / "usr/bin/python3.11"


def test_link_loops_end(tmp_path: Path) -> None:
    root = _root(tmp_path)
    os.symlink("b", root / "usr/bin/a")
    os.symlink("a", root / "usr/bin/b")
    assert resolve_in_root(root, "/usr/bin/a") is None


def test_which_follows_path_order_and_needs_the_exec_bit(tmp_path: Path) -> None:
    root = _root(tmp_path)
    assert which_in_root(root, "python3", PATH) == "/usr/bin/python3"
    (root / "usr/local/bin").mkdir(parents=True)
    (root / "usr/local/bin/python3").write_text("not executable")
    assert which_in_root(root, "python3", PATH) == "/usr/bin/python3"
    assert which_in_root(root, "./run.sh", PATH, "/app") is None
    _exe(root / "app/run.sh")
    assert which_in_root(root, "./run.sh", PATH, "/app") == "/app/run.sh"


def test_missing_python_names_what_the_image_has(tmp_path: Path) -> None:
    root = _root(tmp_path)
    assert cmd_problem(root, "python3", PATH, "/app") is None
    assert cmd_problem(root, "python", PATH, "/app") == (
        "cmd[0] 'python' is not on the image's PATH (/usr/local/bin:/usr/bin:/bin); "
        "the image has python3, python3.11"
    )
    assert cmd_problem(root, "/opt/venv/bin/python", PATH, "/app") == (
        "cmd[0] '/opt/venv/bin/python' does not exist in the image; the image has python3, "
        "python3.11"
    )
    assert cmd_problem(root, "/opt/venv/bin/python3", PATH, "/app") == (
        "cmd[0] '/opt/venv/bin/python3' does not exist in the image; the image has it on PATH "
        "as /usr/bin/python3: use 'python3'"
    )


def test_a_script_whose_interpreter_is_missing(tmp_path: Path) -> None:
    root = _root(tmp_path)
    _exe(root / "usr/bin/uvicorn", "#!/usr/bin/python3\nimport uvicorn\n")
    assert cmd_problem(root, "uvicorn", PATH, "/") is None
    _exe(root / "usr/bin/serve", "#!/opt/conda/bin/python\n")
    problem = cmd_problem(root, "serve", PATH, "/")
    assert problem == (
        "cmd[0] 'serve' (/usr/bin/serve) needs /opt/conda/bin/python (#!), which is missing"
    )
    _exe(root / "usr/bin/envy", "#!/usr/bin/env python3\n")
    problem = cmd_problem(root, "envy", PATH, "/")
    assert problem is not None and "needs /usr/bin/env" in problem
