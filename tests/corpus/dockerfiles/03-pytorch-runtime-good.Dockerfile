# Pattern: pinned pytorch/pytorch *-runtime base used as-is (conda torch), no
# extra torch install, numeric non-root user, health check.
# How common: the careful minority; most runtime-based files stop at
# `pip install -r requirements.txt` without USER or HEALTHCHECK.
FROM pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY --chown=0:0 app/ /app/app/
RUN useradd --uid 10001 --no-create-home svc
USER 10001
EXPOSE 8080
HEALTHCHECK CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz')"]
CMD ["python", "-m", "app"]
