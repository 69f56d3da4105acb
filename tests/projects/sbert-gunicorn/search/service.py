"""Semantic search over the posted documents: a sentence-transformers encoder, ranked by
scikit-learn's cosine similarity. GET /health, POST /search {"query", "docs"}."""

from __future__ import annotations

import os

import sentence_transformers
import sklearn
from flask import Flask, jsonify, request
from sentence_transformers import SentenceTransformer
from sklearn.metrics.pairwise import cosine_similarity

MODEL_DIR = os.environ.get("MODEL_DIR", os.path.join(os.path.dirname(__file__), "..", "model"))
model = SentenceTransformer(MODEL_DIR, device="cpu")
app = Flask(__name__)


@app.get("/health")
def health():
    return jsonify(
        status="ok",
        pid=os.getpid(),
        sentence_transformers=sentence_transformers.__version__,
        sklearn=sklearn.__version__,
    )


@app.post("/search")
def search():
    body = request.get_json()
    docs = model.encode(body["docs"])
    scores = cosine_similarity(model.encode([body["query"]]), docs)[0]
    return jsonify(
        best=body["docs"][int(scores.argmax())],
        scores=[round(float(s), 4) for s in scores],
        dimension=int(docs.shape[1]),
    )
