"""Make model/model.pt: a tiny deterministic TorchScript model (no downloads).

y = x @ W.T + b with fixed weights, so a test can check the exact output.
Run: python make_model.py
"""

from pathlib import Path

import torch


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0, 0.0, -1.0, 0.5], [0.0, 2.0, 0.0, -0.5]]))
            self.linear.bias.copy_(torch.tensor([0.5, -1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x))


if __name__ == "__main__":
    out = Path(__file__).parent / "model" / "model.pt"
    out.parent.mkdir(exist_ok=True)
    torch.jit.script(Tiny()).save(str(out))
    print(f"wrote {out}")
