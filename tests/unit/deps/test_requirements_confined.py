"""Paths a requirements file names stay in the build context; ``${VAR}`` is never shown.

Every case writes a real project under ``tmp_path`` with a secret file next to it, and
checks the one-line error: it names ``file:line`` and the path as written, and holds
nothing of the outside file (which is never read) nor of any expanded variable.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from torchslim.confined import build_context
from torchslim.deps.requirements import MAX_LINE, local_path, read_requirements
from torchslim.errors import ConfigError

SECRET = "root:$6$outside-secret-hash:19000:0:99999:7:::"
PASSWORD = "hunter2-registry-pw"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """``tmp/proj`` (the context) beside ``tmp/outside/shadow`` (what must stay unread)."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "shadow").write_text(SECRET + "\n")
    (tmp_path / "outside" / "pkg").mkdir()
    root = tmp_path / "proj"
    root.mkdir()
    return root


def refused(root: Path, text: str, context: Path | None = None) -> str:
    """The one-line error ``requirements.txt`` holding ``text`` gets."""
    (root / "requirements.txt").write_text(text)
    with pytest.raises(ConfigError) as err:
        read_requirements(root / "requirements.txt", context or root)
    message = str(err.value)
    assert "\n" not in message
    assert "outside-secret" not in message and PASSWORD not in message
    return message


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("-r ../outside/shadow", "requirements file '../outside/shadow' is outside"),
        ("--requirement=../outside/shadow", "'../outside/shadow' is outside"),
        ("-r{outside}/shadow", "is outside the build context"),
        ("-c ../outside/shadow", "constraints file '../outside/shadow' is outside"),
        ("-e ../outside/pkg", "editable path '../outside/pkg' is outside"),
        ("-e file:../outside/pkg", "editable path '../outside/pkg' is outside"),
        ("--find-links ../outside", "find-links folder '../outside' is outside"),
        ("-f file://{outside}", "find-links folder"),
        ("--index-url file://{outside}", "index folder"),
        ("../outside/pkg", "local path '../outside/pkg' is outside"),
        ("{outside}/pkg", "local path"),
        ("file://{outside}/pkg", "local path"),
        ("file:../outside/pkg", "local path '../outside/pkg'"),
        ("pkg @ file://{outside}/pkg", "local path"),
        ("pkg[extra] @ file://localhost{outside}/pkg ; python_version > '3'", "local path"),
        ("./x/../../outside/pkg[gpu]", "local path './x/../../outside/pkg'"),
        ("pkg @ file://otherhost/share/pkg", "local path '//otherhost/share/pkg'"),
    ],
)
def test_paths_outside_the_context_are_refused_naming_file_line(
    project: Path, line: str, shown: str
) -> None:
    outside = project.parent / "outside"
    message = refused(project, f"numpy\n{line.format(outside=outside)}\n")
    assert message.startswith(f"{project / 'requirements.txt'}:2: "), message
    assert shown in message, message


