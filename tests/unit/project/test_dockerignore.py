"""Docker's .dockerignore semantics, pinned to the examples in Docker's documentation
("Build context" → ".dockerignore files") and moby's patternmatcher tests."""

from __future__ import annotations

import pytest

from torchslim.project.dockerignore import PatternList, clean, read_lines


def excluded(lines: list[str], path: str) -> bool:
    return PatternList(lines).matches(path)


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        # Docker's table: "*/temp*" — temp* in any immediate subdirectory of the root
        ("*/temp*", "somedir/temporary.txt", True),
        ("*/temp*", "somedir/temp", True),
        ("*/temp*", "temporary.txt", False),
        ("*/temp*", "a/b/temporary.txt", False),
        # "*/*/temp*" — two levels below the root
        ("*/*/temp*", "somedir/subdir/temporary.txt", True),
        ("*/*/temp*", "somedir/temporary.txt", False),
        # "temp?" — one character after temp, in the root
        ("temp?", "tempa", True),
        ("temp?", "tempab", False),
        ("temp?", "dir/tempa", False),
        # anchored at the root, unlike .gitignore: *.md is not **/*.md
        ("*.md", "README.md", True),
        ("*.md", "docs/guide.md", False),
        ("**/*.md", "docs/guide.md", True),
        ("**/*.md", "README.md", True),  # ** is zero or more directories
        ("**/__pycache__", "a/b/__pycache__/x.pyc", True),  # a directory's contents
        ("docs/**", "docs/a/b.txt", True),
        ("docs/**", "docs", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        # cleaned first: leading/trailing slashes and ./ do not matter
        ("/foo/bar/", "foo/bar/baz.txt", True),
        ("./foo", "foo", True),
        ("foo/../bar", "bar", True),
        # * and ? never cross a slash; character classes work
        ("*", "a/b", True),  # matches "a", so everything below it
        ("?.txt", "ab.txt", False),
        ("[ab].txt", "b.txt", True),
        ("[^ab].txt", "b.txt", False),
        ("file\\*.txt", "file*.txt", True),
        ("file\\*.txt", "filex.txt", False),
        ("**foo", "xfoo", True),  # moby's suffix match
    ],
)
def test_pattern_matches_as_docker_does(pattern: str, path: str, hit: bool) -> None:
    assert excluded([pattern], path) is hit


def test_exceptions_and_last_match_wins() -> None:
    # Docker's documented example, both orders
    assert not excluded(["*.md", "!README.md"], "README.md")
    assert excluded(["*.md", "!README.md"], "CHANGES.md")
    order_a = ["*.md", "!README*.md", "README-secret.md"]
    assert excluded(order_a, "README-secret.md") and not excluded(order_a, "README-x.md")
    order_b = ["*.md", "README-secret.md", "!README*.md"]
    assert not excluded(order_b, "README-secret.md")
    # an exception re-includes a file inside an excluded directory
    assert not excluded(["docs", "!docs/keep.md"], "docs/keep.md")
    assert excluded(["docs", "!docs/keep.md"], "docs/other.md")


def test_walk_skips_excluded_dirs_only_without_exceptions_under_them() -> None:
    rules = PatternList([".venv", "docs", "!docs/keep.md", "!**/keep.txt"])
    assert rules.may_skip_dir(".venv")  # moby skips it: **/keep.txt is not written under it
    assert not rules.may_skip_dir("docs")


def test_file_syntax_comments_blanks_and_bom() -> None:
    text = "\ufeff# comment\n\n  *.pyc  \n #not a comment\n!  keep.pyc\n"
    assert read_lines(text) == ["*.pyc", "#not a comment", "!  keep.pyc"]
    rules = PatternList(read_lines(text))
    assert rules.matches("a.pyc") and not rules.matches("keep.pyc")
    assert clean("//x//y/") == "x/y" and clean("/") == "/"
