"""Basic auth against a real htpasswd registry: logins from docker config files and helpers."""

from __future__ import annotations

import base64
import logging
import os
import stat
from pathlib import Path

import pytest
from support.registry import PASSWORD, USER, ImageMaker, Registry, write_docker_config

from torchslim.errors import NetworkError
from torchslim.oci.auth import Credentials
from torchslim.oci.registry import RegistryClient, push_image, read_registry_image

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_host_logins")]


def _b64(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_push_and_pull_with_config_json_auth(
    auth_registry: Registry, repo: str, make_image: ImageMaker, no_host_logins: Path
) -> None:
    write_docker_config(
        no_host_logins, {"auths": {auth_registry.host: {"auth": _b64(USER, PASSWORD)}}}
    )
    img = make_image({"app/a": 3_000})
    res = push_image(img, f"{auth_registry.host}/{repo}:1", tls_verify=False)
    assert res.manifest_digest == img.digest()
    got = read_registry_image(f"{auth_registry.host}/{repo}:1", tls_verify=False)
    assert got.digest() == img.digest()


def test_username_password_entry_with_scheme_key(
    auth_registry: Registry, repo: str, make_image: ImageMaker, no_host_logins: Path
) -> None:
    key = f"http://{auth_registry.host}/v2/"
    write_docker_config(no_host_logins, {"auths": {key: {"username": USER, "password": PASSWORD}}})
    img = make_image({"app/b": 1_000})
    assert push_image(img, f"{auth_registry.host}/{repo}:1", tls_verify=False).uploaded


def test_credential_helper(
    auth_registry: Registry,
    repo: str,
    make_image: ImageMaker,
    no_host_logins: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-torchslimtest"
    # A real helper executable speaking the docker-credential protocol.
    helper.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 1\n'
        "read host\n"
        f'[ "$host" = "{auth_registry.host}" ] || {{ echo "credentials not found"; exit 1; }}\n'
        f'printf \'{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASSWORD}"}}\' "$host"\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    write_docker_config(no_host_logins, {"credHelpers": {auth_registry.host: "torchslimtest"}})
    img = make_image({"app/c": 1_000})
    assert push_image(img, f"{auth_registry.host}/{repo}:1", tls_verify=False).uploaded
    write_docker_config(no_host_logins, {"credsStore": "torchslimtest"})
    img2 = make_image({"app/d": 1_000})
    assert push_image(img2, f"{auth_registry.host}/{repo}:2", tls_verify=False).uploaded


def test_wrong_password_is_one_line_without_the_secret(
    auth_registry: Registry,
    repo: str,
    make_image: ImageMaker,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "hunter2-wrong-Password"
    creds = Credentials(USER, wrong)
    client = RegistryClient(auth_registry.host, tls_verify=False, auth=creds, retries=0)
    img = make_image({"app/e": 1_000})
    with pytest.raises(NetworkError) as ei:
        push_image(img, f"{auth_registry.host}/{repo}:1", client=client)
    msg = str(ei.value)
    assert "\n" not in msg
    assert "refused access as user 'alice'" in msg and "podman login" in msg
    everything = msg + repr(ei.value) + caplog.text + "".join(capsys.readouterr())
    for secret in (wrong, _b64(USER, wrong)):
        assert secret not in everything
    assert wrong not in repr(creds)
    with pytest.raises(NetworkError) as ei2:
        read_registry_image(f"{auth_registry.host}/{repo}:1", client=client)
    assert wrong not in str(ei2.value)


def test_no_credentials_says_how_to_log_in(
    auth_registry: Registry, repo: str, make_image: ImageMaker
) -> None:
    with pytest.raises(NetworkError, match=r"needs a login and no credentials were found"):
        read_registry_image(f"{auth_registry.host}/{repo}:1", tls_verify=False)


def test_password_in_config_file_never_leaks(
    auth_registry: Registry,
    repo: str,
    no_host_logins: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    write_docker_config(
        no_host_logins, {"auths": {auth_registry.host: {"auth": _b64(USER, PASSWORD)}}}
    )
    with pytest.raises(Exception) as ei:  # the tag does not exist: a BuildError
        read_registry_image(f"{auth_registry.host}/{repo}:missing", tls_verify=False)
    assert "not found" in str(ei.value)
    assert PASSWORD not in str(ei.value) + caplog.text
    assert _b64(USER, PASSWORD) not in str(ei.value) + caplog.text
