"""References, auth challenges and login files: no registry needed."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from torchslim.errors import ConfigError
from torchslim.oci.auth import Credentials, load_credentials, parse_challenge, registry_host
from torchslim.oci.registry import Reference, parse_reference, push_scope

# The developer's own ~/.docker and podman logins are never read.
pytestmark = pytest.mark.usefixtures("no_host_logins")

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("python:3.11-slim", Reference("docker.io", "library/python", "3.11-slim", None)),
        ("python", Reference("docker.io", "library/python", "latest", None)),
        (
            "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime",
            Reference("docker.io", "pytorch/pytorch", "2.3.0-cuda12.1-cudnn8-runtime", None),
        ),
        (
            "docker.io/nvidia/cuda:12.4.1-runtime-ubuntu22.04",
            Reference("docker.io", "nvidia/cuda", "12.4.1-runtime-ubuntu22.04", None),
        ),
        (
            "index.docker.io/library/debian",
            Reference("docker.io", "library/debian", "latest", None),
        ),
        (f"127.0.0.1:5000/a/b@{D}", Reference("127.0.0.1:5000", "a/b", None, D)),
        (f"localhost/team/app:1.0@{D}", Reference("localhost", "team/app", "1.0", D)),
        (
            "docker://gcr.io/distroless/python3-debian12:nonroot",
            Reference("gcr.io", "distroless/python3-debian12", "nonroot", None),
        ),
        ("[::1]:5000/x", Reference("[::1]:5000", "x", "latest", None)),
    ],
)
def test_parse_reference(text: str, want: Reference) -> None:
    assert parse_reference(text) == want


def test_reference_str_round_trips() -> None:
    for text in ["docker.io/library/python:3.11", f"127.0.0.1:5000/a/b:t@{D}", f"ghcr.io/o/r@{D}"]:
        assert str(parse_reference(text)) == text


@pytest.mark.parametrize(
    "text",
    ["", "Python:3", "a/b:", "a/b:bad tag", "a@sha256:xyz", "a//b", "127.0.0.1:5000/UP/x", "-a"],
)
def test_garbage_reference_is_one_line_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid image reference") as ei:
        parse_reference(text)
    assert "\n" not in str(ei.value)


def test_parse_challenge() -> None:
    c = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/python:pull",error="insufficient_scope"'
    )
    assert c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/python:pull",
        "error": "insufficient_scope",
    }
    assert parse_challenge('Basic realm="my \\"realm\\""').params == {"realm": 'my "realm"'}


def test_push_scope_adds_mount_sources() -> None:
    assert push_scope("a/b", ["c", "a/b"]) == "repository:a/b:pull,push repository:c:pull"


def test_registry_host_normalizes_auth_keys() -> None:
    assert registry_host("https://index.docker.io/v1/") == "docker.io"
    assert registry_host("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000"
    assert registry_host("Quay.io") == "quay.io"


def _cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: object) -> Path:
    d = tmp_path / "dc"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps(data))
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return d


def test_credentials_from_auths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = base64.b64encode(b"bob:pa:ss").decode()
    _cfg(
        tmp_path,
        monkeypatch,
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": token},
                "ghcr.io": {"username": "carol", "password": "pw"},
                "quay.io": {"identitytoken": "refresh"},
            }
        },
    )
    hub = load_credentials("docker.io")
    assert hub == Credentials("bob", "pa:ss")
    assert load_credentials("ghcr.io") == Credentials("carol", "pw")
    quay = load_credentials("quay.io")
    assert quay is not None and quay.identity_token == "refresh"
    assert load_credentials("127.0.0.1:5000") is None
    assert "pa:ss" not in repr(hub) and "refresh" not in repr(quay)


def test_registry_auth_file_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _cfg(tmp_path, monkeypatch, {"auths": {"r.io": {"username": "docker", "password": "x"}}})
    podman = tmp_path / "auth.json"
    podman.write_text(json.dumps({"auths": {"r.io": {"username": "podman", "password": "y"}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(podman))
    creds = load_credentials("r.io")
    assert creds is not None and creds.username == "podman"


def test_bad_config_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = _cfg(tmp_path, monkeypatch, {"auths": {"r.io": {"auth": "not base64 of a pair"}}})
    with pytest.raises(ConfigError, match=r"auths\['r.io'\].auth is not base64") as ei:
        load_credentials("r.io")
    assert "not base64 of a pair" not in str(ei.value)
    (d / "config.json").write_text("{oops")
    with pytest.raises(ConfigError, match="not readable JSON"):
        load_credentials("r.io")
    _cfg(tmp_path, monkeypatch, {"credsStore": "surely-not-installed-xyz"})
    with pytest.raises(ConfigError, match="docker-credential-surely-not-installed-xyz is not on"):
        load_credentials("r.io")


def test_credential_helper_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-fake"
    helper.write_text(
        "#!/bin/sh\nread host\n"
        'case "$host" in\n'
        '  r.io) echo \'{"Username":"helper-user","Secret":"helper-secret"}\';;\n'
        '  t.io) echo \'{"Username":"<token>","Secret":"refresh-tok"}\';;\n'
        '  *) echo "credentials not found in native keychain"; exit 1;;\n'
        "esac\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    _cfg(tmp_path, monkeypatch, {"credHelpers": {"r.io": "fake", "t.io": "fake", "n.io": "fake"}})
    assert load_credentials("r.io") == Credentials("helper-user", "helper-secret")
    tok = load_credentials("t.io")
    assert tok is not None and tok.identity_token == "refresh-tok"
    assert load_credentials("n.io") is None
