"""A service from a conda project: the mean and norm of a vector, with torch and numpy."""

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Vector(BaseModel):
    values: list[float]


@app.get("/ping")
def ping() -> dict[str, str]:
    return {"numpy": np.__version__, "torch": torch.__version__}


@app.post("/stats")
def stats(vector: Vector) -> dict[str, float]:
    t = torch.from_numpy(np.asarray(vector.values, dtype=np.float32))
    return {"mean": float(t.mean()), "norm": float(torch.linalg.vector_norm(t))}


if __name__ == "__main__":
    uvicorn.run(app, host="0.0.0.0", port=5000)
