#!/usr/bin/env python3
"""The CHIME evaluation on MovieLens-100K: does a ranker that reads a user's CHIME profile beside their
recent behaviours beat one that reads only the recent behaviours, and how close does it get to one that
reads the whole history, at what cost per request?

    tools/chime-ranking [--layers 2] [--init minilm] [--epochs 30] [--levels 3] [--codes 256]
                        [--seeds 1 2 3] [--folds 5] [--threads 2] [--out results/chime_ranking]

Pipeline (each step reused when its output exists):
  1. the store: results/chime-store, built like tools/sasrec-compare's (the demo's MiniLM item
     embeddings, cosine L4 K256 8-bit codes, the 100,000 ratings as histories);
  2. `sheaf chime train --first-fraction 0.8`: CHIME sees each user's first 80% of behaviours only;
  3. `sheaf profiles build --first-fraction 0.8 --levels L --codes K`: profiles of those behaviours;
  4. `sheaf-measure chime-ranking`: for each seed, 5-fold cross-validation over users of three rankers
     that differ only in their user input (the last 20 behaviours before the target; the same plus the
     profile; every behaviour before the target), scored on every behaviour of each user's last 20%
     (label: rating >= 4); AUC over all samples and GAUC (per-user AUC weighted by samples); then the
     per-request fetch cost of each input over every user.

Writes <out>.md and <out>.json; prints the table.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from sasrec_compare import SHEAF, ensure_store, run  # noqa: E402

MEASURE = os.path.join(ROOT, ".build", "release", "sheaf-measure")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--init", default="minilm")
    ap.add_argument("--negative-label", type=float, default=2,
                    help="CHIME's holistic negatives: a user's future behaviours rated at most this (and other users')")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--chime-seed", type=int, default=1)
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--codes", type=int, default=256)
    ap.add_argument("--readings", nargs="+", default=["decoded"],
                    help="how the recent+profile ranker reads the profile: decoded, codes, both (one ranker each)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--store", default=os.path.join(ROOT, "results", "chime-store"))
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "chime_ranking"))
    a = ap.parse_args()
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    ensure_store(a.store)
    negatives = "" if a.negative_label == 2 else f"-neg{a.negative_label:g}"
    model = f"{a.out}_work/chime-{a.init}-L{a.layers}-e{a.epochs}{negatives}-seed{a.chime_seed}"
    if not os.path.exists(os.path.join(model, "metrics.json")):
        print(f"training CHIME ({a.init}, {a.layers} layers) on each user's first 80%", file=sys.stderr, flush=True)
        run([SHEAF, "chime", "train", a.store, "--output", model, "--layers", str(a.layers), "--init", a.init,
             "--model-dir", os.path.join(ROOT, "data", "minilm"), "--epochs", str(a.epochs), "--first-fraction", "0.8",
             "--negative-label", str(a.negative_label), "--seed", str(a.chime_seed), "--threads", str(a.threads), "--quiet"]
            + (["--resume"] if os.path.exists(os.path.join(model, "last.safetensors")) else []))
    with open(os.path.join(model, "metrics.json")) as f:
        chime = json.load(f)
    print("building profiles of each user's first 80%", file=sys.stderr, flush=True)
    # --retrain-codebook: the ICM codebook always has the requested L and K (the same seed and h_t give
    # the same codebook, so rerunning with the same L and K rebuilds nothing else).
    built = run([SHEAF, "profiles", "build", a.store, "--model", model, "--first-fraction", "0.8", "--levels", str(a.levels),
                 "--codes", str(a.codes), "--retrain-codebook", "--threads", str(a.threads), "--json", "--quiet"])
    build = json.loads(built.stdout)
    # One sheaf-measure run per (ranker, seed), each kept and reused: a stopped evaluation resumes at
    # the first missing one. The runs are deterministic (the same seed gives the same scores whatever
    # the threads), so results of different invocations sit in one table.
    variants = [("recent", None)] + [("recent+profile", r) for r in a.readings] + [("full", None)]
    reports = []
    for name, reading in variants:
        for seed in a.seeds:
            tag = name + (f"-{reading}" if reading else "")
            # recent and full read no profile: their runs do not depend on the CHIME model or ICM, and
            # are shared by every evaluation of the same store.
            path = (f"{a.out}_work/ranking-{os.path.basename(model)}-L{a.levels}-K{a.codes}-f{a.folds}-{tag}-s{seed}.json"
                    if reading else os.path.join(os.path.dirname(a.store.rstrip("/")), f"chime_ranking_{tag}-f{a.folds}-s{seed}.json"))
            if not os.path.exists(path):
                print(f"training and scoring the {tag} rankers, seed {seed}", file=sys.stderr, flush=True)
                p = subprocess.run([MEASURE, "chime-ranking", "--store", a.store, "--model", model, "--seeds", str(seed),
                                    "--folds", str(a.folds), "--inputs", name] + (["--readings", reading] if reading else [])
                                   + ["--parts", "rankers", "--threads", str(a.threads), "--output", path],
                                   stdout=subprocess.DEVNULL, stderr=sys.stderr, text=True)
                if p.returncode != 0:
                    sys.exit(f"sheaf-measure chime-ranking failed ({p.returncode})")
            with open(path) as f:
                r = json.load(f)
            for run_ in r["runs"]:
                run_["input"] = f"{name} ({reading})" if reading and len(a.readings) > 1 else name
            reports.append(r)
    # CHIME's own scores and the per-request costs: once per run, not per ranker.
    costs_path = f"{a.out}_work/costs.json"
    print("measuring CHIME's own scores and the per-request costs", file=sys.stderr, flush=True)
    p = subprocess.run([MEASURE, "chime-ranking", "--store", a.store, "--model", model, "--parts", "scores", "costs",
                        "--threads", str(a.threads), "--output", costs_path],
                       stdout=subprocess.DEVNULL, stderr=sys.stderr, text=True)
    if p.returncode != 0:
        sys.exit(f"sheaf-measure chime-ranking --parts scores costs failed ({p.returncode})")
    with open(costs_path) as f:
        fresh = json.load(f)
    rep = dict(next(r for r in reversed(reports) if r["runs"][0]["input"].startswith("recent+profile")))  # the model's own
    rep["costs"], rep["machine"] = fresh["costs"], fresh["machine"]
    rep["runs"] = [x for r in reports for x in r["runs"]]
    rep["chimeScores"] = fresh["chimeScores"]

    def ms(xs):
        return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)

    rows = {}
    for name in dict.fromkeys(r["input"] for r in rep["runs"]):
        rs = [r for r in rep["runs"] if r["input"] == name]
        rows[name] = dict(auc=ms([r["auc"] for r in rs]), gauc=ms([r["gauc"] for r in rs]), n=len(rs))
    costs = {c["input"]: c for c in rep["costs"]}

    def cost_of(name):
        if name.startswith("recent+profile"):
            reading = name.split("(")[-1].rstrip(")") if "(" in name else a.readings[0]
            return ["recent", "profile"] + (["profile decode"] if reading == "decoded" else [])
        return [name]
    m = rep["machine"]
    o = chime["outcome"]
    lines = [f"# CHIME profiles in a ranking model (MovieLens-100K, {len(a.seeds)} seeds × {a.folds} folds over users)", "",
             f"Machine: {m.get('cpu')}; OpenBLAS core {m.get('blasCore')}. CHIME: {a.init} initialisation, {a.layers} layers, "
             f"holistic negatives rated <= {a.negative_label:g}, "
             f"best epoch {o['bestEpoch']} of {len(o['epochs'])} (held-out holistic {o['bestHeldOutHolistic']:.4f}), model "
             f"{rep['modelVersion']}; ICM cosine L={a.levels} K={a.codes}. {rep['users']} users, {rep['samples']:,} window samples "
             f"({rep['positives']:,} positive: rating >= 4); profiles of the first 80%: {costs['profile']['bytesPerRequest']:.0f} B "
             f"each on average.", "",
             "| user input | AUC | GAUC | bytes / request | µs / request (fetch + decode) |",
             "|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        b = sum(costs[c]["bytesPerRequest"] for c in cost_of(name))
        t = sum(costs[c]["microsecondsPerRequest"] for c in cost_of(name))
        lines.append(f"| {name} | {r['auc'][0]:.4f} ± {r['auc'][1]:.4f} | {r['gauc'][0]:.4f} ± {r['gauc'][1]:.4f} | {b:,.0f} | {t:.1f} |")
    lines += ["", "± is the sample standard deviation over seeds (each seed: its own folds and initialisations). "
              "Costs: one read transaction per request over every user; bytes are the stored records read (profile record; "
              "history segments holding the behaviours; the items' packed codes). The decoded reading adds the profile's "
              f"decoding into CHIME's space ({costs['profile decode']['microsecondsPerRequest']:.1f} µs of the total); "
              f"the profile fetch alone is {costs['profile']['microsecondsPerRequest']:.1f} µs."]
    profiled = [k for k in rows if k.startswith("recent+profile")]
    if "recent" in rows and "full" in rows:
        for metric, label in (("auc", "AUC"), ("gauc", "GAUC")):
            gap = rows["full"][metric][0] - rows["recent"][metric][0]
            for k in profiled:
                gain = rows[k][metric][0] - rows["recent"][metric][0]
                spread = max(rows["recent"][metric][1], rows[k][metric][1])
                closes = (f"it closes {100 * gain / gap:.0f}% of that gap" if gap > 0
                          else "the full history does not beat recent here, so there is no gap to close")
                lines += ["", f"{label}: {k} over recent {gain:+.4f} (seed spread {spread:.4f}); full history over recent "
                          f"{gap:+.4f}; {closes}."]
    if rep.get("chimeScores"):
        lines += ["", "CHIME's own score of each window sample, without a ranker: cos(user vector, the model's key of the "
                  "target item), the similarity its holistic loss trains (deterministic: no seeds).", "",
                  "| user vector | AUC | GAUC |", "|---|---:|---:|"]
        for d in rep["chimeScores"]:
            lines.append(f"| {d['user']} | {d['auc']:.4f} | {d['gauc']:.4f} |")
    with open(a.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(a.out + ".json", "w") as f:
        json.dump(dict(args=vars(a), chime=chime, build=build, ranking=rep, summary=rows), f, indent=1)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
