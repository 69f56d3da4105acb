"""OCI distribution registries: references, an HTTP client, a lazy image source and a push sink.

Reading resolves a tag to a manifest (or an index, then the platform's
manifest), checks every digest, and fetches layer blobs into the BlobStore
only when a sink opens them. Pushing sends only blobs the registry lacks
(HEAD, then a cross-repository mount, then an upload) and puts the manifest
last, so the tag never names an image whose blobs are not all there.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode, urljoin

import httpx

from torchslim.cache import CHUNK, BlobStore
from torchslim.errors import BuildError, ConfigError, IntegrityError, NetworkError
from torchslim.oci.auth import (
    DOCKER_HUB,
    Challenge,
    Credentials,
    load_credentials,
    parse_challenge,
)
from torchslim.oci.blobio import check_bytes, sha256_bytes, verified
from torchslim.oci.image import (
    BaseImage,
    Image,
    canonical_json,
    check_layers_match_config,
    manifest_media_type,
    parse_json_object,
)
from torchslim.oci.layer import Descriptor, Layer
from torchslim.oci.layout import index_entry, manifest_descriptor
from torchslim.oci.media import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
)

log = logging.getLogger(__name__)

ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])
DOCKER_HUB_API = "registry-1.docker.io"
CHUNKED_THRESHOLD = 64 << 20  # blobs above this go up in PATCH chunks
CHUNK_SIZE = 32 << 20
_LOOPBACK = ("127.", "localhost", "[::1]")
_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

# --- references -----------------------------------------------------------------------------

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_HOST_RE = re.compile(r"^(?:[a-zA-Z0-9.-]+|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")


@dataclass(frozen=True)
class Reference:
    """``registry/repository[:tag][@digest]``, normalized the way docker does."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/``: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)


def parse_reference(text: str) -> Reference:
    """``python:3.11-slim`` → ``docker.io/library/python:3.11-slim``; ``docker://`` is accepted."""
    raw = text.strip()
    name = raw.removeprefix("docker://")

    def bad(why: str) -> ConfigError:
        return ConfigError(
            f"invalid image reference {raw!r}: {why}; write REGISTRY/REPOSITORY[:TAG][@DIGEST], "
            "e.g. python:3.11-slim or 127.0.0.1:5000/team/app:1.0"
        )

    if not name:
        raise bad("it is empty")
    digest: str | None = None
    if "@" in name:
        name, _, digest = name.partition("@")
        if not _DIGEST_RE.match(digest):
            raise bad("the digest must be sha256:<64 lowercase hex>")
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, path = first, rest
        if not _HOST_RE.match(registry):
            raise bad(f"{registry!r} is not a registry host[:port]")
    else:
        registry, path = DOCKER_HUB, name
    tag: str | None = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise bad(f"tag {tag!r} has characters a tag may not have")
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not _REPO_RE.match(path):
        raise bad(f"repository {path!r} must be lowercase letters, digits and . _ - separators")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, path, tag, digest)


def as_reference(ref: Reference | str) -> Reference:
    return ref if isinstance(ref, Reference) else parse_reference(ref)


def is_loopback(registry: str) -> bool:
    return registry.startswith(_LOOPBACK)


# --- client ---------------------------------------------------------------------------------

Body = bytes | Callable[[], Iterator[bytes]] | None


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


def registry_errors(resp: httpx.Response) -> str:
    """The registry's ``errors`` array as ``CODE: message`` (never headers, never tokens)."""
    try:
        data = resp.json()
        errs = data.get("errors") or []
        parts = [
            f"{e.get('code', '?')}: {e.get('message', '')}" for e in errs if isinstance(e, dict)
        ]
        if parts:
            return _one_line("; ".join(parts))
    except (ValueError, AttributeError):
        pass
    return f"HTTP {resp.status_code}"


