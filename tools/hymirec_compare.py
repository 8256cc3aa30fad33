#!/usr/bin/env python3
"""HyMiRec on MovieLens-100K, on the sequence-training protocol (leave-one-out by time, full ranking of
all 1,682 items, best epoch on validation NDCG@10, test once): the seed's Table 2 (beside Sheaf's ID and
content SASRec and RecBole's SASRec from tools/sasrec-compare), Table 4 (ablations), Figure 3 (s and w)
and the training cost against float32 rows.

    tools/hymirec-compare [--seeds 1 2 3] [--study-seeds 1] [--epochs 200] [--patience 10] [--threads 1]
                          [--jobs 2] [--parts main,ablations,sweep] [--only KEY[@SEED],...] [--out results/hymirec]
                          [--report-only]

Every run is `sheaf train STORE --model hymirec --seed S` plus its flags, in its own directory under
<out>_work named by its flags. A finished run is reused; one that stopped part-way (a killed process,
an ended session) resumes from its last.safetensors, exactly as the uninterrupted run would have. Runs
that mean the same thing share a directory (w = 1 is both an ablation and a sweep point).

Runs (the default model: s = 2 interests, w = 4, n = 50 recent, N_c = 4 coarse queries, width 64,
dropout 0.5, every one of the 1,682 items a negative):
  main        HyMiRec; HyMiRec --item-ids (a learned ID embedding added to each item's projected content),
              on --seeds (3)
  ablations   --no-lightweight; --embeddings E.npy (float32 rows instead of codes); a euclidean codebook
              at the same 8 bytes per item (store <store>-euclidean, L8 K256); --no-indicator; without
              DMIL (--interests 1 --window 1: one interest, the next item); without window targets
              (--window 1); --matching greedy; on --study-seeds (1), against HyMiRec on the same seeds
  sweep       s in 1, 2, 3, 4 (w = 4) and w in 1, 2, 4, 8 (s = 2), on --study-seeds

Two drivers may run at once on different parts (one with --parts main, one with --parts ablations,sweep):
the main table's runs train only under --parts main, and the others only read them when finished.
--only trains just the named runs, in the given order (a session too short for the whole study spends
its hours on the runs it needs most); every other run is only read.

Each run costs 1–2 hours of one core on MovieLens-100K (20–45 epochs of 60–150 s), so the main table
(6 runs) and the ablations and sweep (12 more on one seed) take about 30 core-hours: several sessions
with 2 runs at once. Run it in parts; every finished run is kept.

Writes <out>.md, <out>.json and <out>.png (R@10 and N@10 against s and against w). The report also
evaluates every finished model once more with `sheaf evaluate --json` (SHEAF_EVALUATE_BIN, default
.build/release/sheaf; cached in the run's evaluate.json) for two more tables: how each model uses its
interests, and test Recall@10 by how many behaviours precede the target, beside SASRec's. The SASRec rows of
the main table come from tools/sasrec-compare's run directories (results/sasrec_compare_work) when
they are there, for the same seeds.
"""
import argparse
import json
import os
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# SHEAF_BIN: another sheaf binary (a study that spans sessions keeps one build: results/bin/).
# SHEAF_EVALUATE_BIN: the binary that evaluates finished models for the interest and history-length tables
# (default: .build/release/sheaf).
SHEAF = os.environ.get("SHEAF_BIN") or os.path.join(ROOT, ".build", "release", "sheaf")
DATA = os.path.join(ROOT, "data", "ml-100k")
METRICS = ["recall@10", "recall@50", "recall@200", "ndcg@10", "ndcg@50", "ndcg@200", "mrr@10"]
SHOWN = ["recall@10", "recall@50", "recall@200", "ndcg@10", "ndcg@50", "ndcg@200"]

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sasrec_compare  # noqa: E402  (its store, its Sheaf runs, the SASRec runs' directories)
from sasrec_compare import binaries_named, mean_std, run  # noqa: E402


