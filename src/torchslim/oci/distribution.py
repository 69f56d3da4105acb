"""An OCI distribution API client: scheme choice, auth, retries, and the read calls.

One client per registry. Auth follows the registry's 401 challenge: basic
credentials, or bearer tokens fetched per scope (anonymously when no login
is known). Dropped connections, 5xx and 429 are retried with exponential
backoff; upload bodies are retried by the push code, which knows how to
restart an upload session.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlencode

import httpx

from torchslim.cache import CHUNK, BlobStore
from torchslim.errors import BuildError, IntegrityError, NetworkError
from torchslim.oci.auth import (
    DOCKER_HUB,
    Challenge,
    Credentials,
    load_credentials,
    parse_challenge,
)
from torchslim.oci.blobio import check_bytes, sha256_bytes
from torchslim.oci.image import parse_json_object
from torchslim.oci.layer import Descriptor
from torchslim.oci.limits import MANIFEST_MAX
from torchslim.oci.media import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from torchslim.oci.reference import is_loopback
from torchslim.oci.responses import one_line as _one_line
from torchslim.oci.responses import read_capped_response as read_capped_response
from torchslim.oci.responses import registry_errors as registry_errors

log = logging.getLogger(__name__)

ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])
DOCKER_HUB_API = "registry-1.docker.io"
_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

Body = bytes | Callable[[], Iterator[bytes]] | None


def _ssl_context() -> ssl.SSLContext:
    cafile = os.environ.get("SSL_CERT_FILE") or (str(_CA_BUNDLE) if _CA_BUNDLE.is_file() else None)
    return ssl.create_default_context(cafile=cafile)


def _is_tls_failure(exc: httpx.TransportError) -> bool:
    """Certificate and handshake errors do not heal on retry."""
    text = str(exc)
    return isinstance(exc, httpx.ConnectError) and ("SSL" in text or "certificate" in text)


class TransportFailed(NetworkError):
    """The connection failed (refused, dropped, timed out) on every attempt."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RegistryClient:
    """One registry: scheme choice, auth (basic or bearer tokens per scope), retries with backoff.

    ``tls_verify=False`` talks plain http to loopback registries and https
    without certificate checks (falling back to http) to others, like skopeo.
    """

    def __init__(
        self,
        registry: str,
        *,
        tls_verify: bool = True,
        auth: Credentials | None = None,
        retries: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 300.0,
        use_auth_files: bool = True,
    ) -> None:
        self.registry = registry
        self.host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        self.tls_verify = tls_verify
        self.retries = retries
        self.backoff_s = backoff_s
        self._creds = auth
        self._creds_loaded = auth is not None or not use_auth_files
        self._scheme: str | None = None if not tls_verify else "https"
        if not tls_verify and is_loopback(self.host):
            self._scheme = "http"
        timeout = httpx.Timeout(timeout_s, connect=30.0)
        verify: ssl.SSLContext | bool = _ssl_context() if tls_verify else False
        self._http = httpx.Client(timeout=timeout, verify=verify, follow_redirects=True)
        self._challenge: Challenge | None = None
        self._basic: str | None = None
        self._tokens: dict[str, str] = {}

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing

    @property
    def credentials(self) -> Credentials | None:
        if not self._creds_loaded:
            self._creds = load_credentials(self.registry)
            self._creds_loaded = True
        return self._creds

    def url(self, path: str) -> str:
        if self._scheme is None:
            self._scheme = self._probe_scheme()
        return f"{self._scheme}://{self.host}{path}"

    def _probe_scheme(self) -> str:
        try:
            self._http.get(f"https://{self.host}/v2/")
            return "https"
        except httpx.TransportError:
            return "http"

    def _auth_header(self, scope: str) -> str | None:
        if self._challenge is None:
            return None
        if self._challenge.scheme == "bearer":
            return self._tokens.get(scope)
        return self._basic

    def backoff(self, attempt: int, resp: httpx.Response | None) -> None:
        delay = self.backoff_s * (2**attempt)
        if resp is not None and (after := resp.headers.get("retry-after", "")).isdigit():
            delay = max(delay, float(after))
        time.sleep(min(delay, 30.0))

    def send(
        self,
        method: str,
        path_or_url: str,
        *,
        scope: str,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        stream: bool = False,
        retry: bool = True,
    ) -> httpx.Response:
        """One request with auth; retried on dropped connections, 5xx and 429 when ``retry``.

        ``body`` may be a factory of chunks so a retry sends the bytes again.
        A streamed response must be closed by the caller.
        """
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        attempts = self.retries + 1 if retry else 1
        reauthed = False
        attempt = 0
        while True:
            hdrs = dict(headers or {})
            if (auth := self._auth_header(scope)) is not None:
                hdrs["Authorization"] = auth
            content = body() if callable(body) else body
            resp: httpx.Response | None = None
            try:
                req = self._http.build_request(method, url, headers=hdrs, content=content)
                resp = self._http.send(req, stream=stream)
            except httpx.TransportError as exc:
                if _is_tls_failure(exc):
                    raise NetworkError(
                        f"TLS to {self.registry} failed ({_one_line(str(exc), 120)}); for a "
                        "plain-http or self-signed registry pass --tls-verify=false, else "
                        "install its CA certificate"
                    ) from None
                attempt += 1
                if attempt >= attempts:
                    raise TransportFailed(
                        f"{method} {self._safe(url)} failed: {type(exc).__name__} "
                        f"({_one_line(str(exc), 120)}) after {attempt} attempt(s); "
                        "check that the registry is reachable and retry",
                        reason=type(exc).__name__,
                    ) from None
                log.warning("%s %s: %s; retrying", method, self._safe(url), type(exc).__name__)
                self.backoff(attempt - 1, None)
                continue
            if resp.status_code == 401 and not reauthed:
                reauthed = True
                challenge = resp.headers.get("www-authenticate", "")
                resp.close()
                self._authenticate(challenge, scope)
                continue
            if (resp.status_code >= 500 or resp.status_code == 429) and attempt + 1 < attempts:
                attempt += 1
                if stream:
                    resp.read()
                resp.close()
                log.warning("%s %s: HTTP %s; retrying", method, self._safe(url), resp.status_code)
                self.backoff(attempt - 1, resp)
                continue
            if resp.status_code == 401:
                if stream:
                    resp.read()
                raise self._denied(resp)
            return resp

    def _safe(self, url: str) -> str:
        """A URL for messages: no query (upload state, tokens) and no userinfo."""
        parsed = httpx.URL(url)
        return f"{parsed.scheme}://{parsed.host}{f':{parsed.port}' if parsed.port else ''}" + (
            parsed.path
        )

    def _denied(self, resp: httpx.Response) -> NetworkError:
        creds = self.credentials
        who = f"as user {creds.username!r}" if creds else "anonymously"
        return NetworkError(
            f"registry {self.registry} refused access {who} ({registry_errors(resp)}); check the "
            f"repository name, or log in (podman login {self.registry}) with a valid password"
        )

    def _authenticate(self, header: str, scope: str) -> None:
        if not header:
            raise NetworkError(
                f"registry {self.registry} answered 401 without a WWW-Authenticate challenge; "
                "it is not an OCI registry or a proxy is in the way"
            )
        challenge = parse_challenge(header)
        self._challenge = challenge
        creds = self.credentials
        if challenge.scheme == "basic":
            if creds is None:
                raise NetworkError(
                    f"registry {self.registry} needs a login and no credentials were found; run "
                    f"podman login {self.registry} (or docker login), or set DOCKER_CONFIG"
                )
            self._basic = creds.basic_header()
        elif challenge.scheme == "bearer":
            self._tokens[scope] = "Bearer " + self._fetch_token(challenge, scope, creds)
        else:
            raise NetworkError(
                f"registry {self.registry} asks for {challenge.scheme!r} auth; only basic and "
                "bearer tokens are supported"
            )

    def _fetch_token(self, ch: Challenge, scope: str, creds: Credentials | None) -> str:
        realm = ch.params.get("realm")
        if not realm:
            raise NetworkError(f"registry {self.registry} sent a bearer challenge with no realm")
        params = {"service": ch.params.get("service", "")} if ch.params.get("service") else {}
        scopes = scope.split(" ") if scope else []
        try:
            if creds is not None and creds.identity_token:
                form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token}
                form.update({"client_id": "torchslim", **params})
                if scopes:
                    form["scope"] = " ".join(scopes)
                resp = self._http.post(realm, data=form)
            else:
                query = list(params.items()) + [("scope", s) for s in scopes]
                auth = (creds.username, creds.password) if creds is not None else None
                resp = self._http.get(f"{realm}?{urlencode(query)}", auth=auth)
        except httpx.TransportError as exc:
            raise NetworkError(
                f"token service of {self.registry} unreachable ({type(exc).__name__}); retry later"
            ) from None
        if resp.status_code in (401, 403):
            raise self._denied(resp)
        if resp.status_code != 200:
            raise NetworkError(
                f"token service of {self.registry} answered {registry_errors(resp)}; retry later"
            )
        try:
            data = resp.json()
            token = data.get("token") or data["access_token"]
            return str(token)
        except (ValueError, KeyError, AttributeError):
            raise NetworkError(
                f"token service of {self.registry} sent no token; it is misconfigured"
            ) from None

    # -- API calls

    def get_small(
        self,
        path: str,
        *,
        scope: str,
        cap: int,
        what: str,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[httpx.Response, bytes]:
        """GET a small document (manifest, index, config): the closed response and its body,
        at most ``cap`` bytes of it read."""
        resp = self.send("GET", path, scope=scope, headers=headers, stream=True)
        try:
            return resp, read_capped_response(resp, cap, what)
        finally:
            resp.close()

    def get_manifest(self, repo: str, ident: str) -> tuple[bytes, str, str]:
        """Bytes, media type and digest of a manifest or index; the digest is checked."""
        where = f"{self.registry}/{repo}{'@' if ident.startswith('sha256:') else ':'}{ident}"
        resp, data = self.get_small(
            f"/v2/{repo}/manifests/{ident}",
            scope=pull_scope(repo),
            cap=MANIFEST_MAX,
            what=f"{where} manifest",
            headers={"Accept": ACCEPT},
        )
        if resp.status_code == 404:
            raise BuildError(
                f"{where} not found ({registry_errors(resp, data)}); check the repository and "
                f"tag (skopeo list-tags docker://{self.registry}/{repo})"
            )
        if resp.status_code != 200:
            raise NetworkError(
                f"{where}: registry answered {registry_errors(resp, data)}; retry later"
            )
        digest = sha256_bytes(data)
        if ident.startswith("sha256:"):
            check_bytes(data, ident, where)
        reported = resp.headers.get("docker-content-digest")
        if reported and reported.startswith("sha256:") and reported != digest:
            raise IntegrityError(
                f"{where}: the registry says the manifest is {reported} but its bytes are "
                f"{digest}; the registry or a proxy altered it"
            )
        media = resp.headers.get("content-type", "").split(";")[0].strip()
        body_type = parse_json_object(data, f"{where} manifest").get("mediaType")
        if body_type:
            media = str(body_type)
        return data, media, digest

    def has_blob(self, repo: str, digest: str, scope: str | None = None) -> bool:
        resp = self.send("HEAD", f"/v2/{repo}/blobs/{digest}", scope=scope or pull_scope(repo))
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise NetworkError(
            f"HEAD {self.registry}/{repo} blob {digest}: registry answered HTTP "
            f"{resp.status_code}; retry later"
        )

    def fetch_blob(self, repo: str, desc: Descriptor, store: BlobStore) -> None:
        """Download a blob into ``store``, checked against ``desc`` (nothing bad is kept)."""
        what = f"{self.registry}/{repo} blob {desc.digest}"
        for attempt in range(self.retries + 1):
            resp = self.send(
                "GET", f"/v2/{repo}/blobs/{desc.digest}", scope=pull_scope(repo), stream=True
            )
            try:
                if resp.status_code == 404:
                    resp.read()
                    raise BuildError(
                        f"{what} not found ({registry_errors(resp)}); the image is incomplete"
                    )
                if resp.status_code != 200:
                    resp.read()
                    raise NetworkError(
                        f"{what}: registry answered {registry_errors(resp)}; retry later"
                    )
                with store.writer(desc.digest) as w:
                    for chunk in resp.iter_bytes(CHUNK):
                        w.write(chunk)
                        if w.size > desc.size:
                            raise IntegrityError(
                                f"{what}: blob is longer than the {desc.size} bytes its "
                                "descriptor says; the registry serves corrupt content"
                            )
                return
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise NetworkError(
                        f"{what}: download failed ({type(exc).__name__}) after {attempt + 1} "
                        "attempt(s); retry later"
                    ) from None
                self.backoff(attempt, None)
            except IntegrityError as exc:
                raise IntegrityError(f"{what}: {exc}") from None
            finally:
                resp.close()


def pull_scope(repo: str) -> str:
    return f"repository:{repo}:pull"


def push_scope(repo: str, mount_from: Sequence[str] = ()) -> str:
    extra = [pull_scope(r) for r in mount_from if r != repo]
    return " ".join([f"repository:{repo}:pull,push", *extra])