def _ssl_context() -> ssl.SSLContext:
    import os

    cafile = os.environ.get("SSL_CERT_FILE") or (str(_CA_BUNDLE) if _CA_BUNDLE.is_file() else None)
    return ssl.create_default_context(cafile=cafile)


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

    def get_manifest(self, repo: str, ident: str) -> tuple[bytes, str, str]:
        """Bytes, media type and digest of a manifest or index; the digest is checked."""
        resp = self.send(
            "GET",
            f"/v2/{repo}/manifests/{ident}",
            scope=pull_scope(repo),
            headers={"Accept": ACCEPT},
        )
        where = f"{self.registry}/{repo}{'@' if ident.startswith('sha256:') else ':'}{ident}"
        if resp.status_code == 404:
            raise BuildError(
                f"{where} not found ({registry_errors(resp)}); check the repository and tag "
                f"(skopeo list-tags docker://{self.registry}/{repo})"
            )
        if resp.status_code != 200:
            raise NetworkError(f"{where}: registry answered {registry_errors(resp)}; retry later")
        data = resp.content
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


# --- source ---------------------------------------------------------------------------------


class RegistryImage(BaseImage):
    """An image in a registry; config held in memory, layers fetched into the store on open."""

    def __init__(
        self,
        client: RegistryClient,
        ref: Reference,
        manifest: bytes,
        config: bytes,
        layers: list[Layer],
        store: BlobStore,
    ) -> None:
        self.client = client
        self.reference = ref  # pinned: ref.digest is this manifest's digest
        self._manifest = manifest
        self._config = config
        self._layers = layers
        self._store = store

    def config_bytes(self) -> bytes:
        return self._config

    def manifest_bytes(self) -> bytes:
        return self._manifest

    def layers(self) -> list[Layer]:
        return list(self._layers)

    def open_layer(self, layer: Layer) -> BinaryIO:
        d = layer.descriptor
        if not self._store.has(d.digest):
            self.client.fetch_blob(self.reference.repository, d, self._store)
        return verified(self._store.open(d.digest), d.digest, d.size, f"layer {d.digest}")


def _platform_of(m: Mapping[str, Any]) -> tuple[str, str, str | None]:
    p = m.get("platform") or {}
    return (str(p.get("os", "")), str(p.get("architecture", "")), p.get("variant"))


def _fmt_platform(p: tuple[str, str, str | None]) -> str:
    return "/".join(x for x in p if x)


def _normalize_platform(platform: tuple[str, ...] | str) -> tuple[str, str, str | None]:
    parts = platform.split("/") if isinstance(platform, str) else list(platform)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ConfigError(f"platform {platform!r} must be OS/ARCH, e.g. linux/amd64")
    return (parts[0], parts[1], parts[2] if len(parts) > 2 and parts[2] else None)


def _pick_platform(
    index: dict[str, Any], want: tuple[str, str, str | None], where: str
) -> dict[str, Any]:
    entries = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
    # Attestation manifests (buildkit) carry platform unknown/unknown: not images.
    real = [m for m in entries if _platform_of(m)[0] not in ("", "unknown")]
    for m in real:
        os_, arch, variant = _platform_of(m)
        if (os_, arch) == want[:2] and (want[2] is None or variant in (None, want[2])):
            return m
    have = sorted({_fmt_platform(_platform_of(m)) for m in real})
    raise BuildError(
        f"{where} has no {_fmt_platform(want)} image; it is built for {', '.join(have) or 'none'}; "
        "pick a base that lists your platform or change --platform"
    )


