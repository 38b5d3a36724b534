"""SA, PGD-20 RA and AutoAttack RA of a doublewin network, measured by torchattacks 3.5.1, printed
as JSON: the reference numbers next to doublewin's own (`robust_evaluate` with
`Pgd::linf(eps, eps / 4.0, 20)` and `AutoAttack::standard/fast(norm, eps).seed(s).attacks()`).

By default AutoAttack is built from torchattacks' components with AutoAttack's published
settings, the ones doublewin's AutoAttack uses: APGD-CE (100 iterations), APGD-T (100
iterations, 9 target classes or classes - 1), FAB-T (100 iterations, same targets) and Square
(5000 queries), each on the points still robust; "fast" is APGD-CE + APGD-T. With
--torchattacks-defaults the standard version is torchattacks.AutoAttack(version='standard')
as shipped, which runs APGD, APGD-T and FAB with only 10 iterations.

usage: torchattacks_eval.py NET.safetensors --dataset-file DATA.safetensors --eps E [--n N]
         [--norm Linf|L2] [--version both|standard|fast] [--seed S] [--batch B]
         [--torchattacks-defaults] [--threads T]

DATA.safetensors holds `images` (N x C x H x W, float32 in [0, 1] or uint8) and `labels`
(int64); the first N examples are used (all by default).
"""
import argparse
import json
import time

import torch
import torchattacks

import dwnet

p = argparse.ArgumentParser()
p.add_argument("net")
p.add_argument("--dataset-file", required=True)
p.add_argument("--eps", type=float, required=True)
p.add_argument("--n", type=int, default=0)
p.add_argument("--norm", default="Linf", choices=["Linf", "L2"])
p.add_argument("--version", default="both", choices=["both", "standard", "fast"])
p.add_argument("--seed", type=int, default=0)
p.add_argument("--batch", type=int, default=500)
p.add_argument("--torchattacks-defaults", action="store_true")
p.add_argument("--threads", type=int, default=0)
a = p.parse_args()
if a.threads > 0:
    torch.set_num_threads(a.threads)

model = dwnet.load(a.net)
x, y = dwnet.load_batch(a.dataset_file)
if a.n > 0:
    x, y = x[: a.n], y[: a.n]
with torch.no_grad():
    classes = model(x[:1]).shape[1]
targets = min(9, classes - 1)


def pgd20():
    if a.norm == "Linf":
        return torchattacks.PGD(model, eps=a.eps, alpha=a.eps / 4, steps=20, random_start=True)
    return torchattacks.PGDL2(model, eps=a.eps, alpha=a.eps / 4, steps=20, random_start=True)


def autoattack(version):
    if version == "standard" and a.torchattacks_defaults:
        return torchattacks.AutoAttack(model, norm=a.norm, eps=a.eps, version="standard", n_classes=classes, seed=a.seed)
    parts = [
        torchattacks.APGD(model, norm=a.norm, eps=a.eps, steps=100, n_restarts=1, seed=a.seed, loss="ce"),
        torchattacks.APGDT(model, norm=a.norm, eps=a.eps, steps=100, n_restarts=1, seed=a.seed, n_classes=targets + 1),
    ]
    if version == "standard":
        parts += [
            torchattacks.FAB(model, norm=a.norm, eps=a.eps, steps=100, n_restarts=1, seed=a.seed, multi_targeted=True,
                             n_classes=targets + 1),
            torchattacks.Square(model, norm=a.norm, eps=a.eps, n_queries=5000, n_restarts=1, seed=a.seed),
        ]
    return torchattacks.MultiAttack(parts)


def accuracy(attack):
    """Accuracy under `attack` (None: clean) and the seconds it took."""
    t0, correct = time.perf_counter(), 0
    for i in range(0, len(y), a.batch):
        xb, yb = x[i:i + a.batch], y[i:i + a.batch]
        adv = xb if attack is None else attack(xb, yb)
        correct += int(dwnet.robust_flags(model, adv, yb).sum())
    return correct / max(len(y), 1), time.perf_counter() - t0


sa, _ = accuracy(None)
out = {
    "net": a.net,
    "examples": len(y),
    "norm": a.norm,
    "eps": a.eps,
    "seed": a.seed,
    "torchattacks": torchattacks.__version__,
    "autoattack_settings": "torchattacks.AutoAttack defaults" if a.torchattacks_defaults else
    f"APGD-CE 100 it, APGD-T 100 it x {targets} targets, FAB-T 100 it x {targets} targets, Square 5000 queries",
    "sa": sa,
}
out["pgd20_ra"], out["pgd20_seconds"] = accuracy(pgd20())
for version in (["fast", "standard"] if a.version == "both" else [a.version]):
    out[f"autoattack_{version}_ra"], out[f"autoattack_{version}_seconds"] = accuracy(autoattack(version))
print(json.dumps(out, indent=1))
