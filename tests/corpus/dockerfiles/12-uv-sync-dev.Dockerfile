# Pattern: uv copied from ghcr.io/astral-sh/uv:latest, `uv sync --frozen` with
# the dev group, project venv in /app/.venv, runs as root.
# How common: fast-growing since 2024; the uv docs' first example is copied
# almost verbatim into many new PyTorch projects.
FROM python:3.12-slim
COPY --from=ghcr.io/astral-sh/uv:latest /uv /uvx /bin/
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen
COPY . .
ENV PATH="/app/.venv/bin:$PATH"
CMD ["python", "-m", "service"]
