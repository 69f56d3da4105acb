# Pattern: uv with cache mounts and bind mounts in a builder, --no-dev, the
# project venv copied into a slim runtime, pinned uv image.
# How common: the uv docs' "intermediate layers" recipe; uncommon but rising.
FROM python:3.12-slim-bookworm AS builder
COPY --from=ghcr.io/astral-sh/uv:0.8.4 /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
WORKDIR /app
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-install-project --no-dev
COPY . /app
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev

FROM python:3.12-slim-bookworm
COPY --from=builder --chown=0:0 /app /app
ENV PATH="/app/.venv/bin:$PATH"
USER 65532:65532
HEALTHCHECK CMD ["python", "-c", "import app"]
CMD ["python", "-m", "app"]