def test_absolute_etc_shadow_is_never_read(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real = Path.read_bytes

    def spy(self: Path) -> bytes:
        opened.append(str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", spy)
    message = refused(project, "-r /etc/shadow\n")
    assert "requirements.txt:1: requirements file '/etc/shadow' is outside" in message
    assert opened == [str(project / "requirements.txt")]


def test_nested_include_climbing_out_names_the_nested_file(project: Path) -> None:
    (project / "reqs").mkdir()
    (project / "reqs" / "base.txt").write_text("# base\n-r ../../outside/shadow\n")
    message = refused(project, "-r reqs/base.txt\n")
    assert message.startswith(f"{project / 'reqs' / 'base.txt'}:2: "), message


def test_symlink_out_is_refused(project: Path) -> None:
    (project / "common.txt").symlink_to(project.parent / "outside" / "shadow")
    message = refused(project, "-r common.txt\n")
    assert "'common.txt' is a symlink that leads outside the build context" in message


def test_top_file_symlinked_out_is_refused(project: Path) -> None:
    (project / "requirements.txt").symlink_to(project.parent / "outside" / "shadow")
    with pytest.raises(ConfigError, match="is a symlink that leads outside") as err:
        read_requirements(project / "requirements.txt", project)
    assert "outside-secret" not in str(err.value)


def test_symlink_loop_is_one_line(project: Path) -> None:
    (project / "loop.txt").symlink_to(project / "loop.txt")
    assert "'loop.txt' cannot be looked up" in refused(project, "-r loop.txt\n")


def test_monorepo_git_work_tree_is_the_context(project: Path) -> None:
    """A monorepo's service may include the repository's shared files, and no further."""
    repo = project.parent
    (repo / ".git").mkdir()
    (repo / "shared").mkdir()
    (repo / "shared" / "base.txt").write_text("numpy\n-f ../wheels\n")
    (repo / "wheels").mkdir()
    svc = repo / "svc"
    svc.mkdir()
    (svc / "requirements.txt").write_text("-r ../shared/base.txt\n./lib\n")
    assert build_context(svc) == repo.resolve()
    parsed = read_requirements(svc / "requirements.txt", build_context(svc))
    assert [r.text for r in parsed.requirements] == ["numpy", "./lib"]
    assert parsed.find_links == (str((repo / "wheels").resolve()),)
    (svc / "requirements.txt").write_text("-r ../../x.txt\n")
    with pytest.raises(ConfigError, match=r"requirements.txt:1: requirements file '\.\./\.\./x"):
        read_requirements(svc / "requirements.txt", build_context(svc))


def test_paths_inside_the_context_are_followed(project: Path) -> None:
    (project / "lib").mkdir()
    (project / "wheels").mkdir()
    (project / "c.txt").write_text("numpy<3\n")
    (project / "requirements.txt").write_text(
        f"-c c.txt\n-f wheels\n-e ./lib\n-e lib\n.\n./lib[gpu]\nlib @ file://{project}/lib\nnumpy\n"
    )
    parsed = read_requirements(project / "requirements.txt", project)
    assert [r.text for r in parsed.requirements][-1] == "numpy"
    assert parsed.constraint_files == ((project / "c.txt").resolve(),)


def test_env_var_credentials_are_expanded_but_never_shown(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRY_PASSWORD", PASSWORD)
    url = "https://ci:${REGISTRY_PASSWORD}@pypi.corp.example/simple"
    (project / "requirements.txt").write_text(f"--index-url {url}\nnumpy\n")
    parsed = read_requirements(project / "requirements.txt", project)
    assert parsed.index_url == url.replace("${REGISTRY_PASSWORD}", PASSWORD)  # as pip does
    for bad in [
        "torch==${REGISTRY_PASSWORD}!!",  # invalid once expanded
        "pkg @ https://ci:${REGISTRY_PASSWORD}@h.example/x.whl ; bad marker ===",
        "-r ../outside/${REGISTRY_PASSWORD}",  # a path built from it
        "-e ${REGISTRY_PASSWORD}/../../../x",
        "-e git+https://ci:${REGISTRY_PASSWORD}@git.example/x.git",
        "--index-url 'https://ci:${REGISTRY_PASSWORD}@h.example/simple",  # no closing quote
        "pkg @ file:///tmp/${REGISTRY_PASSWORD}",
    ]:
        message = refused(project, f"numpy\n{bad}\n")
        assert "requirements.txt:2: " in message, message
        assert "${REGISTRY_PASSWORD}" in message or "***" in message, message


def test_requirement_lines_keep_the_text_as_written(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``torchslim deps`` lists is the line as written: no expansion to print."""
    monkeypatch.setenv("REGISTRY_PASSWORD", PASSWORD)
    line = "pkg @ https://ci:${REGISTRY_PASSWORD}@h.example/pkg-1-py3-none-any.whl"
    (project / "requirements.txt").write_text(line + "\n")
    parsed = read_requirements(project / "requirements.txt", project)
    assert [r.text for r in parsed.requirements] == [line]


def test_long_line_is_refused_fast(project: Path) -> None:
    started = time.monotonic()
    message = refused(project, "numpy\n" + " " * (MAX_LINE + 1) + "x\n")
    assert "requirements.txt:2: line is longer than 64 KiB" in message
    # a regex that backtracked on blanks took minutes here; a long line below the bound
    (project / "requirements.txt").write_text("numpy" + " " * (MAX_LINE - 10) + "\n")
    read_requirements(project / "requirements.txt", project)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("numpy>=1", None),
        ("https://h.example/x.whl", None),
        ("pkg @ https://h.example/x.whl", None),
        ("./pkg[a,b] ; python_version > '3'", "./pkg"),
        ("file:///srv/pkg", "/srv/pkg"),
        ("FILE:rel/pkg", "rel/pkg"),
        ("pkg @ file:///srv/a%20b", "/srv/a b"),
        ("~/pkg", "~/pkg"),
    ],
)
def test_local_path_of_a_requirement(text: str, path: str | None) -> None:
    assert local_path(text) == path
