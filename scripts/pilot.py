"""The pilot behind the study profiles: small study variants run through the experiment store
(shared steps are computed once), and a table of what drives the ticket-vs-dense gap: dense and
ticket SA / RA, the seed-paired gaps with 95% intervals, how far IMP's masks moved from one-shot
pruning, and what each step costs on this machine.

The gate variants (`gate-*`) ask the question before it: where does pre-training help at all?
Each runs only the dense pre-trained networks and the scratch control (no IMP) on one downstream
setting and tabulates the pre-training gate (pre-trained dense minus scratch, seed-paired, with
95% intervals) with the cost of a transfer.

usage: python scripts/pilot.py OUT_DIR [VARIANT ...]     (no variant: the ticket variants)
       python scripts/pilot.py OUT_DIR gate-mnist-8x8 gate-digits gate-mnist gate-animal-mnist
Needs a release build (`cargo build --release`) and the project's environment (`source scripts/env.sh`).
"""
import copy
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKERS = os.cpu_count() or 1
BIN = ROOT / "target" / "release" / "doublewin"


def base():
    """The small profile narrowed to the question: STD and AT sources, m^ST tickets at round 6
    (73.79%) and 10 (89.26%), both fine-tunings at 100% data, three seeds, no landscapes."""
    s = json.loads(subprocess.run([str(BIN), "study", "show", "--profile", "small"], check=True, capture_output=True, text=True).stdout)
    s.update(pretrainings=["standard", "adversarial"], families=["standard"], rounds=[6, 10], fractions=[1.0], seeds=[0, 1, 2])
    s["landscapes"] = None
    s["controls"] = None
    s["fine_tunings"] = ["standard", "adversarial"]
    return s


def ft(s, epochs, min_steps=0, lr=None):
    s["transfer"]["recipe"]["epochs"] = epochs
    s["transfer"]["min_steps"] = min_steps
    if lr is not None:
        s["transfer"]["recipe"]["sgd"]["lr"] = lr
    return s


GATE_FRACTIONS = {"digits": [1.0, 0.1], "mnist-8x8": [0.01, 0.1], "mnist": [0.1, 0.01], "animal-mnist": [0.1, 0.01]}


def gate_variant(dataset):
    """The small profile's sources and fine-tuning, dense and scratch only, on one downstream set."""
    s = json.loads(subprocess.run([str(BIN), "study", "show", "--profile", "small"], check=True, capture_output=True, text=True).stdout)
    s.update(families=[], rounds=[], controls=None, landscapes=None, scratch=True, stability_seeds=[],
             downstream=[{"embedded": dataset}], fractions=GATE_FRACTIONS[dataset], seeds=[0, 1, 2])
    return s


def variant(name):
    """Each variant changes one thing against `ft30` (long enough fine-tuning)."""
    if name.startswith("gate-"):
        return gate_variant(name[len("gate-"):])
    s = base()
    if name == "ft04":  # the small profile as shipped: 4 epochs, at least 120 SGD steps
        return ft(s, 4, 120)
    if name == "ft15":
        return ft(s, 15)
    s = ft(s, 30)
    if name == "ft30":
        return s
    if name == "ft60":
        return ft(s, 60)
    if name == "b128":  # twice the batch (and the learning rate): half the steps, less overhead per image
        s["transfer"]["recipe"]["batch_size"] = 128
        s["transfer"]["recipe"]["sgd"]["lr"] = 0.04
        return s
    if name == "imp3":  # IMP re-trains 3 epochs on the whole pre-training subset per round
        s["imp"]["retrain"]["epochs"] = 3
        s["imp_fraction"] = 1.0
        return s
    if name == "wide":  # twice the width: 4x the prunable weights
        s["arch"] = {"ConvNet": {"widths": [64, 128, 256]}}
        return s
    if name == "src20":  # stronger sources: 20% of Fashion-MNIST, 10 epochs
        s["source_fraction"] = 0.2
        s["pretrain"]["epochs"] = 10
        return s
    if name == "aafast":  # AutoAttack-grade test RA (FGSM, PGD-20, APGD-CE, APGD-T)
        s["threat"]["test"] = "autoattack-fast"
        return s
    if name == "mnist":  # a downstream set with 2,004 test images (one seed: cost and gap)
        s["downstream"] = [{"embedded": "mnist"}]
        s["seeds"] = [0]
        s["transfer"]["recipe"]["epochs"] = 10
        return s
    raise SystemExit(f"unknown variant {name}")


VARIANTS = ["ft04", "ft15", "ft30", "ft60", "b128", "imp3", "wide", "src20", "aafast", "mnist"]


