from app.main import app
from fastapi.testclient import TestClient


def test_predict() -> None:
    r = TestClient(app).post("/predict", json={"inputs": [[1, 2, 3, 4]]})
    assert r.json()["labels"] == ["positive"]
