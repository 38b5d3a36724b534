"""doublewin networks in PyTorch: one model definition shared by every parity script.

`load(path)` rebuilds a network saved by doublewin (`Network::save`: weights as safetensors with
torchvision names, plus the JSON sidecar `<path>.json` with the architecture, normalisation and
classes) as a torch.nn.Module in eval mode that takes images in [0, 1], normalisation inside.
Architectures: the ConvNet (conv3x3-BN-ReLU blocks, 2x2 max-pool after every block but the last
while the map is at least 4 pixels wide, global average pooling, linear head `fc`) and the
linear model (`fc` on the flattened pixels). `ConvNet` can also be built directly (pgd_reference.py
builds a random one).

Data files for the scripts: safetensors with `images` (N x C x H x W, float32 in [0, 1] or
uint8 0-255) and `labels` (int64); `load_batch(path)` reads one.
"""
import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file


class Block(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)  # eps 1e-5, as doublewin's


class ConvNet(nn.Module):
    def __init__(self, widths=(32, 64, 128), c_in=1, side=28, classes=10):
        super().__init__()
        self.features = nn.ModuleList()
        self.pool = []
        for i, w in enumerate(widths):
            self.features.append(Block(c_in, w))
            pools = i + 1 < len(widths) and side >= 4
            side = side // 2 if pools else side
            self.pool.append(pools)
            c_in = w
        self.fc = nn.Linear(c_in, classes)

    def forward(self, x):
        for block, pool in zip(self.features, self.pool):
            x = F.relu(block.bn(block.conv(x)))
            if pool:
                x = F.max_pool2d(x, 2)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class Linear(nn.Module):
    def __init__(self, c_in, side, classes):
        super().__init__()
        self.fc = nn.Linear(c_in * side * side, classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


class Normalized(nn.Module):
    """(x - mean) / std, then the body: the model attacks see, inputs in [0, 1]."""

    def __init__(self, body, mean, std):
        super().__init__()
        self.body = body
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return self.body((x - self.mean) / self.std)


def build(spec):
    """The body for a doublewin NetworkSpec (the sidecar's `spec`)."""
    arch, c, side, classes = spec["arch"], spec["in_channels"], spec["input_size"], len(spec["classes"])
    if arch == "Linear":
        return Linear(c, side, classes)
    if isinstance(arch, dict) and "ConvNet" in arch:
        return ConvNet(tuple(arch["ConvNet"]["widths"]), c, side, classes)
    raise SystemExit(f"dwnet.py cannot rebuild architecture {arch!r}: only ConvNet and Linear are supported")


def load(path):
    """A doublewin network file as an eval-mode torch module on [0, 1] inputs."""
    path = Path(path)
    sidecar = json.loads(Path(f"{path}.json").read_text())
    spec = sidecar["spec"]
    body = build(spec)
    state = load_file(str(path))
    missing, unexpected = body.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"{path}: keys do not fit the {spec['arch']} network: missing {missing}, unexpected {unexpected}")
    norm = spec["normalization"]
    return Normalized(body, norm["mean"], norm["std"]).eval()


def load_batch(path):
    """(images in [0, 1] as float32, labels as int64) from a safetensors data file."""
    t = load_file(str(path))
    x, y = t["images"], t["labels"].long()
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    return x.float().contiguous(), y


def robust_flags(model, adv, y, batch=500):
    """Per example: whether the model still classifies `adv` as `y`."""
    with torch.no_grad():
        return torch.cat([model(adv[i:i + batch]).argmax(1) == y[i:i + batch] for i in range(0, len(y), batch)])
