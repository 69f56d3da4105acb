# Pattern: miniconda base, `conda env create` from environment.yml, no
# `conda clean`, activation through SHELL.
# How common: common in scientific/ML research repos (conda remains the second
# most frequent installer after pip in PyTorch Dockerfiles).
FROM continuumio/miniconda3:24.7.1-0
WORKDIR /opt/project
COPY environment.yml .
RUN conda env create -f environment.yml
SHELL ["conda", "run", "-n", "project", "/bin/bash", "-c"]
COPY . .
ENTRYPOINT ["conda", "run", "--no-capture-output", "-n", "project", "python", "main.py"]
