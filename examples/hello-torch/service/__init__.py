"""hello-torch: a tiny TorchScript model behind FastAPI."""
