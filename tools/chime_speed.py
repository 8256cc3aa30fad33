#!/usr/bin/env python3
"""CHIME training speed: `sheaf chime train` beside the same workload in PyTorch (tools/chime_torch.py:
the same batches in the same order, the same model shapes, losses and optimiser), on the same threads,
one after the other, alternating.

    tools/chime-speed [--threads 1 2] [--epochs 2] [--rounds 1] [--layers 2] [--out results/chime_speed]

Sheaf reads results/chime-store (built like tools/sasrec-compare's store) with --first-fraction 0.8;
PyTorch reads data/ml-100k directly with the same cut. Seconds per epoch are the training steps only
(Sheaf's held-out evaluation after each epoch is outside its trainingSeconds; the PyTorch peer has none).
Writes <out>.md and <out>.json.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from sasrec_compare import SHEAF, ensure_store  # noqa: E402


def sheaf_run(store, threads, epochs, layers):
    with tempfile.TemporaryDirectory() as out:
        p = subprocess.run([SHEAF, "chime", "train", store, "--output", out, "--epochs", str(epochs), "--patience", str(epochs),
                            "--layers", str(layers), "--init", "minilm", "--model-dir", os.path.join(ROOT, "data", "minilm"),
                            "--first-fraction", "0.8", "--threads", str(threads), "--json", "--quiet"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"sheaf chime train failed:\n{p.stderr[-2000:]}")
        with open(os.path.join(out, "metrics.json")) as f:
            m = json.load(f)
    e = m["outcome"]["epochs"]
    return dict(seconds=[x["trainingSeconds"] for x in e], tokens_per_second=[x["tokensPerSecond"] for x in e],
                losses=[x["trainingLoss"] for x in e], machine=m["machine"])


def torch_run(python, threads, epochs, layers):
    p = subprocess.run([python, os.path.join(ROOT, "tools", "chime_torch.py"), "--threads", str(threads), "--epochs", str(epochs),
                        "--layers", str(layers), "--quiet"], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"tools/chime_torch.py failed:\n{p.stderr[-2000:]}")
    last = [line for line in p.stdout.splitlines() if line.startswith("{")][-1]
    r = json.loads(last)
    return dict(seconds=r["seconds_per_epoch"], tokens_per_second=r["tokens_per_second"], losses=r["losses"],
                torch=r.get("torch"), blas=r.get("blas"), cpu_capability=r.get("cpu_capability"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--python", default=os.environ.get("TORCH_PYTHON", "/tmp/torchenv/bin/python"))
    ap.add_argument("--store", default=os.path.join(ROOT, "results", "chime-store"))
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "chime_speed"))
    a = ap.parse_args()
    ensure_store(a.store)
    rows, raw = [], []
    for t in a.threads:
        s_all, p_all = [], []
        for _ in range(a.rounds):
            s = sheaf_run(a.store, t, a.epochs, a.layers)
            p = torch_run(a.python, t, a.epochs, a.layers)
            raw.append(dict(threads=t, sheaf=s, torch=p))
            s_all += s["seconds"]
            p_all += p["seconds"]
            print(f"{t} thread(s): Sheaf {s['seconds']} s, PyTorch {p['seconds']} s per epoch", file=sys.stderr, flush=True)
        rows.append(dict(threads=t, sheaf=statistics.median(s_all), torch=statistics.median(p_all)))
    m = raw[0]["sheaf"]["machine"]
    tp = raw[0]["torch"]
    lines = [f"# CHIME training speed: Sheaf beside PyTorch ({a.layers} MiniLM-shaped layers, MovieLens-100K first 80%)", "",
             f"Machine: {m.get('cpu')}; Sheaf's OpenBLAS core {m.get('blasCore')}; PyTorch {tp.get('torch')} "
             f"(BLAS {tp.get('blas')}, {tp.get('cpu_capability')}). {a.epochs} epoch(s) × {a.rounds} round(s) per thread count, "
             "medians of the training seconds per epoch (same batches on both sides).", "",
             "| threads | Sheaf s / epoch | PyTorch s / epoch | PyTorch / Sheaf |", "|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['threads']} | {r['sheaf']:.2f} | {r['torch']:.2f} | **{r['torch'] / r['sheaf']:.2f}×** |")
    with open(a.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(a.out + ".json", "w") as f:
        json.dump(dict(args=vars(a), rows=rows, runs=raw), f, indent=1)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
