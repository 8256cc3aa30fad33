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
    if a.report_only and not os.path.exists(os.path.join(d, "metrics.json")):
        return None
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
    ap.add_argument("--report-only", action="store_true",
                    help="train nothing: report the finished runs (each row says how many seeds it has)")
    a = ap.parse_args()
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    ensure_store(a.store)
    jobs = [(i, d, s) for s in a.seeds for d in sorted(a.depths) for i in a.inits]  # cheap runs first
    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        runs = [r for r in pool.map(lambda j: one(a, a.store, *j), jobs) if r is not None]
    runs.sort(key=lambda r: (r["init"], r["depth"], r["seed"]))
    machine = next((r["machine"] for r in runs if r.get("machine")), {}) or {}

    def mean(xs):
        return statistics.fmean(xs)

    def spread(xs):
        return statistics.stdev(xs) if len(xs) > 1 else 0.0

    marks = [e for e in (1, 2, 5, 10, 15, 20, 30, 40) if e <= a.epochs]
    lines = [f"# CHIME held-out holistic loss by depth and initialisation (MovieLens-100K, seeds {sorted({r['seed'] for r in runs})})", "",
             f"Machine: {machine.get('cpu', '?')}; OpenBLAS core {machine.get('blasCore', '?')}; {a.threads} thread(s) per run, "
             f"{a.jobs} runs at once (epoch times are therefore not a speed result). {a.epochs} epochs, no early stopping; "
             "held-out users 10% by id hash; each user's first 80% of behaviours.", "",
             "| init | layers | seeds | best epoch | best held-out holistic | " + " | ".join(f"epoch {e}" for e in marks)
             + " | last − best | s / epoch |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(marks) + "---:|---:|"]
    summary = []
    for init in a.inits:
        for d in sorted(a.depths):
            rs = [r for r in runs if r["init"] == init and r["depth"] == d]
            if not rs:
                continue
            curve = [mean([r["held_out_holistic"][e - 1] for r in rs]) for e in range(1, a.epochs + 1)]
            best = [r["best"] for r in rs]
            row = dict(init=init, depth=d, seeds=[r["seed"] for r in rs], curve=curve, best_mean=mean(best), best_std=spread(best),
                       best_epoch=mean([r["best_epoch"] for r in rs]), overfit=curve[-1] - min(curve),
                       seconds_per_epoch=mean([r["seconds_per_epoch"] for r in rs]))
            summary.append(row)
            lines.append(f"| {init} | {d} | {len(rs)} | {row['best_epoch']:.1f} | {row['best_mean']:.4f} ± {row['best_std']:.4f} | "
                         + " | ".join(f"{curve[e - 1]:.4f}" for e in marks)
                         + f" | {row['overfit']:.4f} | {row['seconds_per_epoch']:.1f} |")
    lines += ["", "± is the sample standard deviation over seeds (0 with one seed); curves are means over the row's seeds. "
              "\"last − best\": how far the last epoch's loss rose above the curve's minimum (overfitting)."]
    gaps = []
    for d in sorted(a.depths):
        pair = {row["init"]: row for row in summary if row["depth"] == d}
        if "random" in pair and "minilm" in pair:
            common = sorted(set(pair["random"]["seeds"]) & set(pair["minilm"]["seeds"]))
            per_seed = [next(r["best"] for r in runs if r["init"] == "random" and r["depth"] == d and r["seed"] == sd)
                        - next(r["best"] for r in runs if r["init"] == "minilm" and r["depth"] == d and r["seed"] == sd)
                        for sd in common]
            if per_seed:
                gaps.append(f"| {d} | {len(per_seed)} | {mean(per_seed):.4f} ± {spread(per_seed):.4f} | "
                            + ", ".join(f"{g:.4f}" for g in per_seed) + " |")
    if gaps:
        lines += ["", "Best held-out holistic, random − MiniLM (positive: pretrained is better), paired by seed:", "",
                  "| layers | seeds | mean ± std | per seed |", "|---:|---:|---:|---|"] + gaps
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
