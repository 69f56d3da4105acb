# Pattern: nvidia/cuda *-devel base, build-essential and a deadsnakes Python,
# torch from the cu121 index, BuildKit cache mount for pip.
# How common: common in repos with custom CUDA kernels (flash-attn, xformers
# builds); the devel image usually stays as the final image.
# syntax=docker/dockerfile:1
FROM nvidia/cuda:12.1.1-cudnn8-devel-ubuntu22.04
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && \
    apt-get install -y --no-install-recommends build-essential software-properties-common && \
    add-apt-repository -y ppa:deadsnakes/ppa && \
    apt-get install -y --no-install-recommends python3.11 python3.11-dev python3-pip && \
    rm -rf /var/lib/apt/lists/*
RUN --mount=type=cache,target=/root/.cache/pip \
    python3.11 -m pip install torch --index-url https://download.pytorch.org/whl/cu121
WORKDIR /src
COPY . .
RUN python3.11 -m pip install --no-cache-dir -e .
CMD ["python3.11", "-m", "kernels.bench"]
