"""The PyTorch peer of `doublewin bench`: the same workloads written the way a practitioner
writes them in eager PyTorch. Masks go through torch.nn.utils.prune's reparametrisation
(custom_from_mask, global_unstructured), PGD is torchattacks' loop, APGD / APGD-T are
torchattacks 3.5.1 itself, FGSM-RS is Wong et al.'s
fast adversarial training step, evaluation runs under no_grad with PGD-20 on the points the
network classifies correctly. Weights, masks and data come from the files doublewin wrote, so
both sides compute the same thing; the thread count and seed come from its config.

usage: peer.py CONFIG.json OUT.json   (every workload of CONFIG, timed runs to OUT)
       peer.py --serve CONFIG.json    (one run at a time on request: see `serve`)
"""
import copy
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.utils.prune as prune
import torchvision
from safetensors.torch import load_file, save_file


class Block(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)


class ConvNet(nn.Module):
    """doublewin's Arch::convnet(): conv3x3-BN-ReLU blocks, 2x2 max-pool between them, global
    average pooling, linear head `fc` (same parameter names)."""

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


def resnet18_cifar(classes=10):
    """torchvision's ResNet-18 with the usual CIFAR stem: 3x3 conv stride 1, no max-pool."""
    model = torchvision.models.resnet18(weights=None, num_classes=classes)
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model


class Normalized(nn.Module):
    """Normalisation inside the model, so attacks work on [0, 1] pixels."""

    def __init__(self, net, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean.view(1, -1, 1, 1))
        self.register_buffer("std", std.view(1, -1, 1, 1))

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


