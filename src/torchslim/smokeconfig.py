"""The smoke requests a project names for the served proof (``requests`` in the config).

One line in ``torchslim.toml`` names the seed's kind of check, an upload to /predict::

    requests = [{ path = "/predict", upload = "samples/cat.jpg" }]

``upload`` sends a project file as a multipart form field (``field``, default ``file``,
what FastAPI's ``UploadFile`` and Flask's ``request.files`` read); ``body`` sends a
project file as the raw body; ``json`` sends a value as JSON. The method is POST when
anything is sent, else GET; ``status`` is the answer expected (200).
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

BOUNDARY = "torchslim-proof-boundary-7d1f"


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class RequestConfig(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, alias_generator=_kebab
    )

    path: Annotated[str, Field(pattern=r"^/")]
    method: Annotated[str, Field(pattern=r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)$")] | None = (
        None
    )
    upload: Annotated[str, Field(min_length=1)] | None = None
    field: Annotated[str, Field(pattern=r"^[\w.-]+$")] = "file"
    body: Annotated[str, Field(min_length=1)] | None = None
    json_body: Any = Field(default=None, alias="json")
    content_type: str | None = None
    status: Annotated[int, Field(ge=100, le=599)] = 200

    @model_validator(mode="after")
    def _one_payload(self) -> RequestConfig:
        given = {"upload": self.upload, "body": self.body, "json": self.json_body}
        sent = [k for k, v in given.items() if v is not None]
        if len(sent) > 1:
            raise ValueError(f"a request sends one of upload, body or json, not {sent}")
        return self

    def files(self) -> list[str]:
        """The project files it sends."""
        return [f for f in (self.upload, self.body) if f]

    def wire(self, root: Path) -> tuple[str, bytes | None, dict[str, str]]:
        """(method, body, headers), reading the project files it names from ``root``."""
        headers: dict[str, str] = {}
        body: bytes | None = None
        if self.upload:
            data = (root / self.upload).read_bytes()
            kind = mimetypes.guess_type(self.upload)[0] or "application/octet-stream"
            name = Path(self.upload).name.replace('"', "")
            body = (
                (
                    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{self.field}"; '
                    f'filename="{name}"\r\nContent-Type: {kind}\r\n\r\n'
                ).encode()
                + data
                + f"\r\n--{BOUNDARY}--\r\n".encode()
            )
            headers["Content-Type"] = f"multipart/form-data; boundary={BOUNDARY}"
        elif self.body:
            body = (root / self.body).read_bytes()
            headers["Content-Type"] = self.content_type or "application/octet-stream"
        elif self.json_body is not None:
            body = json.dumps(self.json_body).encode()
            headers["Content-Type"] = "application/json"
        if self.content_type and not self.upload:
            headers["Content-Type"] = self.content_type
        method = self.method or ("POST" if body is not None else "GET")
        return method, body, headers
