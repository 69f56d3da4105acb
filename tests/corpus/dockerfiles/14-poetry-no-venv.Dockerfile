# Pattern: poetry installed with pip, virtualenvs disabled, `poetry install`
# without excluding the dev group, on a pytorch runtime base.
# How common: common (poetry is the third most frequent installer); most files
# forget --only main / --without dev.
FROM pytorch/pytorch:2.2.2-cuda12.1-cudnn8-runtime
ENV POETRY_VIRTUALENVS_CREATE=false POETRY_NO_INTERACTION=1
RUN pip install poetry==1.8.3
WORKDIR /app
COPY pyproject.toml poetry.lock ./
RUN poetry install --no-root
COPY . .
RUN poetry install
CMD ["python", "-m", "pipeline"]