def ensure_euclidean_store(store):
    """The same items and histories under a euclidean residual codebook of the same bytes per item
    (8 levels of 256 codes: 8 B, as the cosine L4 K256 codes with 8-bit magnitudes)."""
    sasrec_compare.ensure_store(store, codebook=("--metric", "euclidean", "--levels", "8", "--codes", "256"))


def variants(store, euclidean):
    emb, ids = f"{DATA}/item_embeddings.npy", f"{DATA}/item_ids.npy"
    main = ("HyMiRec", store, [])
    with_ids = ("HyMiRec + item IDs", store, ["--item-ids"])
    ablations = [
        ("w/o lightweight recommender", store, ["--no-lightweight"]),
        ("float32 embeddings instead of codes", store, ["--embeddings", emb, "--content-ids", ids]),
        ("euclidean codebook (same 8 B/item)", euclidean, []),
        ("w/o indicator embedding", store, ["--no-indicator"]),
        ("w/o DMIL (s = 1, next item)", store, ["--interests", "1", "--window", "1"]),
        ("w/o window targets (w = 1)", store, ["--window", "1"]),
        ("greedy max matching", store, ["--matching", "greedy"]),
    ]
    sweep_s = [(f"s = {s}", store, [] if s == 2 else ["--interests", str(s)]) for s in (1, 2, 3, 4)]
    sweep_w = [(f"w = {w}", store, [] if w == 4 else ["--window", str(w)]) for w in (1, 2, 4, 8)]
    return main, [with_ids], ablations, sweep_s, sweep_w


def key(store, flags, base_store):
    """A run's directory name: its store and flags (the float32 file by name)."""
    parts = ["hymirec"] + (["euclidean"] if store != base_store else [])
    i = 0
    while i < len(flags):
        f = flags[i].lstrip("-")
        if i + 1 < len(flags) and not flags[i + 1].startswith("--"):
            v = os.path.basename(flags[i + 1]).replace(".npy", "")
            if f == "content-ids":
                i += 2
                continue
            parts.append(f"{f}-{v}")
            i += 2
        else:
            parts.append(f)
            i += 1
    return "_".join(parts)


def train(store, base_store, flags, seed, a, read_only):
    """`sheaf train STORE --model hymirec` with `flags`, in a directory named by them (reused when
    finished, resumed when stopped part-way, only read when `read_only`), as tools/sasrec-compare runs
    its Sheaf sides."""
    return sasrec_compare.sheaf_side(store, a.out, seed, a, ["--model", "hymirec"] + flags, key(store, flags, base_store),
                                     read_only=read_only)


# The interest diagnostics need a sheaf whose `evaluate --json` describes the interests (2026-12-01 on);
# evaluating only reads a finished model, so it need not be the binary that trained it.
EVALUATE_SHEAF = os.environ.get("SHEAF_EVALUATE_BIN") or os.path.join(ROOT, ".build", "release", "sheaf")


def evaluation(model_dir, store, test):
    """`sheaf evaluate --json` of a finished run (cached in its evaluate.json): its test metrics by history
    length and, for HyMiRec, how it uses its interests. None when the evaluating binary is missing or
    predates them. The evaluation must reproduce the run's own test metrics (`test`)."""
    cache = os.path.join(model_dir, "evaluate.json")
    # A cache older than the model (a run trained again in the same directory) is stale.
    if os.path.exists(cache) and os.path.getmtime(cache) >= os.path.getmtime(os.path.join(model_dir, "model.safetensors")):
        with open(cache) as f:
            return json.load(f)
    if not os.path.exists(EVALUATE_SHEAF):
        sys.stderr.write(f"{os.path.relpath(EVALUATE_SHEAF, ROOT)} is missing: no interest or history-length tables "
                         "(build it, or set SHEAF_EVALUATE_BIN)\n")
        return None
    e = json.loads(run([EVALUATE_SHEAF, "evaluate", store, "--model", model_dir, "--json", "--threads", "1"]).stdout)
    if "testByHistory" not in e:
        sys.stderr.write(f"{os.path.relpath(EVALUATE_SHEAF, ROOT)} predates sheaf evaluate's history buckets: no interest "
                         "or history-length tables (rebuild it, or set SHEAF_EVALUATE_BIN)\n")
        return None
    bad = {m: (v, test[m]) for m, v in e["test"].items() if abs(v - test[m]) > 1e-9}
    if bad:
        sys.exit(f"{model_dir}: sheaf evaluate's test metrics differ from the run's own: {bad}")
    with open(cache, "w") as f:
        json.dump(e, f, indent=1)
    return e


