"""Bearer tokens, as Docker Hub, GHCR and Harbor hand them out, in front of a real registry.

A small gateway plays the token service: ``/token`` checks basic credentials
and grants a token for the scopes asked; every ``/v2/`` call must carry a
token whose scope covers it, else 401 with a Bearer challenge. Everything
else is forwarded to the real docker-registry.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from support.registry import ImageMaker, Registry, write_docker_config

from torchslim.errors import NetworkError
from torchslim.oci.registry import push_image, read_registry_image

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_host_logins")]

USER, PASSWORD = "tok-user", "tok-Secret-123"


class Gateway:
    def __init__(self, upstream: str, *, anonymous_pull: bool) -> None:
        self.upstream = upstream
        self.anonymous_pull = anonymous_pull
        self.tokens: dict[str, set[str]] = {}  # token -> granted "repo:action"
        self.scopes_asked: list[list[str]] = []
        gw = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, code: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _token(self) -> None:
                q = parse_qs(urlsplit(self.path).query)
                scopes = q.get("scope", [])
                gw.scopes_asked.append(scopes)
                auth = self.headers.get("Authorization", "")
                user = None
                if auth.startswith("Basic "):
                    u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                    if (u, p) != (USER, PASSWORD):
                        body = json.dumps({"details": "incorrect username or password"}).encode()
                        return self._reply(401, body, {"Content-Type": "application/json"})
                    user = u
                granted = set()
                for scope in scopes:
                    _, repo, actions = scope.split(":")
                    for action in actions.split(","):
                        if user is not None or (action == "pull" and gw.anonymous_pull):
                            granted.add(f"{repo}:{action}")
                tok = secrets.token_hex(8)
                gw.tokens[tok] = granted
                self._reply(200, json.dumps({"token": tok}).encode(), {})

            def _handle(self) -> None:
                if self.path.startswith("/token"):
                    return self._token()
                parts = urlsplit(self.path).path.split("/")
                need = None
                if len(parts) > 3 and parts[1] == "v2":
                    kind = next(i for i, p in enumerate(parts) if p in ("blobs", "manifests"))
                    repo = "/".join(parts[2:kind])
                    action = "pull" if self.command in ("GET", "HEAD") else "push"
                    need = f"{repo}:{action}"
                    if self.command == "POST" and "from=" in self.path:
                        src = parse_qs(urlsplit(self.path).query)["from"][0]
                        if f"{src}:pull" not in gw.tokens.get(self._bearer(), set()):
                            need = f"{src}:pull"
                auth_ok = need is None or need in gw.tokens.get(self._bearer(), set())
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if not auth_ok:
                    repo_, _, action_ = need.rpartition(":") if need else ("", "", "")
                    challenge = (
                        f'Bearer realm="http://{self.headers["Host"]}/token",service="gw",'
                        f'scope="repository:{repo_}:{action_}"'
                    )
                    err = {
                        "errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]
                    }
                    return self._reply(
                        401, json.dumps(err).encode(), {"WWW-Authenticate": challenge}
                    )
                fwd = {k: v for k, v in self.headers.items() if k.lower() not in ("authorization",)}
                resp = httpx.request(
                    self.command, f"http://{gw.upstream}{self.path}", headers=fwd, content=body
                )
                out = {
                    k: v
                    for k, v in resp.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection")
                }
                self._reply(resp.status_code, resp.content, out)

            def _bearer(self) -> str:
                return self.headers.get("Authorization", "").removeprefix("Bearer ")

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(registry: Registry) -> Iterator[Gateway]:
    gw = Gateway(registry.host, anonymous_pull=True)
    yield gw
    gw.close()


def _login(cfg: Path, host: str, password: str = PASSWORD) -> None:
    auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
    write_docker_config(cfg, {"auths": {host: {"auth": auth}}})


def test_push_with_token_then_anonymous_pull(
    gateway: Gateway, repo: str, make_image: ImageMaker, no_host_logins: Path
) -> None:
    _login(no_host_logins, gateway.host)
    base = make_image({"base": 10_000})
    push_image(base, f"{gateway.host}/{repo}-base:1", tls_verify=False)
    svc = make_image({"app": 2_000}, base=base)
    res = push_image(
        svc, f"{gateway.host}/{repo}-svc:1", tls_verify=False, mount_from=[f"{repo}-base"]
    )
    assert len(res.mounted) == 1 and res.manifest_digest == svc.digest()
    # The mount asked for pull on the source repository in the same token.
    assert [f"repository:{repo}-svc:pull,push", f"repository:{repo}-base:pull"] in (
        gateway.scopes_asked
    )
    (no_host_logins / "config.json").unlink()
    got = read_registry_image(f"{gateway.host}/{repo}-svc:1", tls_verify=False)
    assert got.digest() == svc.digest()
    for layer in got.layers():
        with got.open_layer(layer) as f:
            f.read()


def test_anonymous_push_is_denied_in_one_line(
    gateway: Gateway, repo: str, make_image: ImageMaker
) -> None:
    with pytest.raises(NetworkError, match=r"refused access anonymously") as ei:
        push_image(make_image({"x": 10}), f"{gateway.host}/{repo}:1", tls_verify=False)
    assert "\n" not in str(ei.value)


def test_wrong_password_at_token_service_never_leaks(
    gateway: Gateway,
    repo: str,
    no_host_logins: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wrong-Pass-987"
    _login(no_host_logins, gateway.host, wrong)
    with pytest.raises(NetworkError, match=r"refused access as user 'tok-user'") as ei:
        read_registry_image(f"{gateway.host}/{repo}:1", tls_verify=False)
    text = str(ei.value) + caplog.text
    assert wrong not in text
    assert base64.b64encode(f"{USER}:{wrong}".encode()).decode() not in text
