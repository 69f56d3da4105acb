"""A Flask 2.0 service run as `python app.py`, as its Dockerfile did: Werkzeug left free.

Environment switches make the ways a service fails to be one (tests/e2e/test_served_proof.py):
HOST and PORT where it listens, DOWNLOAD_AT_START fetches weights from a hub at start,
NEVER_LISTEN loads and then waits forever.
"""

from __future__ import annotations

import os
import time

import torch
from flask import Flask, jsonify, request

if os.environ.get("DOWNLOAD_AT_START"):
    import urllib.request

    urllib.request.urlopen("https://huggingface.co/api/models/bert-base-uncased", timeout=5)

model = torch.nn.Linear(4, 2)
torch.nn.init.constant_(model.weight, 0.5)
torch.nn.init.zeros_(model.bias)

app = Flask(__name__)


@app.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return jsonify(status="ok", torch=torch.__version__)


@app.post("/predict")
def predict():  # type: ignore[no-untyped-def]
    rows = torch.tensor(request.get_json()["inputs"], dtype=torch.float32)
    with torch.inference_mode():
        return jsonify(outputs=model(rows).tolist())


if __name__ == "__main__":
    if os.environ.get("NEVER_LISTEN"):
        time.sleep(3600)
    app.run(host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", "5000")))