SASREC_WORK = os.path.join(ROOT, "results", "sasrec_compare_work")


def sasrec_runs(side, seeds, epochs, patience):
    """tools/sasrec-compare's finished Sheaf runs of `side` ("sheaf", "sheaf-content", ...) on these
    seeds: (directory, test metrics) each."""
    out = []
    for s in seeds:
        d = os.path.join(SASREC_WORK, f"{side}-e{epochs}-p{patience}-seed{s}")
        if os.path.exists(os.path.join(d, "metrics.json")):
            with open(os.path.join(d, "metrics.json")) as f:
                out.append((d, json.load(f)["outcome"]["test"]))
    return out


def sasrec_rows(seeds, epochs, patience):
    """Test metrics of tools/sasrec-compare's runs for these seeds, per side (missing sides left out)."""
    out = {}
    sides = [("Sheaf SASRec (IDs)", "sheaf"), ("Sheaf SASRec, content from codes", "sheaf-content"),
             ("Sheaf SASRec, content from float32", "sheaf-content-float32")]
    for name, d in sides:
        rs = [test for _, test in sasrec_runs(d, seeds, epochs, patience)]
        if rs:
            out[name] = rs
    rs = []
    for s in seeds:
        p = os.path.join(SASREC_WORK, f"recbole-e{epochs}-p{patience}-seed{s}.json")
        try:
            with open(p) as f:
                rep = json.load(f)
            if rep.get("complete"):
                rs.append(rep["runs"][0]["test"])
        except (OSError, ValueError):
            pass
    if rs:
        out["RecBole 1.2.1 SASRec"] = rs
    return out


def cell(tests, m):
    mu, sd = mean_std([t[m] for t in tests])
    return f"{mu:.4f} ± {sd:.4f}"


