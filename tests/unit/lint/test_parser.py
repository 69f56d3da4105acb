"""Parser edge cases and the one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchslim.errors import TorchslimError
from torchslim.lint import LintError, lint_paths, parse_dockerfile, read_dockerfile
from torchslim.lint.shell import run_commands

CORPUS = Path(__file__).parents[2] / "corpus" / "dockerfiles"


def test_continuations_comments_and_exec_form() -> None:
    df = parse_dockerfile(
        "FROM python:3.11-slim\n"
        "RUN apt-get update \\\n"
        "# a comment inside the continuation is dropped\n"
        "\n"
        "    && rm -rf /var/lib/apt/lists/*\n"
        'CMD ["python", "-m", "app"]\n'
    )
    run, cmd = df.final.instructions
    assert run.args == "apt-get update && rm -rf /var/lib/apt/lists/*"
    assert (run.line, run.end_line) == (2, 5)
    assert cmd.exec_form == ["python", "-m", "app"]
    assert run.exec_form is None
    assert [c.name for c in run_commands(run)] == ["apt-get", "rm"]


def test_escape_directive_backtick() -> None:
    df = parse_dockerfile("# escape=`\nFROM debian:12\nRUN echo a `\n    b\nRUN dir C:\\\n")
    first, second = df.final.instructions
    assert df.directives == {"escape": "`"}
    assert first.args == "echo a b"
    assert second.args == "dir C:\\"  # backslash is ordinary text now


def test_directive_only_at_top() -> None:
    df = parse_dockerfile("# hello\n# escape=`\nFROM debian:12\nRUN a \\\n b\n")
    assert df.directives == {}
    assert df.final.instructions[0].args == "a b"


def test_heredocs_plain_dash_and_quoted() -> None:
    df = read_dockerfile(CORPUS / "21-escape-backtick-heredoc.Dockerfile")
    run = df.final.instructions[1]
    assert run.keyword == "RUN" and run.heredocs[0].delimiter == "EOF"
    assert "pip install torch==2.6.0" in run.text
    copy = df.final.instructions[2]
    assert copy.heredocs[0].strip_tabs and copy.heredocs[0].quoted
    assert copy.heredocs[0].body == 'workers = 1\nthreads = "$THREADS"'
    last = df.final.instructions[-1]
    assert last.keyword == "CMD" and last.exec_form == ["python", "server.py"]


def test_two_heredocs_on_one_line() -> None:
    df = parse_dockerfile(
        "FROM alpine:3.20\nCOPY <<A <<B /dst/\none\nA\ntwo\nB\nRUN cat <<<'here-string'\n"
    )
    copy, run = df.final.instructions
    assert [h.body for h in copy.heredocs] == ["one", "two"]
    assert run.heredocs == []


def test_arg_before_from_named_stages_and_from_flag() -> None:
    df = parse_dockerfile(
        "ARG PY=3.11\nARG BASE\n"
        "FROM --platform=$BUILDPLATFORM python:${PY}-slim AS build\n"
        "RUN true\n"
        "FROM build as final\n"
        "COPY --from=build --chown=0:0 /opt/venv /opt/venv\n"
    )
    assert df.global_args == {"PY": "3.11", "BASE": None}
    build, final = df.stages
    assert build.resolved == "python:3.11-slim" and build.name == "build"
    assert build.from_line.flag("platform") == "$BUILDPLATFORM"
    assert final.parent == 0 and df.lineage(final) == [final, build]
    copy = final.instructions[0]
    assert copy.flag("from") == "build" and copy.flag("chown") == "0:0"
    assert copy.args == "/opt/venv /opt/venv"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(LintError, match=r"missing\.Dockerfile: cannot read"):
        lint_paths([tmp_path / "missing.Dockerfile"])
    bad = tmp_path / "Dockerfile"
    bad.write_bytes(b"FROM debian:12\nRUN echo \xff\n")
    with pytest.raises(LintError, match=r"Dockerfile:2: not UTF-8"):
        read_dockerfile(bad)


def test_unterminated_heredoc(tmp_path: Path) -> None:
    f = tmp_path / "Dockerfile"
    f.write_text("FROM debian:12\nRUN <<EOF\necho hi\n")
    with pytest.raises(LintError) as exc:
        lint_paths([f])
    msg = str(exc.value)
    assert msg == f"{f}:2: heredoc <<EOF is never closed; add a line with just EOF"
    assert "\n" not in msg and isinstance(exc.value, TorchslimError)


def test_unknown_instruction() -> None:
    with pytest.raises(LintError, match=r"^Dockerfile:3: unknown instruction 'RUNN'"):
        parse_dockerfile("FROM debian:12\n\nRUNN echo\n")


def test_instruction_before_from_and_no_from() -> None:
    with pytest.raises(LintError, match=r":1: RUN before the first FROM"):
        parse_dockerfile("RUN echo\nFROM debian:12\n")
    with pytest.raises(LintError, match=r":1: no FROM instruction"):
        parse_dockerfile("# only a comment\n")


def test_ignore_comment_with_unknown_rule(tmp_path: Path) -> None:
    f = tmp_path / "Dockerfile"
    f.write_text("FROM debian:12\n# torchslim: ignore=TS999\nUSER 1000\n")
    with pytest.raises(LintError, match=r"Dockerfile:2: ignore comment names unknown rule 'TS999'"):
        lint_paths([f])


def test_directory_means_its_dockerfiles(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM debian:12\nUSER 1000\n")
    (tmp_path / "notes.txt").write_text("RUNN\n")
    assert lint_paths([tmp_path]).files == [str(tmp_path / "Dockerfile")]
    with pytest.raises(LintError, match="no Dockerfile"):
        lint_paths([tmp_path / "empty"]) if (tmp_path / "empty").mkdir() is None else None
