"""A FastAPI service that uses scipy >= 1.16 and matplotlib without Tk (issue 22).

scipy's own ``scipy.linalg._matfuncs_sqrtm_triu`` does not import on its own (a circular
import inside scipy) and matplotlib's ``_tkagg`` needs Tk, which the image lacks; the
service uses neither directly, so the image must be proven with warnings, not refused.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.linalg  # noqa: E402
import torch  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.responses import Response  # noqa: E402

app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    return {"scipy": scipy.__version__, "matplotlib": matplotlib.__version__}


@app.post("/sqrtm")
def sqrtm(matrix: list[list[float]]) -> dict[str, list[list[float]]]:
    root = scipy.linalg.sqrtm(np.asarray(matrix, dtype=np.float64))
    squared = torch.from_numpy(np.real(root)) @ torch.from_numpy(np.real(root))
    return {"sqrtm": np.real(root).round(6).tolist(), "squared": squared.round(decimals=6).tolist()}


@app.get("/plot.png")
def plot() -> Response:
    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([0, 1, 2], [0, 1, 4])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return Response(buf.getvalue(), media_type="image/png")
