"""torchattacks 3.5.1 on a doublewin network, for the parity tests of tests/autoattack.rs.

Runs each requested attack on its own on the whole batch (every attack skips the examples the
model already gets wrong), with the settings given, and writes per-example robustness flags
(1 = still classified correctly after the attack) to OUT.safetensors as `robust_<attack>`
(uint8), plus OUT.json with the robust accuracy and wall time of each attack.

usage: torchattacks_parity.py NET.safetensors DATA.safetensors OUT [--norm Linf|L2] [--eps E]
         [--attacks apgd-ce,apgd-dlr,apgd-t,fab-t,square] [--n-iter N] [--fab-iter N] [--n-target-classes K]
         [--n-queries Q] [--square-seeds 0,1] [--seed S] [--threads T]
"""
import argparse
import json
import time

import torch
import torchattacks
from safetensors.torch import save_file

import dwnet

p = argparse.ArgumentParser()
p.add_argument("net")
p.add_argument("data")
p.add_argument("out")
p.add_argument("--norm", default="Linf", choices=["Linf", "L2"])
p.add_argument("--eps", type=float, default=0.1)
p.add_argument("--attacks", default="apgd-ce,apgd-t,fab-t,square")
p.add_argument("--n-iter", type=int, default=100)
p.add_argument("--fab-iter", type=int, default=0, help="FAB-T's iterations (default: --n-iter)")
p.add_argument("--n-target-classes", type=int, default=9)
p.add_argument("--n-queries", type=int, default=5000)
p.add_argument("--square-seeds", default="0")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--threads", type=int, default=0)
a = p.parse_args()
if a.threads > 0:
    torch.set_num_threads(a.threads)

model = dwnet.load(a.net)
x, y = dwnet.load_batch(a.data)
k = a.n_target_classes + 1  # torchattacks takes n_classes and attacks n_classes - 1 targets


def make(name, seed):
    if name == "apgd-ce":
        return torchattacks.APGD(model, norm=a.norm, eps=a.eps, steps=a.n_iter, n_restarts=1, seed=seed, loss="ce")
    if name == "apgd-dlr":
        return torchattacks.APGD(model, norm=a.norm, eps=a.eps, steps=a.n_iter, n_restarts=1, seed=seed, loss="dlr")
    if name == "apgd-t":
        return torchattacks.APGDT(model, norm=a.norm, eps=a.eps, steps=a.n_iter, n_restarts=1, seed=seed, n_classes=k)
    if name == "fab-t":
        return torchattacks.FAB(model, norm=a.norm, eps=a.eps, steps=a.fab_iter or a.n_iter, n_restarts=1, seed=seed, multi_targeted=True, n_classes=k)
    if name == "square":
        return torchattacks.Square(model, norm=a.norm, eps=a.eps, n_queries=a.n_queries, n_restarts=1, seed=seed)
    raise SystemExit(f"unknown attack {name}")


runs = []
for name in a.attacks.split(","):
    if name == "square":
        runs += [(f"square_seed{s}", name, int(s)) for s in a.square_seeds.split(",")]
    else:
        runs.append((name.replace("-", "_"), name, a.seed))

flags, report = {}, {"examples": len(y), "sa": float(dwnet.robust_flags(model, x, y).float().mean())}
for key, name, seed in runs:
    t0 = time.perf_counter()
    adv = make(name, seed)(x, y)
    seconds = time.perf_counter() - t0
    robust = dwnet.robust_flags(model, adv, y)
    flags[f"robust_{key}"] = robust.to(torch.uint8)
    report[key] = {"ra": float(robust.float().mean()), "seconds": seconds}
save_file(flags, f"{a.out}.safetensors")
with open(f"{a.out}.json", "w") as f:
    json.dump(report, f, indent=1)
