# Pattern: single stage on a pytorch/pytorch *-devel image, requirements installed
# with plain pip, code copied last, runs as root.
# How common: very common in research repos (the devel tag is picked "to be safe"
# so that CUDA extensions compile); seen in roughly 1 in 4 pytorch/pytorch Dockerfiles.
FROM pytorch/pytorch:2.1.0-cuda12.1-cudnn8-devel

WORKDIR /workspace
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
CMD ["python", "train.py"]
