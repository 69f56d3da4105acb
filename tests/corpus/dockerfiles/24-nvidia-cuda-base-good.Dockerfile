# Pattern: nvidia/cuda *-base (only cudart and the driver hooks) under the
# CUDA torch wheel, apt done right, numeric user.
# How common: uncommon; the right way to use nvidia/cuda with pip torch, since
# the wheels already carry cuBLAS/cuDNN.
FROM nvidia/cuda:12.6.3-base-ubuntu24.04
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir torch==2.7.1 --index-url https://download.pytorch.org/whl/cu126
COPY --chown=0:0 serve.py /app/serve.py
USER 1000:1000
EXPOSE 9000
HEALTHCHECK CMD ["/opt/venv/bin/python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:9000/')"]
CMD ["/opt/venv/bin/python", "/app/serve.py"]
