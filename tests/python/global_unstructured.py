"""torch.nn.utils.prune.global_unstructured (L1, amount 0.2) applied `rounds` times to the
tensors of a safetensors file, for the pruning parity test. Writes the resulting masks.

usage: global_unstructured.py WEIGHTS OUT ROUNDS
"""
import sys

import torch
import torch.nn as nn
import torch.nn.utils.prune as prune
from safetensors.torch import load_file, save_file

weights, out, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
holders = {}
for name, t in load_file(weights).items():
    m = nn.Module()
    m.weight = nn.Parameter(t.clone())
    holders[name] = m
for _ in range(rounds):
    prune.global_unstructured([(m, "weight") for m in holders.values()], pruning_method=prune.L1Unstructured, amount=0.2)
save_file({name: m.weight_mask.contiguous() for name, m in holders.items()}, out)
