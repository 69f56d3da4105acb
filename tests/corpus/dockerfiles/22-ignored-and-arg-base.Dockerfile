# Pattern: ARG-selected base image before FROM (CPU/GPU switch), inline
# suppressions, a named builder stage and a final stage FROM that builder.
# How common: ARG-parametrised bases are common in projects that ship CPU and
# GPU images from one file; per-line lint suppressions are rarer.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS base
# torchslim: ignore=TS103
RUN pip install torch==2.7.1 --index-url https://download.pytorch.org/whl/cpu
WORKDIR /app

# torchslim: ignore=TS106,TS108
FROM base AS final
COPY . .
CMD ["python", "main.py"]