def load_model(d, name):
    data = load_file(str(d / f"{name}.data.safetensors"))
    net = ConvNet() if name == "convnet" else resnet18_cifar()
    missing, unexpected = net.load_state_dict(load_file(str(d / f"{name}.weights.safetensors")), strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    return Normalized(net, data["mean"], data["std"]), data["x"], data["y"]


def pgd(model, images, labels, eps, alpha, steps, random_start=True):
    """torchattacks.PGD.forward."""
    images = images.clone().detach()
    labels = labels.clone().detach()
    loss = nn.CrossEntropyLoss()
    adv_images = images.clone().detach()
    if random_start:
        adv_images = adv_images + torch.empty_like(adv_images).uniform_(-eps, eps)
        adv_images = torch.clamp(adv_images, min=0, max=1).detach()
    for _ in range(steps):
        adv_images.requires_grad = True
        outputs = model(adv_images)
        cost = loss(outputs, labels)
        grad = torch.autograd.grad(cost, adv_images, retain_graph=False, create_graph=False)[0]
        adv_images = adv_images.detach() + alpha * grad.sign()
        delta = torch.clamp(adv_images - images, min=-eps, max=eps)
        adv_images = torch.clamp(images + delta, min=0, max=1).detach()
    return adv_images


def fgsm_rs(model, x, y, eps, alpha):
    """The attack of Wong et al.'s fast adversarial training (their train_fgsm.py)."""
    delta = torch.zeros_like(x).uniform_(-eps, eps)
    delta.data = torch.clamp(delta, -x, 1 - x)
    delta.requires_grad = True
    output = model(x + delta)
    loss = F.cross_entropy(output, y)
    loss.backward()
    grad = delta.grad.detach()
    delta.data = torch.clamp(delta + alpha * torch.sign(grad), -eps, eps)
    delta.data = torch.clamp(delta, -x, 1 - x)
    return (x + delta.detach()).detach()


def accuracy(model, x, y):
    with torch.no_grad():
        return 100.0 * (model(x).argmax(1) == y).float().mean().item()


def once(run):
    """Seconds of one run: the run's own figure when it returns one (a run that prepares
    something untimed first), else the wall clock around it."""
    t = time.perf_counter()
    own = run()
    return own if own is not None else time.perf_counter() - t


def timed(cfg, run):
    for _ in range(cfg["warmup"]):
        once(run)
    return [once(run) for _ in range(cfg["repeats"])]


def setup_pgd(w, cfg, d):
    model, x, y = load_model(d, w["model"])
    model.eval()
    x, y = x[: w["batch"]], y[: w["batch"]]
    out = {}

    def run():
        out["adv"] = pgd(model, x, y, w["eps"], w["step"], w["attack_steps"])

    def finish():
        clean, adv = accuracy(model, x, y), accuracy(model, out["adv"], y)
        return f"clean {clean:.1f}%, adv {adv:.1f}%", {"clean %": clean, "adv %": adv}

    return run, finish


def setup_train(w, cfg, d):
    """Adversarial training steps. kind "at": the mask through torch.nn.utils.prune's
    reparametrisation (weight = weight_orig * weight_mask in every forward); "at-mul": plain
    parameters, pruned weights zeroed once and again with an in-place multiply after every
    optimizer step (the cheapest eager way to keep a mask); "fast": FGSM-RS, dense."""
    model, x, y = load_model(d, w["model"])
    masks = None
    mul_masks = []
    if w["kind"] in ("at", "at-mul"):
        masks = load_file(str(d / f"{w['model']}.mask.safetensors"))
        for name, module in model.net.named_modules():
            if f"{name}.weight" in masks:
                if w["kind"] == "at":
                    prune.custom_from_mask(module, "weight", masks[f"{name}.weight"])
                else:
                    mul_masks.append((module.weight, masks[f"{name}.weight"].to(module.weight.dtype)))
    with torch.no_grad():
        for p, m in mul_masks:
            p.mul_(m)
    opt = torch.optim.SGD(model.parameters(), lr=w["lr"], momentum=0.9, weight_decay=5e-4)
    b = w["batch"]
    batches = [(x[i * b : (i + 1) * b], y[i * b : (i + 1) * b]) for i in range(w["steps"])]
    model.train()
    last = {}

    def run():
        for xb, yb in batches:
            if w["kind"] in ("at", "at-mul"):
                adv = pgd(model, xb, yb, w["eps"], w["step"], w["attack_steps"])
            else:
                adv = fgsm_rs(model, xb, yb, w["eps"], w["step"])
            loss = F.cross_entropy(model(adv), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                for p, m in mul_masks:
                    p.mul_(m)
            last["loss"] = loss.item()

    def finish():
        outcome = f"last loss {last['loss']:.3f}"
        if w["kind"] == "at":
            kept = sum(int((m.weight != 0).sum()) for m in model.net.modules() if hasattr(m, "weight_mask"))
            total = sum(m.weight.numel() for m in model.net.modules() if hasattr(m, "weight_mask"))
            outcome += f", sparsity {100.0 * (1 - kept / total):.1f}%"
        elif mul_masks:
            kept = sum(int((p != 0).sum()) for p, _ in mul_masks)
            total = sum(p.numel() for p, _ in mul_masks)
            outcome += f", sparsity {100.0 * (1 - kept / total):.1f}%"
        return outcome, {"loss": last["loss"]}

    return run, finish


def setup_eval(w, cfg, d):
    model, x, y = load_model(d, w["model"])
    model.eval()
    n, b = w["n"], w["batch"]
    x, y = x[:n], y[:n]
    res = {}

    def run():
        clean = robust = 0
        for i in range(0, n, b):
            xb, yb = x[i : i + b], y[i : i + b]
            with torch.no_grad():
                ok = model(xb).argmax(1) == yb
            clean += int(ok.sum())
            idx = ok.nonzero().flatten()
            if len(idx) == 0:
                continue
            adv = pgd(model, xb[idx], yb[idx], w["eps"], w["step"], w["attack_steps"])
            with torch.no_grad():
                robust += int((model(adv).argmax(1) == yb[idx]).sum())
        res["sa"], res["ra"] = 100.0 * clean / n, 100.0 * robust / n

    def finish():
        return f"SA {res['sa']:.1f}%, RA {res['ra']:.1f}%", {"SA %": res["sa"], "RA %": res["ra"]}

    return run, finish


def setup_apgd(w, cfg, d):
    """torchattacks' APGD (CE loss), and for "aa-fast" then APGDT (9 target classes) on the points
    still robust: AutoAttack's fast ensemble, both on the clean-correct points."""
    import torchattacks

    model, x, y = load_model(d, w["model"])
    model.eval()
    x, y = x[: w["batch"]], y[: w["batch"]]
    steps = w["attack_steps"]
    attacks = [torchattacks.APGD(model, norm="Linf", eps=w["eps"], steps=steps, n_restarts=1, loss="ce", seed=cfg["seed"])]
    if w["kind"] == "aa-fast":
        attacks.append(torchattacks.APGDT(model, norm="Linf", eps=w["eps"], steps=steps, n_restarts=1, n_classes=10, seed=cfg["seed"]))
    res = {}

    def run():
        with torch.no_grad():
            ok = model(x).argmax(1) == y
        clean = int(ok.sum())
        for attack in attacks:
            idx = ok.nonzero().flatten()
            if len(idx) == 0:
                break
            adv = attack(x[idx], y[idx])
            with torch.no_grad():
                ok[idx] = model(adv).argmax(1) == y[idx]
        res["sa"], res["ra"] = 100.0 * clean / len(y), 100.0 * int(ok.sum()) / len(y)

    def finish():
        return f"SA {res['sa']:.1f}%, RA {res['ra']:.1f}%", {"SA %": res["sa"], "RA %": res["ra"]}

    return run, finish


def setup_prune(w, cfg, d):
    model = torchvision.models.resnet50(weights=None)
    missing, unexpected = model.load_state_dict(load_file(str(d / "resnet50.weights.safetensors")), strict=False)
    assert not unexpected, unexpected
    names = {m: n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    state = {"kept": None}

    def run():
        fresh = copy.deepcopy(model)  # a fresh, unpruned model per run (not timed)
        convs = [m for m in fresh.modules() if isinstance(m, nn.Conv2d)]
        t = time.perf_counter()
        prune.global_unstructured([(m, "weight") for m in convs], pruning_method=prune.L1Unstructured, amount=w["fraction"])
        elapsed = time.perf_counter() - t
        if state["kept"] is None:
            by_name = dict(zip([names[m] for m in model.modules() if isinstance(m, nn.Conv2d)], convs))
            save_file({f"{n}.weight": m.weight_mask.contiguous() for n, m in by_name.items()}, str(d / "resnet50.peer-mask.safetensors"))
            state["kept"] = sum(int(m.weight_mask.sum()) for m in convs)
        return elapsed

    def finish():
        pruned = w["n"] - state["kept"]
        return f"pruned {pruned}", {"pruned": float(pruned)}

    return run, finish


def seed_models(w, d):
    """The seeds workloads' K models (the fixture's network, each with its own head) and their
    batches, as doublewin wrote them: per seed, one epoch of (images, labels)."""
    model, _, _ = load_model(d, w["model"])
    ex = load_file(str(d / "seeds.safetensors"))
    models, batches = [], []
    for i in range(w["seeds"]):
        m = copy.deepcopy(model)
        m.net.fc.weight.data.copy_(ex[f"{i}.fc.weight"])
        m.net.fc.bias.data.copy_(ex[f"{i}.fc.bias"])
        m.train()
        models.append(m)
        batches.append([(ex[f"{i}.x.{j}"], ex[f"{i}.y.{j}"]) for j in range(w["steps"])])
    return models, batches


def sgd_step(params, grads, momentum, lr):
    """torch.optim.SGD's update (momentum 0.9, weight decay 5e-4) on tensors of stacked models."""
    with torch.no_grad():
        for name, p in params.items():
            g = grads[name] + 5e-4 * p
            if name not in momentum:
                momentum[name] = g.clone()
            else:
                momentum[name].mul_(0.9).add_(g)
            p.sub_(lr * momentum[name])


def setup_seeds_loop(w, cfg, d):
    """K models fine-tuned one after the other in eager PyTorch (torchattacks' PGD, train mode)."""
    models, batches = seed_models(w, d)
    opts = [torch.optim.SGD(m.parameters(), lr=w["lr"], momentum=0.9, weight_decay=5e-4) for m in models]
    last = {}

    def run():
        for i, (m, opt) in enumerate(zip(models, opts)):
            for xb, yb in batches[i]:
                adv = pgd(m, xb, yb, w["eps"], w["step"], w["attack_steps"])
                loss = F.cross_entropy(m(adv), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                last[i] = loss.item()

    return run, lambda: seeds_outcome(last)


def setup_seeds_vmap(w, cfg, d):
    """The K models as one ensemble the way torch.func's tutorial builds it: parameters and
    buffers stacked with stack_module_state, forward through functional_call under vmap,
    gradients (of the PGD input and of the weights) with torch.func.grad, SGD on the stacks."""
    from torch.func import functional_call, grad, grad_and_value, stack_module_state, vmap

    models, batches = seed_models(w, d)
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def loss_fn(p, b, x, y):
        return F.cross_entropy(functional_call(base, (p, b), (x,)), y)

    input_grad = vmap(grad(loss_fn, argnums=2))
    weight_grad = vmap(grad_and_value(loss_fn))
    stacked = [(torch.stack([b[j][0] for b in batches]), torch.stack([b[j][1] for b in batches])) for j in range(w["steps"])]
    momentum, last = {}, {}
    eps, alpha = w["eps"], w["step"]

    def run():
        for x, y in stacked:
            adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
            for _ in range(w["attack_steps"]):
                g = input_grad(params, buffers, adv, y)
                adv = (x + (adv + alpha * g.sign() - x).clamp(-eps, eps)).clamp(0, 1).detach()
            grads, losses = weight_grad(params, buffers, adv, y)
            sgd_step(params, grads, momentum, w["lr"])
            last.update({i: float(l) for i, l in enumerate(losses)})

    return run, lambda: seeds_outcome(last)


class Grouped(nn.Module):
    """K ConvNets as one: each convolution grouped (the models stacked along the channels), each
    batch norm over all K x C channels (per channel, so per model), the heads one batched
    matmul. Input [K, B, C, H, W], logits [K, B, classes]."""

    def __init__(self, models):
        super().__init__()
        k = len(models)
        nets = [m.net for m in models]
        self.k, self.pool = k, nets[0].pool
        self.register_buffer("mean", models[0].mean)
        self.register_buffer("std", models[0].std)
        self.convs, self.bns = nn.ModuleList(), nn.ModuleList()
        for i, block in enumerate(nets[0].features):
            c_out, c_in = block.conv.weight.shape[:2]
            conv = nn.Conv2d(k * c_in, k * c_out, 3, padding=1, bias=False, groups=k)
            bn = nn.BatchNorm2d(k * c_out)
            with torch.no_grad():
                conv.weight.copy_(torch.cat([n.features[i].conv.weight for n in nets]))
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(bn, name).copy_(torch.cat([getattr(n.features[i].bn, name) for n in nets]))
            self.convs.append(conv)
            self.bns.append(bn)
        self.head_w = nn.Parameter(torch.stack([n.fc.weight.detach().t() for n in nets]))
        self.head_b = nn.Parameter(torch.stack([n.fc.bias.detach() for n in nets]))
        self.to(memory_format=torch.channels_last)

    def forward(self, x):
        k, b = x.shape[:2]
        h = ((x - self.mean) / self.std).transpose(0, 1).reshape(b, -1, *x.shape[3:])
        h = h.contiguous(memory_format=torch.channels_last)
        for conv, bn, pool in zip(self.convs, self.bns, self.pool):
            h = F.relu(bn(conv(h)))
            if pool:
                h = F.max_pool2d(h, 2)
        h = F.adaptive_avg_pool2d(h, 1).view(b, k, -1).transpose(0, 1)
        return torch.baddbmm(self.head_b.unsqueeze(1), h, self.head_w)


def setup_seeds_grouped(w, cfg, d):
    """The K models stacked along the channels of grouped convolutions (see Grouped): the loss
    is the sum of the models' mean losses, so each model gets its own gradient."""
    models, batches = seed_models(w, d)
    model = Grouped(models).train()
    opt = torch.optim.SGD(model.parameters(), lr=w["lr"], momentum=0.9, weight_decay=5e-4)
    k = len(models)
    stacked = [(torch.stack([b[j][0] for b in batches]), torch.stack([b[j][1] for b in batches])) for j in range(w["steps"])]
    last = {}

    def losses(x, y):
        logits = model(x)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(k, -1).mean(1)

    eps, alpha = w["eps"], w["step"]

    def run():
        for x, y in stacked:
            adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
            for _ in range(w["attack_steps"]):
                adv.requires_grad_(True)
                g = torch.autograd.grad(losses(adv, y).sum(), adv)[0]
                adv = (x + (adv.detach() + alpha * g.sign() - x).clamp(-eps, eps)).clamp(0, 1).detach()
            per_model = losses(adv, y)
            opt.zero_grad()
            per_model.sum().backward()
            opt.step()
            last.update({i: float(l) for i, l in enumerate(per_model.detach())})

    return run, lambda: seeds_outcome(last)


def seeds_outcome(last):
    mean = sum(last.values()) / len(last)
    return f"mean last loss {mean:.3f}", {"mean last loss": mean}


SETUP = {"pgd": setup_pgd, "apgd": setup_apgd, "aa-fast": setup_apgd, "at": setup_train, "at-mul": setup_train, "fast": setup_train,
         "eval": setup_eval, "prune": setup_prune, "seeds-loop": setup_seeds_loop, "seeds-vmap": setup_seeds_vmap,
         "seeds-grouped": setup_seeds_grouped}


def versions():
    return {"torch": torch.__version__, "torchvision": torchvision.__version__, "python": platform.python_version(), "threads": torch.get_num_threads()}


def serve(cfg, d):
    """One JSON request per stdin line, one JSON reply per stdout line: {"op": "setup",
    "workload": {...}} -> {}; {"op": "run"} -> {"seconds": s} (one run of the workload set up
    last); {"op": "finish"} -> {"outcome": ..., "values": {...}}; end of input ends the peer.
    doublewin alternates its own runs with these, so both sides of a ratio are timed seconds
    apart on a machine whose speed drifts."""
    print(json.dumps(versions()), flush=True)
    run = finish = None
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["op"] == "setup":
                run, finish = SETUP[req["workload"]["kind"]](req["workload"], cfg, d)
                reply = {}
            elif req["op"] == "run":
                reply = {"seconds": once(run)}
            elif req["op"] == "finish":
                outcome, values = finish()
                reply = {"outcome": outcome, "values": values}
            else:
                reply = {"error": f"unknown op {req['op']!r}"}
        except Exception as e:  # reported to doublewin, which names the workload
            reply = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


def main():
    serving = sys.argv[1:2] == ["--serve"]
    cfg = json.loads(Path(sys.argv[2 if serving else 1]).read_text())
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(cfg["seed"])
    d = Path(cfg["dir"])
    if serving:
        serve(cfg, d)
        return
    results = []
    for w in cfg["workloads"]:
        run, finish = SETUP[w["kind"]](w, cfg, d)
        seconds = timed(cfg, run)
        outcome, values = finish()
        results.append({"id": w["id"], "seconds": seconds, "outcome": outcome, "values": values})
        print(f"[peer] {w['id']}: median {sorted(seconds)[len(seconds) // 2] * 1e3:.1f} ms ({outcome})", file=sys.stderr)
    Path(sys.argv[2]).write_text(json.dumps({**versions(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
