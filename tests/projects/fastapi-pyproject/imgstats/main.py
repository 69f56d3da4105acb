"""POST an image, get its size and per-channel statistics.

Pillow decodes the upload, numpy holds the pixels, torch reduces them: the three
libraries whose binary wheels most often break slimmed images.
"""

from __future__ import annotations

import io

import numpy as np
import PIL
import torch
from fastapi import FastAPI, HTTPException, Request
from PIL import Image, UnidentifiedImageError

app = FastAPI(title="imgstats")
CHANNELS = "RGB"


@app.get("/health")
def health() -> dict[str, str]:
    return {
        "status": "ok",
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "torch": torch.__version__,
    }


@app.post("/describe")
async def describe(request: Request) -> dict[str, object]:
    try:
        image = Image.open(io.BytesIO(await request.body())).convert("RGB")
    except UnidentifiedImageError as exc:
        raise HTTPException(status_code=415, detail="not an image") from exc
    pixels = torch.from_numpy(np.asarray(image).copy()).to(torch.float32)  # H, W, C
    column_means = pixels.mean(dim=0)  # W, C
    return {
        "format": "RGB",
        "size": list(image.size),
        "mean": [round(float(v), 3) for v in pixels.mean(dim=(0, 1))],
        "dominant": "".join(CHANNELS[i] for i in column_means.argmax(dim=1).tolist()),
    }
