# Pattern: Hugging Face / W&B tokens passed as ARG and ENV, model weights
# fetched with ADD <url>, a separate RUN chown -R after COPY.
# How common: tokens in ENV appear in a noticeable share of LLM-serving repos;
# ADD <url> for weights and RUN chown -R are both frequent.
FROM python:3.11-slim
ARG HF_TOKEN
ENV WANDB_API_KEY=0123456789abcdef TOKENIZERS_PARALLELISM=false
ENV HF_TOKEN=${HF_TOKEN}
RUN pip install --no-cache-dir torch==2.7.1 transformers==4.53.0
ADD https://huggingface.co/some-org/some-model/resolve/main/model.safetensors /models/model.safetensors
WORKDIR /app
COPY . /app
RUN useradd -m app
RUN chown -R app:app /app /models
USER app
CMD ["python", "serve.py"]
