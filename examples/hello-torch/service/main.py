"""HTTP service: GET /health, POST /predict.

The model is a TorchScript file made by ``make_model.py``; its path can be
overridden with MODEL_PATH.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "model" / "model.pt"
MODEL_PATH = Path(os.environ.get("MODEL_PATH", DEFAULT_MODEL))

# One thread is plenty for a tiny model and keeps start-up fast in containers.
torch.set_num_threads(1)
model = torch.jit.load(str(MODEL_PATH), map_location="cpu").eval()

app = FastAPI(title="hello-torch")


class PredictRequest(BaseModel):
    inputs: list[list[float]]


class PredictResponse(BaseModel):
    outputs: list[list[float]]


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "torch": torch.__version__}


@app.post("/predict", response_model=PredictResponse)
def predict(req: PredictRequest) -> PredictResponse:
    x = torch.tensor(req.inputs, dtype=torch.float32)
    if x.ndim != 2 or x.shape[1] != 4:
        raise HTTPException(status_code=422, detail="inputs must be rows of 4 numbers")
    with torch.inference_mode():
        y = model(x)
    return PredictResponse(outputs=y.tolist())
