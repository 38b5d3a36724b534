"""Writes a torchvision model's state dict as safetensors (in one of the key layouts found in
the wild) plus an input batch and PyTorch's logits for it, for doublewin's import tests.

usage: torchvision_reference.py OUT_DIR ARCH LAYOUT
  ARCH   resnet18 | resnet50
  LAYOUT plain       torchvision keys (num_batches_tracked included)
         module      keys prefixed with "module." (DataParallel)
         robustness  robustness library: module.model.* and module.attacker.model.* copies,
                     normaliser buffers module.normalizer.new_mean/new_std
"""
import sys
from pathlib import Path

import torch
import torchvision
from safetensors.torch import save_file

out, arch, layout = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
out.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
model = getattr(torchvision.models, arch)(weights=None, num_classes=10)
# Non-trivial BN statistics, so eval-mode outputs depend on every buffer being placed.
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.1, 0.1)
model.eval()
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
x = torch.rand(2, 3, 64, 64)
with torch.no_grad():
    logits = model((x - mean) / std)

sd = {k: v.contiguous() for k, v in model.state_dict().items()}
if layout == "module":
    sd = {f"module.{k}": v for k, v in sd.items()}
elif layout == "robustness":
    both = {}
    for k, v in sd.items():
        both[f"module.model.{k}"] = v
        both[f"module.attacker.model.{k}"] = v.clone()
    both["module.normalizer.new_mean"] = mean.view(3, 1, 1).clone()
    both["module.normalizer.new_std"] = std.view(3, 1, 1).clone()
    both["module.attacker.normalize.new_mean"] = mean.view(3, 1, 1).clone()
    both["module.attacker.normalize.new_std"] = std.view(3, 1, 1).clone()
    sd = both
elif layout != "plain":
    sys.exit(f"unknown layout {layout}")
save_file(sd, str(out / "weights.safetensors"))
save_file({"x": x, "logits": logits}, str(out / "reference.safetensors"))