def read_registry_image(
    ref: Reference | str,
    *,
    platform: tuple[str, ...] | str = ("linux", "amd64"),
    tls_verify: bool = True,
    store: BlobStore | None = None,
    client: RegistryClient | None = None,
) -> RegistryImage:
    """Resolve ``ref`` to the ``platform`` image; the result is pinned by manifest digest."""
    r = as_reference(ref)
    want = _normalize_platform(platform)
    cl = client or RegistryClient(r.registry, tls_verify=tls_verify)
    data, media, digest = cl.get_manifest(r.repository, r.identifier)
    where = str(r)
    hops = 0
    while media in INDEX_TYPES:
        hops += 1
        if hops > 2:
            raise BuildError(f"{where}: image indexes nest too deep")
        entry = _pick_platform(parse_json_object(data, f"{where} index"), want, where)
        desc = Descriptor.from_json(entry, f"{where} index")
        data, media, digest = cl.get_manifest(r.repository, desc.digest)
    manifest = parse_json_object(data, f"{where} manifest")
    if media not in MANIFEST_TYPES:
        raise BuildError(
            f"{where} is a {media or 'schema ' + str(manifest.get('schemaVersion'))} manifest; "
            "only OCI and Docker schema 2 images are supported, re-push it with a newer tool"
        )
    cdesc = Descriptor.from_json(manifest.get("config") or {}, f"{where} manifest config")
    config_bytes = _fetch_small(cl, r.repository, cdesc, f"{where} config")
    config = parse_json_object(config_bytes, f"{where} config")
    got = (str(config.get("os", "")), str(config.get("architecture", "")), config.get("variant"))
    if got[:2] != want[:2]:
        raise BuildError(
            f"{where} is a {_fmt_platform(got)} image but {_fmt_platform(want)} was asked for; "
            "pick a base built for your platform or change --platform"
        )
    ldescs = [Descriptor.from_json(d, f"{where} layer") for d in manifest.get("layers") or []]
    check_layers_match_config([Layer(d, "") for d in ldescs], config, where)
    diff_ids = config["rootfs"]["diff_ids"]
    layers = [Layer(d, str(diff_ids[i])) for i, d in enumerate(ldescs)]
    pinned = r.with_digest(digest)
    return RegistryImage(cl, pinned, data, config_bytes, layers, store or BlobStore())


def _fetch_small(cl: RegistryClient, repo: str, desc: Descriptor, what: str) -> bytes:
    if desc.size > 16 << 20:
        raise IntegrityError(f"{what} claims {desc.size} bytes; a config is never that big")
    resp = cl.send("GET", f"/v2/{repo}/blobs/{desc.digest}", scope=pull_scope(repo))
    if resp.status_code != 200:
        raise BuildError(f"{what} {desc.digest}: registry answered {registry_errors(resp)}")
    return check_bytes(resp.content, desc.digest, what)


# --- push -----------------------------------------------------------------------------------

Progress = Callable[[str, int, int], None]


@dataclass
class PushResult:
    """What one push sent: blobs as ``(digest, size)``, and the digest the tag now names."""

    reference: str = ""
    uploaded: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    mounted: list[tuple[str, int]] = field(default_factory=list)
    manifest_digest: str = ""

    @property
    def bytes_uploaded(self) -> int:
        return sum(size for _, size in self.uploaded)

    @property
    def bytes_skipped(self) -> int:
        return sum(size for _, size in self.skipped) + sum(size for _, size in self.mounted)


@dataclass(frozen=True)
class _Blob:
    digest: str
    size: int
    open: Callable[[], BinaryIO]


def _image_blobs(image: Image) -> list[_Blob]:
    config = image.config_bytes()

    def open_config() -> BinaryIO:
        import io

        return io.BytesIO(config)

    blobs = [_Blob(sha256_bytes(config), len(config), open_config)]
    seen = {blobs[0].digest}
    for layer in image.layers():
        if layer.digest in seen:
            continue
        seen.add(layer.digest)
        blobs.append(_Blob(layer.digest, layer.descriptor.size, _layer_opener(image, layer)))
    return blobs


def _layer_opener(image: Image, layer: Layer) -> Callable[[], BinaryIO]:
    return lambda: image.open_layer(layer)


def _origin(image: Image) -> RegistryImage | None:
    """The registry image a (mutated) image was built on, if any: its repo can lend blobs."""
    if isinstance(image, RegistryImage):
        return image
    base = getattr(image, "_base", None)  # oci.mutate keeps the original source here
    return base if isinstance(base, RegistryImage) else None


