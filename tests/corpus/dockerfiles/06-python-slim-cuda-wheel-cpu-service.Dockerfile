# Pattern: python:*-slim base for a CPU-only API, but `pip install torch` pulls
# the default CUDA wheel from PyPI (about 2.5 GB of nvidia-* wheels unused).
# How common: extremely common in FastAPI/Flask model services; the CPU index
# (--index-url .../whl/cpu) is used in a minority of files.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir torch fastapi uvicorn
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
EXPOSE 8000
CMD ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "8000"]
