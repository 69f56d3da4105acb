"""Current OpenCV on numpy 2.x: decode, shrink by area, blur, encode back to PNG."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import torch
from fastapi import FastAPI, HTTPException, Request

app = FastAPI(title="blur")


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "opencv": cv2.__version__, "numpy": np.__version__}


@app.post("/shrink")
async def shrink(request: Request) -> dict[str, object]:
    """The posted image resized to 2x2 by area (each output pixel averages its block)."""
    bgr = cv2.imdecode(np.frombuffer(await request.body(), dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise HTTPException(status_code=415, detail="not an image")
    small = cv2.resize(bgr, (2, 2), interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(bgr, (3, 3), 0)
    ok, png = cv2.imencode(".png", small)
    assert ok
    rgb = torch.from_numpy(small[:, :, ::-1].copy())  # BGR → RGB, as a model would take it
    return {
        "rgb": rgb.reshape(-1, 3).tolist(),
        "blur_levels": int(len(np.unique(blurred.reshape(-1, 3), axis=0))),
        "png": base64.b64encode(png.tobytes()).decode(),
    }
