"""OpenCV 4.8 on numpy 1.x: decode a PNG, convert it to gray, hand the pixels to torch."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from fastapi import FastAPI, HTTPException, Request

app = FastAPI(title="edges")


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "opencv": cv2.__version__, "numpy": np.__version__}


@app.post("/gray")
async def gray(request: Request) -> dict[str, object]:
    buf = np.frombuffer(await request.body(), dtype=np.uint8)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise HTTPException(status_code=415, detail="not an image")
    g = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    edges = cv2.Canny(g, 10, 50)
    return {
        "shape": list(bgr.shape),
        "levels": sorted(int(v) for v in np.unique(g)),
        "mean": float(torch.from_numpy(g).to(torch.float32).mean()),
        "edge_columns": sorted({int(x) for x in np.nonzero(edges)[1]}),
    }
