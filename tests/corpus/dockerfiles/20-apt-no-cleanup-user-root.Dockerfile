# Pattern: Debian base with apt-get update/install in separate RUNs, no list
# cleanup, no --no-install-recommends, explicit USER root at the end.
# How common: very common across all Dockerfiles (hadolint's most frequent
# findings); USER root at the end appears after a "temporary" root step.
FROM debian:bookworm-20240701
RUN apt-get update
RUN apt-get install -y python3 python3-pip python3-venv libgomp1
RUN python3 -m venv /venv && /venv/bin/pip install --no-cache-dir torch==2.4.0 --index-url https://download.pytorch.org/whl/cpu
USER 1000
COPY app.py /app.py
USER root
CMD ["/venv/bin/python", "/app.py"]
