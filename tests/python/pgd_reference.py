"""PGD in plain PyTorch, written the way torchattacks does it, on the same ConvNet as doublewin's
(dwnet.ConvNet: conv3x3-BN-ReLU blocks with max-pooling, global average pooling, linear head
`fc`), for the parity test. Writes weights.safetensors (the network) and reference.safetensors
(x, y, the random start, PyTorch's adversarial batch, and the normalisation).

usage: pgd_reference.py OUT_DIR
"""
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

from dwnet import ConvNet

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)

model = ConvNet()
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
model.eval()
mean, std = torch.tensor([0.3]).view(1, 1, 1, 1), torch.tensor([0.35]).view(1, 1, 1, 1)
eps, step, steps = 0.1, 0.025, 10
x = torch.rand(16, 1, 28, 28)
y = torch.randint(0, 10, (16,))
start = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)

adv = start.clone()
for _ in range(steps):
    adv.requires_grad_(True)
    loss = F.cross_entropy(model((adv - mean) / std), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, adv)
    adv = adv.detach() + step * grad.sign()
    adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)

save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "weights.safetensors"))
save_file({"x": x, "y": y, "start": start, "adv": adv, "mean": mean.flatten(), "std": std.flatten()},
          str(out / "reference.safetensors"))
