"""Writes weights.pt: a TorchScript linear layer with fixed weights (no training needed).

outputs = x @ W.T + b, W = [[1, 0, 0, 0], [0, 0.5, 0.5, 0]], b = [0, -1]:
[1, 2, 3, 4] → [1.0, 1.5].
"""

import torch

layer = torch.nn.Linear(4, 2)
with torch.no_grad():
    layer.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0]]))
    layer.bias.copy_(torch.tensor([0.0, -1.0]))
torch.jit.save(torch.jit.script(layer.eval()), "weights.pt")
