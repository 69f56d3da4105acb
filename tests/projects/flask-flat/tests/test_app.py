from app import app


def test_health() -> None:
    assert app.test_client().get("/healthz").json["status"] == "ok"
