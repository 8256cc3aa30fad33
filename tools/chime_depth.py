#!/usr/bin/env python3
"""CHIME's Figure 4 on MovieLens-100K: held-out holistic loss per epoch for random and MiniLM
initialisation of the interest transformer at depths 1, 2, 4 and 6.

    tools/chime-depth [--depths 1 2 4 6] [--inits random minilm] [--epochs 20] [--seeds 1]
                      [--threads 1] [--jobs 2] [--out results/chime_depth]

Every run is `sheaf chime train STORE --layers L --init I --epochs E --patience E --first-fraction 0.8`
(no early stopping, so the whole curve shows; each user's last 20% of behaviours stay unseen, as in the
ranking evaluation) with the defaults otherwise: width 384, 12 heads, feed-forward 1536 (MiniLM's
shape, for both initialisations), max length 256, τ 0.1, holistic weight 0.5, batch 32 users, AdamW
3e-4 with warm-up and cosine decay. Held-out users: 10% by a hash of the user id, the same for every
run. The store is the one tools/sasrec-compare builds (results/sasrec-store: the demo's MiniLM item
embeddings, cosine L4 K256 8-bit codebook). A finished run (its metrics.json) is reused; a stopped one
resumes after its last finished epoch (last.safetensors), exactly.

Writes <out>.md (table), <out>.json (every epoch of every run) and <out>.png (the curves).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from sasrec_compare import SHEAF, ensure_store, run  # noqa: E402


def one(a, store, init, depth, seed):
    d = f"{a.out}_work/{init}-L{depth}-e{a.epochs}-seed{seed}"
    if not os.path.exists(os.path.join(d, "metrics.json")):
        t = time.perf_counter()
        run([SHEAF, "chime", "train", store, "--output", d, "--layers", str(depth), "--init", init,
             "--model-dir", os.path.join(ROOT, "data", "minilm"), "--epochs", str(a.epochs), "--patience", str(a.epochs),
             "--first-fraction", "0.8", "--seed", str(seed), "--threads", str(a.threads), "--json", "--quiet"]
            + (["--resume"] if os.path.exists(os.path.join(d, "last.safetensors")) else []))
        print(f"{init} L{depth} seed {seed}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    with open(os.path.join(d, "metrics.json")) as f:
        m = json.load(f)
    o = m["outcome"]
    return dict(init=init, depth=depth, seed=seed, best_epoch=o["bestEpoch"], best=o["bestHeldOutHolistic"],
                held_out_holistic=[e["heldOutHolistic"] for e in o["epochs"]],
                held_out_immediate=[e["heldOutImmediate"] for e in o["epochs"]],
                training_holistic=[e["trainingHolistic"] for e in o["epochs"]],
                seconds_per_epoch=statistics.median(e["trainingSeconds"] for e in o["epochs"]),
                machine=m.get("machine"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depths", type=int, nargs="+", default=[1, 2, 4, 6])
    ap.add_argument("--inits", nargs="+", default=["random", "minilm"])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--store", default=os.path.join(ROOT, "results", "sasrec-store"))
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "chime_depth"))
    a = ap.parse_args()
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    ensure_store(a.store)
    jobs = [(i, d, s) for s in a.seeds for d in sorted(a.depths) for i in a.inits]  # cheap runs first
    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        runs = list(pool.map(lambda j: one(a, a.store, *j), jobs))
    runs.sort(key=lambda r: (r["init"], r["depth"], r["seed"]))
    machine = next((r["machine"] for r in runs if r.get("machine")), {}) or {}

    def mean(xs):
        return statistics.fmean(xs)

    def spread(xs):
        return statistics.stdev(xs) if len(xs) > 1 else 0.0

    marks = [e for e in (1, 2, 5, 10, 15, 20, 30, 40) if e <= a.epochs]
    lines = [f"# CHIME held-out holistic loss by depth and initialisation (MovieLens-100K, {len(a.seeds)} seed(s): {a.seeds})", "",
             f"Machine: {machine.get('cpu', '?')}; OpenBLAS core {machine.get('blasCore', '?')}; {a.threads} thread(s) per run, "
             f"{a.jobs} runs at once (epoch times are therefore not a speed result). {a.epochs} epochs, no early stopping; "
             "held-out users 10% by id hash; each user's first 80% of behaviours.", "",
             "| init | layers | best epoch | best held-out holistic | " + " | ".join(f"epoch {e}" for e in marks)
             + " | last − best | s / epoch |",
             "|---|---:|---:|---:|" + "---:|" * len(marks) + "---:|---:|"]
    summary = []
    for init in a.inits:
        for d in sorted(a.depths):
            rs = [r for r in runs if r["init"] == init and r["depth"] == d]
            curve = [mean([r["held_out_holistic"][e - 1] for r in rs]) for e in range(1, a.epochs + 1)]
            best = [r["best"] for r in rs]
            row = dict(init=init, depth=d, curve=curve, best_mean=mean(best), best_std=spread(best),
                       best_epoch=mean([r["best_epoch"] for r in rs]), overfit=curve[-1] - min(curve),
                       seconds_per_epoch=mean([r["seconds_per_epoch"] for r in rs]))
            summary.append(row)
            lines.append(f"| {init} | {d} | {row['best_epoch']:.1f} | {row['best_mean']:.4f} ± {row['best_std']:.4f} | "
                         + " | ".join(f"{curve[e - 1]:.4f}" for e in marks)
                         + f" | {row['overfit']:.4f} | {row['seconds_per_epoch']:.1f} |")
    lines += ["", "± is the sample standard deviation over seeds (0 with one seed). \"last − best\": how far the last "
              "epoch's loss rose above the curve's minimum (overfitting)."]
    with open(a.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(a.out + ".json", "w") as f:
        json.dump(dict(args=vars(a), runs=runs, summary=summary), f, indent=1)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4.5))
        colours = {1: "tab:blue", 2: "tab:orange", 4: "tab:green", 6: "tab:red", 3: "tab:purple", 5: "tab:brown"}
        for row in summary:
            ax.plot(range(1, a.epochs + 1), row["curve"], linestyle="-" if row["init"] == "minilm" else "--",
                    color=colours.get(row["depth"], None), label=f"{row['init']} L{row['depth']}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("held-out holistic loss")
        ax.set_title("CHIME on MovieLens-100K: MiniLM (solid) vs random (dashed) initialisation")
        ax.legend(ncol=2, fontsize=8)
        fig.tight_layout()
        fig.savefig(a.out + ".png", dpi=120)
    except ImportError:
        print("matplotlib is missing: no plot (pip install matplotlib)", file=sys.stderr)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
