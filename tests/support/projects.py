"""Project trees for tests/unit/project: real lock fixtures and small written projects."""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "project" / "fixtures"


def fixture_project(name: str, dest: Path) -> Path:
    """A copy of ``fixtures/<name>`` (real lock files) that a test may change."""
    target = dest / name
    shutil.copytree(FIXTURES / name, target)
    return target


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``{relative path: content}`` under ``root``; returns ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


SEED_DOCKERFILE = """\
# syntax=docker/dockerfile:1
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim AS builder
WORKDIR /build
COPY requirements-prod.txt .
RUN python -m venv /opt/venv \\
 && /opt/venv/bin/pip install --no-cache-dir -r requirements-prod.txt

FROM builder AS test
COPY requirements-dev.txt .
RUN /opt/venv/bin/pip install -r requirements-dev.txt
COPY . .
RUN /opt/venv/bin/pytest -q

FROM python:${PYTHON_VERSION}-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \\
    PYTHONUNBUFFERED=1 \\
    MODEL_PATH=/srv/weights/classifier.pt \\
    OMP_NUM_THREADS=2
RUN useradd --uid 10001 --create-home svc
WORKDIR /srv
COPY --from=builder /opt/venv /opt/venv
COPY app/ ./app/
COPY weights/classifier.pt ./weights/classifier.pt
USER svc
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=2s CMD curl -fsS http://localhost:8080/healthz || exit 1
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8080"]
"""

SEED_MAIN = """\
import os

import torch
from fastapi import FastAPI

app = FastAPI()
# The Dockerfile points MODEL_PATH at its WORKDIR (/srv); init moves it under /app.
model = torch.jit.load(os.environ.get("MODEL_PATH", "weights/classifier.pt"), map_location="cpu")


@app.get("/healthz")
def health() -> dict[str, str]:
    return {"status": "ok"}
"""


def seed_project(root: Path, weights: bytes = b"not really weights") -> Path:
    """A service laid out as the seed repos are: a multi-stage Dockerfile, prod and dev
    requirement files, weights copied by the Dockerfile, tests and scripts beside it."""
    return write_tree(
        root,
        {
            "Dockerfile": SEED_DOCKERFILE,
            "requirements-prod.txt": "torch==2.13.0\nfastapi==0.115.0\nuvicorn==0.30.6\n",
            "requirements-dev.txt": "-r requirements-prod.txt\npytest==8.3.3\nhttpx\n",
            "app/__init__.py": "",
            "app/main.py": SEED_MAIN,
            "weights/classifier.pt": weights,
            "tests/test_app.py": "def test_ok() -> None:\n    assert True\n",
            "scripts/train.py": "print('training')\n",
            "README.md": "# seed\n",
            ".env": "API_TOKEN=hunter2\n",
        },
    )