class _Pusher:
    def __init__(
        self,
        client: RegistryClient,
        repo: str,
        mount_from: Sequence[str],
        progress: Progress | None,
        chunked_threshold: int,
        chunk_size: int,
        result: PushResult,
    ) -> None:
        self.cl = client
        self.repo = repo
        self.mount_from = [m for m in dict.fromkeys(mount_from) if m != repo]
        self.scope = push_scope(repo, self.mount_from)
        self.progress = progress
        self.chunked_threshold = chunked_threshold
        self.chunk_size = chunk_size
        self.result = result
        self.done: set[str] = set()

    def push_blob(self, blob: _Blob) -> None:
        if blob.digest in self.done:
            return
        self.done.add(blob.digest)
        entry = (blob.digest, blob.size)
        if self.cl.has_blob(self.repo, blob.digest, self.scope):
            self.result.skipped.append(entry)
            return
        location: str | None = None
        for source in self.mount_from:
            query = urlencode({"mount": blob.digest, "from": source})
            resp = self.cl.send("POST", f"/v2/{self.repo}/blobs/uploads/?{query}", scope=self.scope)
            if resp.status_code == 201:
                self.result.mounted.append(entry)
                return
            if resp.status_code == 202:  # not mountable: the registry opened an upload instead
                location = self._location(resp)
                break
        self._upload(blob, location)
        self.result.uploaded.append(entry)

    def _location(self, resp: httpx.Response) -> str:
        loc = resp.headers.get("location")
        if not loc:
            raise NetworkError(
                f"registry {self.cl.registry} started an upload without a Location header; "
                "it does not follow the distribution API"
            )
        return urljoin(str(resp.request.url), str(loc))

    def _start(self) -> str:
        resp = self.cl.send("POST", f"/v2/{self.repo}/blobs/uploads/", scope=self.scope)
        if resp.status_code != 202:
            raise NetworkError(
                f"registry {self.cl.registry} refused to start an upload to {self.repo} "
                f"({registry_errors(resp)}); check your push rights"
            )
        return self._location(resp)

    def _upload(self, blob: _Blob, location: str | None) -> None:
        """Monolithic or chunked upload; on a drop, resume (chunked) or restart, with backoff."""
        attempt = 0
        offset = 0
        while True:
            try:
                if location is None:
                    location, offset = self._start(), 0
                if blob.size > self.chunked_threshold:
                    location = self._chunked(blob, location, offset)
                else:
                    self._monolithic(blob, location)
                return
            except _UploadFailed as exc:
                attempt += 1
                if attempt > self.cl.retries:
                    raise NetworkError(
                        f"upload of {blob.digest} to {self.cl.registry}/{self.repo} failed "
                        f"after {attempt} attempt(s): {exc}; re-run the push, blobs that "
                        "arrived are skipped"
                    ) from None
                log.warning("upload of %s: %s; retrying", blob.digest, exc)
                self.cl.backoff(attempt - 1, None)
                # The bytes may all have arrived before the connection dropped.
                if self.cl.has_blob(self.repo, blob.digest, self.scope):
                    return
                location, offset = self._resume_point(exc.location)

    def _resume_point(self, location: str | None) -> tuple[str | None, int]:
        """Ask the registry how much of an interrupted upload it kept; None: start over."""
        if location is None:
            return None, 0
        try:
            resp = self.cl.send("GET", location, scope=self.scope, retry=False)
        except TransportFailed:
            return None, 0
        rng = resp.headers.get("range", "")
        if resp.status_code == 204 and (m := re.fullmatch(r"0-(\d+)", rng)):
            return self._location(resp), int(m.group(1)) + 1
        if resp.status_code == 204:
            return self._location(resp), 0
        return None, 0

    def _stream(self, blob: _Blob, start: int, length: int, sent_before: int) -> Iterator[bytes]:
        with blob.open() as f:
            skip = start
            while skip > 0:
                got = f.read(min(CHUNK, skip))
                if not got:
                    raise IntegrityError(f"blob {blob.digest} is shorter than {start} bytes")
                skip -= len(got)
            left = length
            sent = sent_before
            while left > 0:
                data = f.read(min(CHUNK, left))
                if not data:
                    raise IntegrityError(
                        f"blob {blob.digest} ends before its {blob.size} bytes; the image is "
                        "corrupt, rebuild it"
                    )
                left -= len(data)
                sent += len(data)
                yield data
                if self.progress is not None:
                    self.progress(blob.digest, sent, blob.size)
            if start + length == blob.size:
                f.read(1)  # read to EOF so a verifying stream checks the digest

    def _send_upload(
        self, method: str, url: str, headers: dict[str, str], body: Body, *, resumable: bool
    ) -> httpx.Response:
        try:
            resp = self.cl.send(
                method, url, scope=self.scope, headers=headers, body=body, retry=False
            )
        except TransportFailed as exc:
            raise _UploadFailed(f"{exc.reason} during {method}", url if resumable else None) from None
        if resp.status_code >= 500 or resp.status_code == 429:
            raise _UploadFailed(f"HTTP {resp.status_code} from {method}", None)
        return resp

    def _monolithic(self, blob: _Blob, location: str) -> None:
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}
        url = _with_query(location, digest=blob.digest)
        resp = self._send_upload("PUT", url, headers, lambda: self._stream(blob, 0, blob.size, 0))
        self._finished(blob, resp)

    def _chunked(self, blob: _Blob, location: str, offset: int) -> str:
        while offset < blob.size:
            length = min(self.chunk_size, blob.size - offset)
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Length": str(length),
                "Content-Range": f"{offset}-{offset + length - 1}",
            }
            resp = self._send_upload(
                "PATCH", location, headers, _bind(self._stream, blob, offset, length, offset)
            )
            if resp.status_code != 202:
                raise _UploadFailed(f"PATCH answered {registry_errors(resp)}", location)
            location = self._location(resp)
            rng = re.fullmatch(r"0-(\d+)", resp.headers.get("range", ""))
            offset = int(rng.group(1)) + 1 if rng else offset + length
        url = _with_query(location, digest=blob.digest)
        resp = self._send_upload("PUT", url, {"Content-Length": "0"}, b"")
        self._finished(blob, resp)
        return location

    def _finished(self, blob: _Blob, resp: httpx.Response) -> None:
        if resp.status_code != 201:
            text = registry_errors(resp)
            if "DIGEST_INVALID" in text or "BLOB_UPLOAD_INVALID" in text:
                raise IntegrityError(
                    f"registry {self.cl.registry} rejected blob {blob.digest} ({text}); "
                    "the local blob is corrupt, rebuild the image"
                )
            raise NetworkError(
                f"registry {self.cl.registry} refused blob {blob.digest} ({text}); retry later"
            )
        reported = resp.headers.get("docker-content-digest")
        if reported and reported != blob.digest:
            raise IntegrityError(
                f"registry {self.cl.registry} stored blob {blob.digest} as {reported}; the bytes "
                "changed in transit, retry the push"
            )

    def put_manifest(self, ident: str, data: bytes, media_type: str) -> str:
        digest = sha256_bytes(data)
        resp = self.cl.send(
            "PUT",
            f"/v2/{self.repo}/manifests/{ident}",
            scope=self.scope,
            headers={"Content-Type": media_type},
            body=data,
        )
        if resp.status_code not in (200, 201):
            raise BuildError(
                f"registry {self.cl.registry} rejected the manifest for {self.repo}:{ident} "
                f"({registry_errors(resp)}); nothing was tagged"
            )
        reported = resp.headers.get("docker-content-digest")
        if reported and reported != digest:
            raise IntegrityError(
                f"registry {self.cl.registry} stored manifest {digest} as {reported}; it "
                "rewrote the manifest, push to a registry that keeps bytes as sent"
            )
        return digest