def run(name, out):
    cfg = out / f"{name}.json"
    cfg.write_text(json.dumps(variant(name), indent=1))
    t0 = time.time()
    p = subprocess.run([str(BIN), "study", "report", "--config", str(cfg), "--workers", str(WORKERS), "--out", str(out / name)],
                       capture_output=True, text=True)
    (out / f"{name}.log").write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        raise SystemExit(f"{name} failed:\n{p.stderr[-2000:]}")
    return time.time() - t0, p.stdout


def step_costs(log):
    """Seconds per computed step, by kind, from the runner's progress lines."""
    kinds, costs = {}, {}
    for line in log.splitlines():
        m = re.search(r"\[study (\d+)/\d+\] (\w+): (.*)", line)
        if m:
            kinds[m.group(1)] = m.group(2)
        m = re.search(r"\[study (\d+)/\d+\] done in (?:(\d+)m )?([\d.]+)s", line)
        if m:
            secs = 60 * float(m.group(2) or 0) + float(m.group(3))
            costs.setdefault(kinds.get(m.group(1), "?"), []).append(secs)
    return {k: (len(v), sum(v) / len(v)) for k, v in costs.items()}


def gate_rows(name, rep):
    """One row per gate setting: pre-trained dense and scratch means with the paired gap."""
    rows = []
    for c in rep["gates"]:
        cell = lambda i: "-" if c["gaps"][i] is None else "{:.1f} vs {:.1f}: {:+.1f} [{:+.1f},{:+.1f}]".format(
            100 * c["dense"][i], 100 * c["scratch"][i], *(100 * c["gaps"][i][k] for k in ("mean", "lower", "upper")))
        rows.append([name, c["pretraining"], c["dataset"]["embedded"], f"{100 * c['fraction']:g}", cell(0), cell(1), cell(2), c["outcome"]])
    return rows


def summarise(name, out, seconds, log):
    res = json.loads((out / name / "results.json").read_text())
    rep = json.loads((out / name / "report.json").read_text())
    costs = step_costs(log)
    cost = ", ".join(f"{k} {n} x {s:.1f}s" for k, (n, s) in sorted(costs.items()))
    note = f"{name}: {seconds:.0f} s wall ({WORKERS} workers); computed steps: {cost or 'none (all in the store)'}"
    if name.startswith("gate-"):
        return gate_rows(name, rep), note
    rows = []
    for cell in rep["verdicts"]:
        pre = cell["pretraining"]
        dense = [t["report"] for t in res["transfers"] if t["pretraining"] == pre and t["kind"] == "dense" and t["report"]["fraction"] == cell["fraction"]]
        mean = lambda runs, ft, key: 100 * sum(r[key][f"test_{'ra' if key == 'best_ra' else 'sa'}"] for r in runs if r["fine_tuning"] == ft) / max(1, sum(1 for r in runs if r["fine_tuning"] == ft))
        for row in cell["verdict"]["rows"]:
            gap = lambda i: "-" if row["gaps"][i] is None else "{:+.1f} [{:+.1f},{:+.1f}]".format(*(100 * row["gaps"][i][k] for k in ("mean", "lower", "upper")))
            overlap = [r["overlap_one_shot"] for r in rep["imp"] if r["pretraining"] == pre and r["family"] == cell["family"] and f"r{r['round']}" == row["label"].split()[-1]]
            rows.append([name, pre, row["label"], f"{100 * row['sparsity']:.1f}",
                         f"{mean(dense, 'standard', 'best_sa'):.1f}", f"{mean(dense, 'adversarial', 'best_sa'):.1f}", f"{mean(dense, 'adversarial', 'best_ra'):.1f}",
                         gap(0), gap(1), gap(2), row["outcome"], f"{100 * overlap[0]:.1f}" if overlap else "-"])
    return rows, note


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    names = sys.argv[2:] or VARIANTS
    tickets, gates, notes = [], [], []
    for n in names:
        print(f"[pilot] {n}", flush=True)
        seconds, log = run(n, out)
        rows, note = summarise(n, out, seconds, log)
        (gates if n.startswith("gate-") else tickets).extend(rows)
        notes.append(note)
        print(note, flush=True)
    table = lambda head, rows: "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n" + "".join("| " + " | ".join(r) + " |\n" for r in rows)
    md = ""
    if gates:
        md += table(["variant", "pre-training", "downstream", "data %", "std-FT SA dense vs scratch: gap", "adv-FT SA", "adv-FT RA", "pre-training"], gates) + "\n"
    if tickets:
        md += table(["variant", "pre-training", "ticket", "sparsity %", "dense std-FT SA", "dense adv-FT SA", "dense adv-FT RA",
                     "gap std-FT SA", "gap adv-FT SA", "gap adv-FT RA", "double-win", "overlap with one-shot %"], tickets)
    md += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    (out / "pilot.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
