"""Text classification with transformers, from a model folder in the image (no hub access)."""

from __future__ import annotations

import os

import torch
import transformers
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer

MODEL_DIR = os.environ.get("MODEL_DIR", "model")
tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
model = AutoModelForSequenceClassification.from_pretrained(MODEL_DIR).eval()

app = FastAPI(title="textcls")


class Text(BaseModel):
    text: str


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "transformers": transformers.__version__}


@app.post("/classify")
def classify(req: Text) -> dict[str, object]:
    enc = tokenizer(req.text, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**enc).logits[0]
    return {
        "input_ids": enc["input_ids"][0].tolist(),
        "label": model.config.id2label[int(logits.argmax())],
        "logits": [round(float(v), 4) for v in logits],
    }
