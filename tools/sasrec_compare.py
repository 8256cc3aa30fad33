#!/usr/bin/env python3
"""Sheaf's SASRec beside RecBole 1.2.1's on MovieLens-100K: the same split, the same metrics, the same
machine and threads, seeds interleaved.

    tools/sasrec-compare [--seeds 1 2 3] [--epochs 200] [--patience 10] [--threads 2] [--jobs 1]
                         [--sides sheaf,recbole,content,content-float32] [--out results/sasrec_compare]

Quality runs: `--threads 1 --jobs 2` keeps both cores busy. A run that finished is reused; a Sheaf run
that stopped part-way (a killed process, an ended session) continues from its last.safetensors, and a
RecBole run from its resume.pth, both exactly as the uninterrupted run would have. Speed: `--epochs 2 --seeds 1` with the default --jobs 1.

Sides (each a fresh run per seed, one after another, never at the same time):
  sheaf            `sheaf train STORE --seed S` (ID embeddings; RecBole's defaults)
  recbole          `tools/recbole-sasrec --seeds S --order exact` (RecBole's own SASRec and trainer)
  content          `sheaf train STORE --content`: item vectors decoded from the store's 8-byte codes
  content-float32  `sheaf train STORE --content --content-embeddings E.npy`: the original float32 vectors

The store is built here from the files `tools/fetch-sample` and `tools/demo` leave in data/ml-100k
(init, a cosine L4 K256 8-bit codebook, the 1,682 items, the 100,000 ratings as histories), unless it
exists. Split: per user, last behaviour = test, the one before = validation, by (timestamp, file line)
on both sides (RecBole reads a copy of its bundled file whose timestamps are their rank in that order;
tools/recbole_sasrec.py --order exact, which checks that its split equals it). Metrics: full ranking of
all 1,682 items, no masking of seen items; the best epoch by validation NDCG@10; test once, for it.

Writes <out>.md and <out>.json: per side, per seed the best epoch and test metrics, then mean and
sample standard deviation over seeds; median training seconds per epoch and validation-evaluation
seconds; the epoch-time ratio RecBole / Sheaf.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# SHEAF_BIN: another sheaf binary (a study that spans sessions keeps one build: results/bin/).
SHEAF = os.environ.get("SHEAF_BIN") or os.path.join(ROOT, ".build", "release", "sheaf")
METRICS = ["recall@10", "recall@50", "recall@200", "ndcg@10", "ndcg@50", "ndcg@200", "mrr@10"]


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def ensure_store(store, codebook=("--levels", "4", "--codes", "256")):
    """The MovieLens-100K store, built unless it exists: `codebook` are the `sheaf codebook train`
    options (default: cosine L4 K256, 8-bit magnitudes, 8 bytes per item)."""
    if os.path.exists(os.path.join(store, "data.mdb")):
        # A store an older build made is upgraded in place (a no-op when it is current).
        run([SHEAF, "migrate", store, "--quiet"])
        return
    d = os.path.join(ROOT, "data", "ml-100k")
    for f in ("item_embeddings.npy", "item_ids.npy", "item_texts.tsv", "ml-100k.inter"):
        if not os.path.exists(os.path.join(d, f)):
            sys.exit(f"{d}/{f} is missing: run tools/demo once (it fetches and embeds MovieLens-100K)")
    run([SHEAF, "init", store, "--dim", "384"])
    run([SHEAF, "codebook", "train", store, "--input", f"{d}/item_embeddings.npy", *codebook])
    run([SHEAF, "items", "load", store, "--input", f"{d}/item_embeddings.npy", "--ids", f"{d}/item_ids.npy",
         "--titles", f"{d}/item_texts.tsv"])
    run([SHEAF, "behaviors", "load", store, "--input", f"{d}/ml-100k.inter", "--format", "recbole"])


def progress(model_dir):
    """An unfinished run's progress from its last.safetensors header (sheaf train writes it after every
    epoch): "N epochs, best epoch B (validation NDCG@10 X); M more at least", M being the epochs early
    stopping still needs without a new best, or "not started"."""
    import struct
    try:
        with open(os.path.join(model_dir, "last.safetensors"), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            meta = json.loads(f.read(n)).get("__metadata__", {})
        done, best = int(meta["sheaf.epochs_done"]), meta.get("sheaf.best_epoch", "?")
        text = f"{done} epochs, best epoch {best} (validation NDCG@10 {float(meta.get('sheaf.best_ndcg', 'nan')):.4f})"
        try:
            training = json.loads(meta["sheaf.training_configuration"])
            left = min(int(best) + int(training["patience"]), int(training["epochs"])) - done
            text += f"; {max(0, left)} more at least"
        except (KeyError, ValueError, TypeError):
            pass
        return text
    except (OSError, ValueError, KeyError, struct.error):
        return "not started"


def record_binary(model_dir):
    """Adds the sheaf binary about to train (or resume) a run to the run's `binary.txt`, one line per
    distinct binary, so a report names the builds its numbers come from whatever SHEAF_BIN says then."""
    path, rel = os.path.join(model_dir, "binary.txt"), os.path.relpath(SHEAF, ROOT)
    if rel not in binaries(model_dir):
        with open(path, "a") as f:
            f.write(rel + "\n")


def binaries(model_dir):
    """The sheaf binaries that trained a run (from its binary.txt; empty for runs from before it)."""
    try:
        with open(os.path.join(model_dir, "binary.txt")) as f:
            return [line.strip() for line in f if line.strip()]
    except OSError:
        return []


def binaries_named(results):
    """`a`, `b`: the binaries of these finished runs (from their binary.txt), or "not recorded"."""
    names = sorted({b for r in results for b in (r.get("binaries") or [])})
    return ", ".join(f"`{b}`" for b in names) if names else "not recorded"


def sheaf_side(store, out, seed, a, extra, name="sheaf", read_only=None):
    """A Sheaf run, trained (or resumed) unless it is finished or `read_only` (default: --report-only);
    None for an unfinished run that is only read, after naming its progress."""
    # The directory names the side and the run's length, so a finished run of another side or a
    # shorter run is never taken for this one.
    model = f"{out}_work/{name}-e{a.epochs}-p{a.patience}-seed{seed}"
    if (a.report_only if read_only is None else read_only) and not os.path.exists(os.path.join(model, "metrics.json")):
        sys.stderr.write(f"{os.path.basename(model)}: {progress(model)}\n")
        return None
    args = [SHEAF, "train", store, "--output", model, "--seed", str(seed), "--epochs", str(a.epochs),
            "--patience", str(a.patience), "--threads", str(a.threads), "--json", "--quiet"] + extra
    t = time.perf_counter()
    done = os.path.exists(os.path.join(model, "metrics.json"))
    if not done:
        # A run killed (or a session that ended) leaves last.safetensors: continue it, exactly.
        os.makedirs(model, exist_ok=True)
        record_binary(model)
        run(args + (["--resume"] if os.path.exists(os.path.join(model, "last.safetensors")) else []))
    wall = time.perf_counter() - t
    with open(os.path.join(model, "metrics.json")) as f:
        m = json.load(f)
    o = m["outcome"]
    return dict(seed=seed, best_epoch=o["bestEpoch"], epochs=len(o["epochs"]), test=o["test"],
                validation=o["validation"],
                median_train_seconds=statistics.median(e["trainingSeconds"] for e in o["epochs"]),
                median_valid_seconds=statistics.median(e["validationSeconds"] for e in o["epochs"]),
                wall_seconds=wall, machine=m.get("machine"), content=m.get("content"), binaries=binaries(model), dir=model)


def recbole_side(out, seed, a):
    prefix = f"{out}_work/recbole-e{a.epochs}-p{a.patience}-seed{seed}"
    t = time.perf_counter()
    try:
        with open(prefix + ".json") as f:
            done = json.load(f).get("complete", False)
    except (OSError, ValueError):
        done = False
    if a.report_only and not done:
        return None
    if not done:  # an unfinished run resumes after its last finished epoch (tools/recbole-sasrec keeps resume.pth)
        run([os.path.join(ROOT, "tools", "recbole-sasrec"), "--seeds", str(seed), "--epochs", str(a.epochs),
             "--patience", str(a.patience), "--threads", str(a.threads), "--order", "exact", "--out", prefix])
    wall = time.perf_counter() - t
    with open(prefix + ".json") as f:
        rep = json.load(f)
    r = rep["runs"][0]
    oc = r["dataset"]["order_check"]
    if oc["users_differing_from_exact_order"] != 0:
        sys.exit(f"RecBole's split differs from Sheaf's for {oc['users_differing_from_exact_order']} users")
    return dict(seed=seed, best_epoch=r["best_epoch"], epochs=len(r["epochs"]), test=r["test"],
                median_train_seconds=r["median_train_seconds"], median_valid_seconds=r["median_valid_seconds"],
                wall_seconds=wall, environment=rep.get("environment"))


def mean_std(values):
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sides", default="sheaf,recbole")
    ap.add_argument("--jobs", type=int, default=1,
                    help="runs at once (default 1). With more, give --threads 1: quality runs fill the cores, and "
                         "their epoch times are then not a speed result (the report says so)")
    ap.add_argument("--store", default=os.path.join(ROOT, "results", "sasrec-store"))
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "sasrec_compare"))
    ap.add_argument("--report-only", action="store_true",
                    help="write the report from the finished runs of --seeds and --sides; train nothing (unfinished runs are left out and named)")
    a = ap.parse_args()
    sides = a.sides.split(",")
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    if not a.report_only:
        ensure_store(a.store)
    emb = os.path.join(ROOT, "data", "ml-100k", "item_embeddings.npy")
    ids = os.path.join(ROOT, "data", "ml-100k", "item_ids.npy")
    for side in sides:
        if side not in ("sheaf", "content", "content-float32", "recbole"):
            sys.exit(f"unknown side {side}")

    def job(seed, side):
        if side == "sheaf":
            r = sheaf_side(a.store, a.out, seed, a, [])
        elif side == "content":
            r = sheaf_side(a.store, a.out, seed, a, ["--content"], "sheaf-content")
        elif side == "content-float32":
            r = sheaf_side(a.store, a.out, seed, a, ["--content", "--content-embeddings", emb, "--content-ids", ids],
                           "sheaf-content-float32")
        else:
            r = recbole_side(a.out, seed, a)
        if r is None:
            print(f"seed {seed} {side}: not finished, left out of the report", file=sys.stderr, flush=True)
            return None
        print(f"seed {seed} {side}: best epoch {r['best_epoch']} of {r['epochs']}, test Recall@10 "
              f"{r['test']['recall@10']:.4f} NDCG@10 {r['test']['ndcg@10']:.4f}, "
              f"{r['median_train_seconds']:.1f} s/epoch", file=sys.stderr, flush=True)
        return r

    jobs = [(seed, side) for seed in a.seeds for side in sides]
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        done = list(pool.map(lambda j: job(*j), jobs))
    missing = [f"{side} seed {seed}" for (seed, side), r in zip(jobs, done) if r is None]
    results = {s: [r for (seed, side), r in zip(jobs, done) if side == s and r is not None] for s in sides}
    sides = [s for s in sides if results[s]]
    names = {"sheaf": "Sheaf SASRec (IDs)", "recbole": "RecBole 1.2.1 SASRec",
             "content": "Sheaf SASRec, content from decoded 8-byte codes",
             "content-float32": "Sheaf SASRec, content from float32 embeddings"}
    machine = next((r.get("machine") for s in sides for r in results[s] if r.get("machine")), {}) or {}
    env = next((r.get("environment") for r in results.get("recbole", []) if r.get("environment")), {}) or {}
    lines = [f"# SASRec on MovieLens-100K: Sheaf beside RecBole (seeds asked: {a.seeds})", "",
             f"Machine: {machine.get('cpu', '?')}, {a.threads} threads; Sheaf's OpenBLAS core "
             f"{machine.get('blasCoreSelection', '?')}; RecBole on torch {env.get('torch', '?')} "
             f"(BLAS {env.get('torch_blas', '?')}). Epochs ≤ {a.epochs}, patience {a.patience}. Sheaf binaries: "
             f"{binaries_named([r for s in sides if s != 'recbole' for r in results[s]])}.", "",
             "| model | seeds | best epoch | test Recall@10 per seed | test Recall@10 | test NDCG@10 | MRR@10 | Recall@50 | NDCG@50 | "
             "Recall@200 | s / training epoch | s / validation ranking |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    summary = {}
    for s in sides:
        rs = results[s]
        agg = {m: mean_std([r["test"][m] for r in rs]) for m in METRICS}
        ep = statistics.median(r["median_train_seconds"] for r in rs)
        ev = statistics.median(r["median_valid_seconds"] for r in rs)
        summary[s] = dict(test={m: {"mean": v[0], "std": v[1]} for m, v in agg.items()}, seconds_per_epoch=ep,
                          validation_seconds=ev, best_epochs=[r["best_epoch"] for r in rs])
        f = lambda m: f"{agg[m][0]:.4f} ± {agg[m][1]:.4f}"
        lines.append(f"| {names[s]} | {', '.join(str(r['seed']) for r in rs)} | {', '.join(str(r['best_epoch']) for r in rs)} | "
                     f"{', '.join(format(r['test']['recall@10'], '.4f') for r in rs)} | {f('recall@10')} | "
                     f"{f('ndcg@10')} | {f('mrr@10')} | {f('recall@50')} | {f('ndcg@50')} | {f('recall@200')} | "
                     f"{ep:.1f} | {ev:.2f} |")
    if "sheaf" in summary and "recbole" in summary:
        r = summary["recbole"]["seconds_per_epoch"] / summary["sheaf"]["seconds_per_epoch"]
        e = summary["recbole"]["validation_seconds"] / summary["sheaf"]["validation_seconds"]
        lines += ["", f"Training epoch: RecBole / Sheaf = {r:.2f}×; validation ranking: RecBole / Sheaf = {e:.2f}×."]
        summary["epoch_speedup"], summary["evaluation_speedup"] = r, e
    if "content" in summary and "content-float32" in summary:
        d = summary["content"]["test"]["recall@10"]["mean"] - summary["content-float32"]["test"]["recall@10"]["mean"]
        lines += ["", f"What the codebook costs the content variant in test Recall@10: {d:+.4f} (codes − float32)."]
    if a.jobs > 1:
        lines += ["", f"The runs shared the machine ({a.jobs} at once): their seconds are not a speed result."]
    if missing:
        lines += ["", "Not finished, so not in this table: " + ", ".join(missing) + "."]
    lines += ["", "± is the sample standard deviation over seeds (0 with one seed)."]
    md = "\n".join(lines) + "\n"
    with open(a.out + ".md", "w") as f:
        f.write(md)
    with open(a.out + ".json", "w") as f:
        json.dump(dict(seeds=a.seeds, epochs=a.epochs, patience=a.patience, threads=a.threads, runs=results,
                       summary=summary), f, indent=1)
    print(md)


if __name__ == "__main__":
    main()
