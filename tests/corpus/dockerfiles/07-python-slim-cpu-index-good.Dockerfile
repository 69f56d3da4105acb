# Pattern: the recommended multi-stage recipe: venv at /opt/venv in a builder,
# CPU torch from the PyTorch CPU index, copy the venv, numeric USER, HEALTHCHECK.
# How common: rare in the wild (a few percent of PyTorch Dockerfiles), the
# target shape that `torchslim dockerfile` generates.
ARG PY=3.11
FROM python:${PY}-slim AS builder
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1
COPY requirements.txt /tmp/requirements.txt
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.7.1+cpu \
 && pip install -r /tmp/requirements.txt

FROM python:${PY}-slim AS runtime
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY --chown=0:0 src/ /app/src/
USER 1000:1000
EXPOSE 8000
HEALTHCHECK --interval=30s CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health')"]
CMD ["python", "-m", "src.serve"]