def history_tokens():
    """Per training example of the window split: (tokens the lightweight recommender reads, tokens the
    refined one reads), from the same file the store was loaded from (n = 50, max history 1024)."""
    from collections import Counter
    with open(f"{DATA}/ml-100k.inter") as f:
        next(f)
        counts = Counter(line.split("\t", 1)[0] for line in f)
    light = recent = 0
    for n in counts.values():
        t = n - 2 if n >= 3 else n
        for c in range(1, t):
            light += min(1024, max(0, c - 50))
            recent += min(c, 50)
    return light, recent


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds of the main table")
    ap.add_argument("--study-seeds", type=int, nargs="+", default=[1],
                    help="seeds of the ablations and the sweep (default: 1; each of their runs costs as much as a main one)")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2, help="runs at once (their epoch times are then not a speed result)")
    ap.add_argument("--parts", default="main,ablations,sweep")
    ap.add_argument("--store", default=os.path.join(ROOT, "results", "sasrec-store"))
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "hymirec"))
    ap.add_argument("--report-only", action="store_true", help="write the report from the finished runs; train nothing")
    ap.add_argument("--only", default="",
                    help="train only these runs, in this order, as comma-separated directory keys (hymirec_window-1) or "
                         "key@seed (hymirec_item-ids@2); every other run of --parts is only read (a name that matches "
                         "no run is refused with the list of runs)")
    a = ap.parse_args()
    parts = a.parts.split(",")
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    euclidean = a.store + "-euclidean"
    if not a.report_only:
        sasrec_compare.ensure_store(a.store)
        if "ablations" in parts:
            ensure_euclidean_store(euclidean)
    main_v, others, ablations, sweep_s, sweep_w = variants(a.store, euclidean)
    wanted = [main_v] + others
    if "ablations" in parts:
        wanted += ablations
    if "sweep" in parts:
        wanted += sweep_s + sweep_w
    # Distinct runs (by directory) with their seeds: the main table's variants on --seeds, the ablations
    # and the sweep on --study-seeds; main first, seeds interleaved so each seed's set fills in together.
    distinct, seeds_of = {}, {}
    main_keys = {key(st, fl, a.store) for _, st, fl in [main_v] + others}
    for name, store, flags in wanted:
        k = key(store, flags, a.store)
        distinct.setdefault(k, (store, flags))
        seeds_of[k] = sorted(set(seeds_of.get(k, [])) | set(a.seeds if k in main_keys else a.study_seeds))
    all_seeds = sorted(set(a.seeds) | set(a.study_seeds))
    jobs = [(seed, k) for seed in all_seeds for k in distinct if seed in seeds_of[k]]
    only = [o for o in a.only.split(",") if o]
    for o in only:
        if not any(o in (k, f"{k}@{seed}") for seed, k in jobs):
            sys.exit(f"--only {o}: no such run in --parts {a.parts} (runs: "
                     + ", ".join(f"{k}@{seed}" for seed, k in jobs) + ")")

    def rank(j):
        """A job's place under --only (the first entry naming it), or None when --only leaves it out."""
        seed, k = j
        return next((i for i, o in enumerate(only) if o in (k, f"{k}@{seed}")), None)

    if only:  # the runs to train first, in --only's order; the rest are read after them
        jobs = sorted(jobs, key=lambda j: (rank(j) is None, rank(j) or 0))

    def job(seed, k):
        store, flags = distinct[k]
        # The main table's runs (HyMiRec's is also the ablations' reference and the sweep's s = 2, w = 4
        # point) train only with --parts main, so that a second driver on the other parts never runs
        # one of them at the same time; other parts read them once finished.
        read_only = a.report_only or (k in main_keys and "main" not in parts) or (bool(only) and rank((seed, k)) is None)
        r = train(store, a.store, flags, seed, a, read_only)
        if r is None:
            return None
        r["store"] = store
        print(f"seed {seed} {k}: best epoch {r['best_epoch']} of {r['epochs']}, test Recall@10 "
              f"{r['test']['recall@10']:.4f} NDCG@10 {r['test']['ndcg@10']:.4f}, {r['median_train_seconds']:.1f} s/epoch",
              file=sys.stderr, flush=True)
        return r

    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        done = list(pool.map(lambda j: job(*j), jobs))
    results = {}
    for (seed, k), r in zip(jobs, done):
        if r is not None:
            results.setdefault(k, []).append(r)

    def runs(store, flags, seeds=None):
        """The finished runs of a variant, on `seeds` only when given (the ablations and the sweep compare
        every variant on the same seeds, the study seeds)."""
        return [r for r in results.get(key(store, flags, a.store), []) if seeds is None or r["seed"] in seeds]

    machine = next((r["machine"] for rs in results.values() for r in rs if r.get("machine")), {}) or {}
    lines = [f"# HyMiRec on MovieLens-100K (main table seeds {a.seeds}; ablation and sweep seeds {a.study_seeds})", "",
             f"Machine: {machine.get('cpu', '?')}; OpenBLAS core {machine.get('blasCoreSelection', '?')}; "
             f"{a.threads} thread(s) per run, {a.jobs} run(s) at once; sheaf binaries {binaries_named([r for rs in results.values() for r in rs])}. Leave-one-out by time, full ranking of all "
             f"items, best epoch on validation NDCG@10 (≤ {a.epochs} epochs, patience {a.patience}), test once. "
             "Values: test mean ± sample standard deviation over seeds (n = seeds that finished).", ""]
    summary = {}
    header = "| model | n | " + " | ".join(m.replace("recall", "R").replace("ndcg", "N") for m in SHOWN) + " |"
    rule = "|---|---:|" + "---:|" * len(SHOWN)

    # Table 2.
    hy = runs(main_v[1], main_v[2])
    peers = sasrec_rows(a.seeds, a.epochs, a.patience)
    lines += ["## Main table (the seed's Table 2)", "", header, rule]
    variants_run = [("HyMiRec (codes)", hy)] + [(name, runs(st, fl)) for name, st, fl in others]
    ours = [(name, [r["test"] for r in rs]) for name, rs in variants_run if rs]
    for name, tests in list(peers.items()) + ours:
        lines.append(f"| {name} | {len(tests)} | " + " | ".join(cell(tests, m) for m in SHOWN) + " |")
        summary[name] = {m: dict(zip(("mean", "std"), mean_std([t[m] for t in tests]))) for m in METRICS}
    base = peers.get("Sheaf SASRec (IDs)")
    if hy and base:
        lines.append("")
        for name, rs in variants_run:
            if not rs:
                continue
            h, b = [r["test"]["recall@10"] for r in rs], [t["recall@10"] for t in base]
            ratio = statistics.fmean(h) / statistics.fmean(b)
            met = ratio >= 1.09 and min(h) > max(b)
            summary.setdefault("goal", {})[name] = dict(ratio=ratio, met=met)
            lines.append(f"- {name} / Sheaf SASRec (IDs), test Recall@10: {ratio:.3f}× (goal ≥ 1.09×, every HyMiRec "
                         f"seed above every SASRec seed): **{'met' if met else 'not met'}**.")
    elif not base:
        lines += ["", "The SASRec rows come from `tools/sasrec-compare` (its run directories for these seeds); none "
                      "has finished yet."]

    # Table 4.
    if "ablations" in parts and hy:
        lines += ["", "## Ablations (the seed's Table 4)", "",
                  "Δ R@10: the variant minus HyMiRec, paired by seed (mean ± std).", "",
                  "| variant | n | " + " | ".join(m.replace("recall", "R").replace("ndcg", "N") for m in SHOWN) + " | Δ R@10 |",
                  rule + "---:|"]
        full = {r["seed"]: r["test"]["recall@10"] for r in hy}
        summary["ablations"] = {}
        for name, store, flags in [("HyMiRec", *main_v[1:])] + ablations:
            rs = runs(store, flags, a.study_seeds)
            if not rs:
                lines.append(f"| {name} | 0 | " + " | ".join("—" for _ in SHOWN) + " | — |")
                continue
            deltas = [r["test"]["recall@10"] - full[r["seed"]] for r in rs if r["seed"] in full]
            d = mean_std(deltas) if deltas else None  # None: HyMiRec has not finished on these seeds
            tests = [r["test"] for r in rs]
            shown = " | |" if name == "HyMiRec" else f" | {d[0]:+.4f} ± {d[1]:.4f} |" if d else " | — |"
            lines.append(f"| {name} | {len(rs)} | " + " | ".join(cell(tests, m) for m in SHOWN) + shown)
            summary["ablations"][name] = dict(delta_recall10=d, **{m: mean_std([t[m] for t in tests]) for m in METRICS})

    # Figure 3.
    if "sweep" in parts and hy:
        lines += ["", "## Interests s and window w (the seed's Figure 3)", ""]
        plot = {}
        for label, group in (("s", sweep_s), ("w", sweep_w)):
            lines += [f"| {label} | n | R@10 | N@10 | R@50 | N@50 |", "|---:|---:|---:|---:|---:|---:|"]
            xs, r10, n10 = [], [], []
            for name, store, flags in group:
                rs = runs(store, flags, a.study_seeds)
                x = int(name.split("= ")[1])
                if not rs:
                    lines.append(f"| {x} | 0 | — | — | — | — |")
                    continue
                tests = [r["test"] for r in rs]
                lines.append(f"| {x} | {len(rs)} | {cell(tests, 'recall@10')} | {cell(tests, 'ndcg@10')} | "
                             f"{cell(tests, 'recall@50')} | {cell(tests, 'ndcg@50')} |")
                xs.append(x)
                r10.append(mean_std([t["recall@10"] for t in tests]))
                n10.append(mean_std([t["ndcg@10"] for t in tests]))
            plot[label] = (xs, r10, n10)
            lines.append("")
        summary["sweep"] = {k: dict(x=v[0], recall10=v[1], ndcg10=v[2]) for k, v in plot.items()}
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
            for ax, (label, (xs, r10, n10)) in zip(axes, plot.items()):
                for series, name in ((r10, "Recall@10"), (n10, "NDCG@10")):
                    ax.errorbar(xs, [m for m, _ in series], yerr=[s for _, s in series], marker="o", capsize=3, label=name)
                ax.set_xlabel("interests s (w = 4)" if label == "s" else "window w (s = 2)")
                ax.set_xticks(xs)
                ax.grid(alpha=0.3)
            axes[0].set_ylabel("test metric (mean ± std over seeds)")
            axes[0].legend()
            fig.suptitle("HyMiRec on MovieLens-100K")
            fig.tight_layout()
            fig.savefig(a.out + ".png", dpi=120)
            lines += [f"Plot: `{os.path.relpath(a.out + '.png', ROOT)}`.", ""]
        except ImportError:
            lines += ["(matplotlib is missing: no plot.)", ""]

    # How the interests are used (sheaf evaluate's InterestUsage), for every finished run with s > 1.
    usage_rows = []
    seen = set()
    for name, store, flags in [main_v] + others + (ablations if "ablations" in parts else []) + \
            (sweep_s + sweep_w if "sweep" in parts else []):
        k = key(store, flags, a.store)
        if k in seen:
            continue
        seen.add(k)
        for r in results.get(k, []):
            e = evaluation(r["dir"], r["store"], r["test"])
            if e is not None and e.get("interests") and e["interests"]["interests"] > 1:
                usage_rows.append((name, r, dict(e["interests"], test=e["test"])))
    if usage_rows:
        lines += ["## How the interests are used (test targets)", "",
                  f"From `sheaf evaluate --json` of each finished model (binary `{os.path.relpath(EVALUATE_SHEAF, ROOT)}`; "
                  "cached as evaluate.json in the run's directory). An item comes from the interest that gives its score "
                  "(the maximum over interests). Per interest, in order: the share of test targets and of the top-10 items "
                  "that come from it, and Recall@10 with items ranked by that interest alone.", "",
                  "| run | seed | s | mean cos(r_j, r_k) | targets from each | top-10 from each | R@10 alone | R@10 (max) |",
                  "|---|---:|---:|---:|---|---|---|---:|"]
        summary["interests"] = []
        for name, r, u in usage_rows:
            pct = lambda xs: " / ".join(f"{100 * x:.0f}%" for x in xs)
            alone = [x["recall@10"] for x in u["alone"]]
            lines.append(f"| {name} | {r['seed']} | {u['interests']} | {u['meanPairwiseCosine']:.3f} | {pct(u['targetShare'])} | "
                         f"{pct(u['topShare'])} | {' / '.join(f'{x:.4f}' for x in alone)} | {u['test']['recall@10']:.4f} |")
            summary["interests"].append(dict(run=name, seed=r["seed"], **{k: u[k] for k in (
                "interests", "meanPairwiseCosine", "targetShare", "topShare")}, recall10_alone=alone,
                recall10=u["test"]["recall@10"]))
        lines.append("")

    # Test Recall@10 by the behaviours before the target: where reading the whole history should help.
    by_history = [(name, [(d, a.store, test) for d, test in sasrec_runs(side, a.seeds, a.epochs, a.patience)])
                  for name, side in (("Sheaf SASRec (IDs)", "sheaf"), ("Sheaf SASRec, content from codes", "sheaf-content"))]
    for name, store, flags in [main_v] + others + (ablations[:1] if "ablations" in parts else []):
        by_history.append((name, [(r["dir"], r["store"], r["test"]) for r in runs(store, flags)]))
    table = []
    for name, rs in by_history:
        es = [e for e in (evaluation(*r) for r in rs) if e is not None]
        if es:
            table.append((name, es))
    if table:
        buckets = [(b["from"], b.get("to"), b["users"]) for b in table[0][1][0]["testByHistory"]]
        # Every run ranks the same test users, so every evaluation has the same buckets.
        assert all([(b["from"], b.get("to"), b["users"]) for b in e["testByHistory"]] == buckets for _, es in table for e in es)
        label = lambda f, t: f"{f}–{t}" if t is not None else f"{f}+"
        lines += ["## Test Recall@10 by the behaviours before the target", "",
                  "Users grouped by how many behaviours precede their test target (the recent window is the last 50; the "
                  "lightweight recommender reads the rest). Mean ± std over the seeds that finished (n).", "",
                  "| model | n | " + " | ".join(f"{label(f, t)} ({u} users)" for f, t, u in buckets) + " |",
                  "|---|---:|" + "---:|" * len(buckets)]
        summary["by_history"] = {}
        for name, es in table:
            cells, values = [], []
            for i in range(len(buckets)):
                xs = [e["testByHistory"][i]["metrics"]["recall@10"] for e in es]
                m, sd = mean_std(xs)
                cells.append(f"{m:.4f} ± {sd:.4f}")
                values.append(dict(mean=m, std=sd))
            lines.append(f"| {name} | {len(es)} | " + " | ".join(cells) + " |")
            summary["by_history"][name] = values
        lines.append("")

    # Cost: codes against float32 rows.
    f32 = runs(a.store, ablations[1][2]) if "ablations" in parts else []
    if hy and f32:
        light, recent = history_tokens()
        st = json.loads(run([SHEAF, "stats", a.store, "--json"]).stdout)["statistics"]
        st["bytesPerItem"] = next(c["bytesPerItem"] for c in st["codebooks"] if c["active"])
        tokens = light + recent
        tc = statistics.median(r["median_train_seconds"] for r in hy)
        tf = statistics.median(r["median_train_seconds"] for r in f32)
        lines += ["## Cost: codes against float32 rows", "",
                  f"- Training seconds per epoch (median over epochs and seeds): codes {tc:.1f}, float32 {tf:.1f}. The "
                  "study's runs share the machine with a varying number of other runs, so these seconds are not a speed "
                  "result and their ratio means nothing; the same-run comparison, steps of both interleaved, is "
                  "`sheaf-measure model-step` (README, \"Training with the code-space input layer\").",
                  f"- Item features each epoch reads: {tokens:,} tokens ({light:,} by the lightweight recommender, "
                  f"{recent:,} by the refined one). Fetched per example from the store as codes that is "
                  f"{tokens * 8 / 2**20:,.1f} MiB (the 8-byte code of each behaviour); as float32 rows {tokens * 1536 / 2**20:,.1f} MiB "
                  f"(1,536 B), 192× more.",
                  f"- What a run actually reads from the store, once (not per epoch): the histories "
                  f"({st['historyBytes'] / 2**20:.2f} MiB stored) and the {st['items']:,} items' codes "
                  f"({st['items'] * st['bytesPerItem'] / 2**10:.1f} KiB; as float32 rows "
                  f"{st['items'] * st['dimension'] * 4 / 2**20:.2f} MiB). MovieLens-100K's item table fits in memory, so "
                  "the trainer decodes it once; the per-epoch figure above is what a trainer fetching each example's "
                  "features from the store would read.", ""]
        summary["cost"] = dict(seconds_codes=tc, seconds_float32=tf, tokens_per_epoch=tokens)

    lines += ["± is the sample standard deviation over seeds (0 with one seed)."]
    md = "\n".join(lines) + "\n"
    with open(a.out + ".md", "w") as f:
        f.write(md)
    with open(a.out + ".json", "w") as f:
        json.dump(dict(seeds=a.seeds, epochs=a.epochs, patience=a.patience, threads=a.threads, jobs=a.jobs,
                       runs=results, peers=peers, summary=summary), f, indent=1)
    print(md)


if __name__ == "__main__":
    main()
