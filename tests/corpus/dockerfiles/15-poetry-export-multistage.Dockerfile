# Pattern: poetry only in the builder (`poetry export` to requirements.txt),
# plain pip in the runtime stage, main group only.
# How common: a well-known blog recipe; moderately common in production repos.
FROM python:3.11-slim AS export
RUN pip install --no-cache-dir poetry==1.8.3 poetry-plugin-export==1.8.0
WORKDIR /src
COPY pyproject.toml poetry.lock ./
RUN poetry export --only main -f requirements.txt -o requirements.txt

FROM python:3.11-slim
WORKDIR /app
COPY --from=export /src/requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN groupadd -g 1000 app && useradd -u 1000 -g app app
USER 1000:1000
EXPOSE 7860
HEALTHCHECK CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 7860), 2)"]
CMD ["python", "app.py"]
