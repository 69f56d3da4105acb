"""Dev tests for the example (need requirements-dev.txt + torch on the host)."""

from fastapi.testclient import TestClient

from service.main import app


def test_predict() -> None:
    client = TestClient(app)
    assert client.get("/health").status_code == 200
    r = client.post("/predict", json={"inputs": [[1, 2, 3, 4]]})
    assert r.json() == {"outputs": [[0.5, 1.0]]}
