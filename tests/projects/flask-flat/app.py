"""Flask service in a flat repository: app.py, the weights and requirements side by side."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import PIL
import torch
from flask import Flask, abort, jsonify, request
from PIL import Image

HERE = Path(__file__).resolve().parent
model = torch.jit.load(os.environ.get("WEIGHTS", str(HERE / "weights.pt")), map_location="cpu")
model.eval()

app = Flask(__name__)


@app.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return jsonify(status="ok", numpy=np.__version__, pillow=PIL.__version__)


@app.post("/predict")
def predict():  # type: ignore[no-untyped-def]
    rows = np.asarray(request.get_json()["inputs"], dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != 4:
        abort(422)
    with torch.inference_mode():
        out = model(torch.from_numpy(rows))
    return jsonify(outputs=out.numpy().round(4).tolist())


@app.post("/thumbnail")
def thumbnail():  # type: ignore[no-untyped-def]
    """Shrink the posted image to 2x1 (box filter) and return its pixels as numpy sees them."""
    image = Image.open(io.BytesIO(request.get_data())).convert("RGB")
    small = np.asarray(image.resize((2, 1), Image.Resampling.BOX))
    return jsonify(size=list(image.size), pixels=small.reshape(-1, 3).tolist())
