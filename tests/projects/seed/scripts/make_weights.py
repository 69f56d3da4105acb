"""Write weights/classifier.pt: a TorchScript linear layer with fixed weights (no training).

scores = x @ W.T + b with W = [[0.25] * 4, [-0.5, 0, 0, 0.5]] and b = [0, 1.5]:
[1, 2, 3, 4] → [2.5, 3.0] (positive), [4, 3, 2, 1] → [2.5, 0.0] (negative).
"""

import torch

layer = torch.nn.Linear(4, 2)
with torch.no_grad():
    layer.weight.copy_(torch.tensor([[0.25, 0.25, 0.25, 0.25], [-0.5, 0.0, 0.0, 0.5]]))
    layer.bias.copy_(torch.tensor([0.0, 1.5]))
torch.jit.save(torch.jit.script(layer.eval()), "weights/classifier.pt")