def _bind(
    fn: Callable[[_Blob, int, int, int], Iterator[bytes]], blob: _Blob, a: int, b: int, c: int
) -> Callable[[], Iterator[bytes]]:
    return lambda: fn(blob, a, b, c)


class _UploadFailed(Exception):
    """A retryable upload failure; ``location`` is where the upload might resume."""

    def __init__(self, why: str, location: str | None) -> None:
        super().__init__(why)
        self.location = location


def _with_query(url: str, **params: str) -> str:
    return str(httpx.URL(url).copy_merge_params(params))


def _auto_mounts(images: Sequence[Image], ref: Reference) -> list[str]:
    out: list[str] = []
    for image in images:
        base = _origin(image)
        if base is not None and base.reference.registry == ref.registry:
            out.append(base.reference.repository)
    return out


def _client_for(ref: Reference, tls_verify: bool, client: RegistryClient | None) -> RegistryClient:
    if client is not None:
        if client.registry != ref.registry:
            raise ConfigError(f"client is for {client.registry}, not {ref.registry}")
        return client
    return RegistryClient(ref.registry, tls_verify=tls_verify)


def _target_ident(ref: Reference, digest: str) -> str:
    if ref.digest is not None and ref.digest != digest:
        raise ConfigError(
            f"cannot push image {digest} to {ref}: the reference pins another digest; "
            "drop @DIGEST or give a tag"
        )
    return ref.tag or digest


