"""A LitServe service: each input vector scaled by the model's weights."""

import json
import os
from pathlib import Path

import litserve as ls
import torch


class Scaler(ls.LitAPI):
    def setup(self, device):
        weights = json.loads(Path(__file__).with_name("weights.json").read_text())
        self.weights = torch.tensor(weights, device=device)

    def decode_request(self, request):
        return torch.tensor(request["input"], dtype=torch.float32)

    def predict(self, x):
        return x * self.weights

    def encode_response(self, output):
        return {"output": output.tolist()}


if __name__ == "__main__":
    server = ls.LitServer(Scaler(), accelerator="cpu")
    server.run(port=int(os.environ.get("PORT", 8000)))
