# Pattern: miniforge base, `conda install pytorch cpuonly` with the cache
# cleaned in the same RUN, non-root user.
# How common: less common than pip since PyTorch stopped publishing conda
# packages (2.6); still in many older but maintained repos.
FROM condaforge/miniforge3:24.3.0-0
RUN conda install -y -c conda-forge pytorch-cpu=2.3 numpy \
    && conda clean -afy
RUN useradd --uid 1001 --create-home worker
WORKDIR /home/worker/app
COPY --chown=1001:1001 . .
USER worker
HEALTHCHECK CMD ["python", "-c", "import torch"]
CMD ["python", "run.py"]
