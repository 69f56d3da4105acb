"""torchvision's image decoding (its bundled libpng/libjpeg), transforms, models and its
C++ operators (nms), behind FastAPI. Runs on a GPU when there is one, else on CPU."""

from __future__ import annotations

import torch
import torchvision
from fastapi import FastAPI, Request
from pydantic import BaseModel
from torchvision.io import ImageReadMode, decode_image
from torchvision.models import mobilenet_v3_small
from torchvision.ops import nms
from torchvision.transforms import v2

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(0)
# Randomly initialised: the service's answers are about shapes and operators, not classes.
model = mobilenet_v3_small(num_classes=4).eval().to(DEVICE)
preprocess = v2.Compose(
    [v2.Resize((64, 64), antialias=True), v2.ToDtype(torch.float32, scale=True)]
)

app = FastAPI(title="vision")


class Boxes(BaseModel):
    boxes: list[list[float]]
    scores: list[float]
    iou: float = 0.5


@app.get("/health")
def health() -> dict[str, object]:
    return {
        "status": "ok",
        "device": DEVICE,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda_build": torch.version.cuda,
    }


@app.post("/classify")
async def classify(request: Request) -> dict[str, object]:
    data = torch.frombuffer(bytearray(await request.body()), dtype=torch.uint8)
    image = decode_image(data, mode=ImageReadMode.RGB)  # C, H, W uint8
    batch = preprocess(image).unsqueeze(0).to(DEVICE)
    with torch.inference_mode():
        probs = model(batch).softmax(dim=1)[0]
    return {
        "decoded": list(image.shape),
        "pixel0": image[:, 0, 0].tolist(),
        "classes": len(probs),
        "prob_sum": round(float(probs.sum()), 4),
    }


@app.post("/nms")
def suppress(req: Boxes) -> dict[str, list[int]]:
    keep = nms(torch.tensor(req.boxes), torch.tensor(req.scores), req.iou)
    return {"keep": keep.tolist()}
