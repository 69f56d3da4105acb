# Pattern: python:latest single-stage image that installs gcc/g++ to build a
# C extension next to torch and keeps them.
# How common: common when a dependency has no wheel (e.g. older pycocotools,
# detectron2); the compilers are almost never removed afterwards.
FROM python:latest
RUN apt-get update && apt-get install -y --no-install-recommends gcc g++ \
    && rm -rf /var/lib/apt/lists/*
RUN python -m pip install --no-cache-dir torch torchvision --index-url https://download.pytorch.org/whl/cpu
RUN python -m pip install --no-cache-dir pycocotools
COPY . /app
WORKDIR /app
USER nobody
CMD ["python", "detect.py"]
