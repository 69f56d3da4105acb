"""A classifier service shaped like the seed repositories: weights at MODEL_PATH."""

from __future__ import annotations

import os

import torch
from fastapi import FastAPI
from pydantic import BaseModel

# The Dockerfile points MODEL_PATH at its WORKDIR (/srv); `torchslim init` moves it to /app.
MODEL_PATH = os.environ.get("MODEL_PATH", "weights/classifier.pt")
model = torch.jit.load(MODEL_PATH, map_location="cpu").eval()
LABELS = ["negative", "positive"]

app = FastAPI(title="seed-classifier")


class Features(BaseModel):
    inputs: list[list[float]]


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
def predict(req: Features) -> dict[str, list[str] | list[list[float]]]:
    with torch.inference_mode():
        scores = model(torch.tensor(req.inputs, dtype=torch.float32))
    return {"scores": scores.tolist(), "labels": [LABELS[i] for i in scores.argmax(1).tolist()]}
