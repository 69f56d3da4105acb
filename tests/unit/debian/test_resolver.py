"""Index parsing and the resolver on small hand-written Packages stanzas (no network)."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from torchslim.debian import DebianSpec, DebPackage, host_mirrors, suite_for_python
from torchslim.debian.control import Relation, parse_relations, parse_stanza
from torchslim.debian.index import PackageIndex
from torchslim.debian.release import parse_release
from torchslim.debian.resolver import Resolver, resolve_index
from torchslim.errors import ConfigError, IntegrityError, ResolveError


def stanza(name: str, version: str = "1.0", **fields: str) -> str:
    lines = [f"Package: {name}", f"Version: {version}", "Architecture: amd64"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in fields.items()]
    lines += [
        f"Filename: pool/main/{name[0]}/{name}/{name}_{version}_amd64.deb",
        "Size: 100",
        "SHA256: " + "ab" * 32,
    ]
    return "\n".join(lines)


def index(*stanzas: str, suite: str = "bookworm") -> PackageIndex:
    idx = PackageIndex()
    idx.add_text("\n\n".join(stanzas) + "\n", suite)
    return idx


def names(idx: PackageIndex, roots: list[str]) -> list[str]:
    return [c.name for c in Resolver(idx, "amd64", "bookworm").resolve(roots)]


def test_parse_relations_alternatives_versions_and_arch() -> None:
    groups = parse_relations("libc6 (>= 2.34), media-types | mime-support, python3:any (<< 3.12)")
    assert groups == [
        [Relation("libc6", ">=", "2.34")],
        [Relation("media-types"), Relation("mime-support")],
        [Relation("python3", "<<", "3.12", "any")],
    ]


def test_parse_stanza_keeps_continuations() -> None:
    f = parse_stanza("Package: a\nDescription: short\n long line\n .\nVersion: 1\n")
    assert f["Description"] == "short\n long line\n ."
    assert f["Version"] == "1"


def test_depends_and_pre_depends_are_followed() -> None:
    idx = index(
        stanza("app", Depends="liba (>= 2)", Pre_Depends="libc6"),
        stanza("liba", "2.1", Depends="libb:any"),
        stanza("libb"),
        stanza("libc6", "2.36-9"),
        stanza("unrelated"),
    )
    assert names(idx, ["app"]) == ["app", "liba", "libb", "libc6"]


def test_highest_version_that_satisfies_across_suites() -> None:
    idx = index(stanza("app", Depends="lib (<< 3)"), stanza("lib", "1.0"), stanza("lib", "2.0"))
    idx.add_text(stanza("lib", "3.0") + "\n", "bookworm-updates")
    chosen = Resolver(idx, "amd64", "bookworm").resolve(["app"])
    assert [(c.name, c.version) for c in chosen] == [("app", "1.0"), ("lib", "2.0")]


def test_alternatives_take_first_satisfiable_or_already_chosen() -> None:
    idx = index(
        stanza("app", Depends="missing | second | third, third | second"),
        stanza("second"),
        stanza("third"),
    )
    # First group picks "second" (first that exists); second group is already met by it.
    assert names(idx, ["app"]) == ["app", "second"]


def test_versioned_provides_satisfy_virtual_dependencies() -> None:
    idx = index(
        stanza("app", Depends="virt (>= 2)"),
        stanza("old-provider", Provides="virt"),  # unversioned Provides cannot meet (>= 2)
        stanza("new-provider", Provides="virt (= 2.5), other"),
    )
    assert names(idx, ["app"]) == ["app", "new-provider"]


def test_script_only_dependencies_are_never_installed() -> None:
    idx = index(
        stanza("tzdata", Depends="debconf (>= 0.5) | debconf-2.0"),
        stanza("ca-certificates", Depends="openssl (>= 1.1.1), debconf | debconf-2.0"),
        stanza("debconf", Depends="perl-base"),
        stanza("openssl"),
    )
    r = Resolver(idx, "amd64", "bookworm")
    assert [c.name for c in r.resolve(["tzdata", "ca-certificates"])] == [
        "ca-certificates",
        "tzdata",
    ]
    assert set(r.script_only) == {"debconf", "debconf-2.0", "openssl"}


def test_script_only_package_asked_by_name_is_installed() -> None:
    idx = index(stanza("openssl"))
    assert names(idx, ["openssl"]) == ["openssl"]


def test_unknown_package_names_package_and_suite() -> None:
    with pytest.raises(ResolveError, match=r"'nope' not found in bookworm \(amd64\)"):
        names(index(stanza("a")), ["nope"])


def test_unsatisfiable_dependency_names_package_and_suite() -> None:
    idx = index(stanza("app", Depends="lib (>= 9)"), stanza("lib", "1.0"))
    with pytest.raises(ResolveError, match=r"'app'.*needs 'lib \(>= 9\)'.*bookworm"):
        names(idx, ["app"])


def test_conflicting_version_already_chosen_is_unsatisfiable() -> None:
    idx = index(
        stanza("app", Depends="lib (= 1.0), other"),
        stanza("other", Depends="lib (>= 2)"),
        stanza("lib", "1.0"),
        stanza("lib", "2.0"),
    )
    with pytest.raises(ResolveError, match="'other'"):
        names(idx, ["app"])


def test_resolve_index_gives_debpackages_that_round_trip() -> None:
    spec = DebianSpec("bookworm", extra=("extra-pkg",))
    base = [stanza(n) for n in spec.roots() if n != "extra-pkg"]
    idx = index(*base, stanza("extra-pkg", "1:2.0-1", Maintainer="Me <me@example.org>"))
    pkgs = resolve_index(idx, spec)
    extra = next(p for p in pkgs if p.name == "extra-pkg")
    assert extra.version == "1:2.0-1"
    assert extra.sha256 == "sha256:" + "ab" * 32
    assert extra.control["Maintainer"] == "Me <me@example.org>"
    assert "Filename" not in extra.control
    again = [DebPackage.from_dict(json.loads(json.dumps(p.to_dict()))) for p in pkgs]
    assert again == pkgs
    assert [p.control for p in again] == [p.control for p in pkgs]


def test_roots_have_runtime_not_python3_meta() -> None:
    roots = DebianSpec("bookworm", python="3.11").roots()
    assert {"python3.11", "python3.11-minimal", "libpython3.11-stdlib"} <= set(roots)
    assert {"ca-certificates", "tzdata", "netbase", "libgomp1", "libstdc++6"} <= set(roots)
    assert "python3" not in roots


def test_suite_for_python() -> None:
    assert suite_for_python("3.11") == "bookworm"
    assert suite_for_python("3.13") == "trixie"
    with pytest.raises(ConfigError, match=r"`python`.*3\.11.*3\.13"):
        suite_for_python("3.12")


RELEASE = """Origin: Debian
Suite: oldstable
Codename: bookworm
Version: 12.9
{extra}SHA256:
 {h} 8790396 main/binary-amd64/Packages.xz
 {h} 50060337 main/binary-amd64/Packages
"""


def test_parse_release_sha256_list() -> None:
    rel = parse_release(RELEASE.format(extra="", h="c" * 64), "http://m/InRelease")
    assert rel.codename == "bookworm"
    entry = rel.files["main/binary-amd64/Packages.xz"]
    assert (entry.sha256, entry.size) == ("sha256:" + "c" * 64, 8790396)


def test_parse_release_rejects_expired() -> None:
    text = RELEASE.format(extra="Valid-Until: Sat, 01 Jan 2022 00:00:00 UTC\n", h="c" * 64)
    with pytest.raises(IntegrityError, match="expired"):
        parse_release(text, "http://m/InRelease", now=datetime(2023, 1, 1, tzinfo=UTC))


def test_host_mirrors_reads_list_and_deb822(tmp_path: Path) -> None:
    apt = tmp_path / "etc/apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n"
        "deb http://security.example/debian-security bookworm-security main\n"
    )
    (apt / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://other.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: https://deb.nodesource.com/node_20.x\n"
        "Suites: nodistro\nComponents: main\n"
    )
    assert host_mirrors(tmp_path) == ["http://mirror.example/debian", "http://other.example/debian"]
    assert host_mirrors(tmp_path / "nothing") == []