def push_image(
    image: Image,
    ref: Reference | str,
    *,
    tls_verify: bool = True,
    progress: Progress | None = None,
    mount_from: Sequence[str] = (),
    client: RegistryClient | None = None,
    chunked_threshold: int = CHUNKED_THRESHOLD,
    chunk_size: int = CHUNK_SIZE,
) -> PushResult:
    """Push blobs the registry lacks, then the manifest under ``ref``'s tag (or digest).

    ``mount_from`` names repositories of the same registry to mount blobs
    from; the repository of a registry base image is added automatically.
    ``progress(digest, sent, total)`` follows each upload.
    """
    return push_index(
        [image],
        ref,
        tls_verify=tls_verify,
        progress=progress,
        mount_from=mount_from,
        client=client,
        chunked_threshold=chunked_threshold,
        chunk_size=chunk_size,
        as_index=False,
    )


def push_index(
    images: Sequence[Image],
    ref: Reference | str,
    *,
    tls_verify: bool = True,
    progress: Progress | None = None,
    mount_from: Sequence[str] = (),
    client: RegistryClient | None = None,
    chunked_threshold: int = CHUNKED_THRESHOLD,
    chunk_size: int = CHUNK_SIZE,
    as_index: bool = True,
) -> PushResult:
    """Push several platform images by digest, then an OCI index naming them under ``ref``."""
    r = as_reference(ref)
    if not images:
        raise BuildError(f"nothing to push to {r}: no images were given")
    if as_index:
        platforms = [_fmt_platform(img.platform) for img in images]
        dupes = sorted({p for p in platforms if platforms.count(p) > 1})
        if dupes:
            raise BuildError(f"cannot push an index with two images for {', '.join(dupes)}")
    cl = _client_for(r, tls_verify, client)
    result = PushResult(reference=str(r))
    mounts = [*mount_from, *_auto_mounts(images, r)]
    pusher = _Pusher(cl, r.repository, mounts, progress, chunked_threshold, chunk_size, result)
    try:
        for image in images:
            for blob in _image_blobs(image):
                pusher.push_blob(blob)
        if not as_index:
            image = images[0]
            ident = _target_ident(r, image.digest())
            result.manifest_digest = pusher.put_manifest(
                ident, image.manifest_bytes(), manifest_media_type(image)
            )
            return result
        entries = []
        for image in images:
            pusher.put_manifest(image.digest(), image.manifest_bytes(), manifest_media_type(image))
            entries.append(index_entry(image, manifest_descriptor(image), None))
        index = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        ident = _target_ident(r, sha256_bytes(index))
        result.manifest_digest = pusher.put_manifest(ident, index, OCI_INDEX)
        return result
    finally:
        if client is None:
            cl.close()


__all__ = [
    "PushResult",
    "Reference",
    "RegistryClient",
    "RegistryImage",
    "parse_reference",
    "push_image",
    "push_index",
    "read_registry_image",
]
