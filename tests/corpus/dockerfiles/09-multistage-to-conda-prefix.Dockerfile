# Pattern: packages built on python:3.10-slim copied into a pytorch/pytorch
# runtime, whose interpreter lives in /opt/conda, not /usr/local.
# How common: occasional; appears when people "reuse the torch from the base"
# and build the rest elsewhere.
FROM python:3.10-slim AS deps
RUN pip install --no-cache-dir --prefix=/install transformers==4.44.2

FROM pytorch/pytorch:2.4.1-cuda12.1-cudnn9-runtime
COPY --from=deps /install/lib/python3.10/site-packages /usr/local/lib/python3.10/site-packages
WORKDIR /app
COPY . .
USER 1000
CMD ["python", "infer.py"]
