# Pattern: nvidia/cuda *-runtime Ubuntu base, apt python3-pip, then pip installs
# the default (CUDA-bundling) torch wheel from PyPI.
# How common: very common for GPU services; every such image stores the CUDA
# libraries twice (once from the base, once from the nvidia-* wheels).
FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04

ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y python3 python3-pip
RUN pip3 install torch==2.5.1 torchvision==0.20.1
WORKDIR /srv
COPY . .
CMD ["python3", "server.py"]
