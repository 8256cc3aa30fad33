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

Records (tools/records, kept in git; tools/study_records.py): a run directory here does not outlive the
machine it ran on, and the study takes more hours than one machine lives. So every finished run
directory the driver sees is recorded (its metrics, machine, binary and `sheaf evaluate --json`), and a
run whose directory is gone is read from its record instead of being trained again (--only NAME trains
it anyway, on this machine). Runs of the same seed on machines with different OpenBLAS cores are
different runs and both are kept: the main table takes each seed's first run, an ablation is compared
with HyMiRec on its own seed and core, and the sweep puts every point on one core where it can. The
records of runs lost before records existed hold only what the README kept (Recall@10, NDCG@10, best
epoch); the report shows "—" for the rest.

Each run costs 1–2 hours of one core on MovieLens-100K (17–60 epochs of 76–116 s with two runs at once),
so the main table (6 runs) and the ablations and sweep (12 more on one seed) took about 16.5 run-hours:
8–9 hours of a 2-core machine with --jobs 2 (the report's "How long the study takes"). Run it in parts; every finished run is kept.

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
INTER = os.path.join(DATA, "ml-100k.inter")  # the behaviours the store was loaded from
METRICS = ["recall@10", "recall@50", "recall@200", "ndcg@10", "ndcg@50", "ndcg@200", "mrr@10"]
SHOWN = ["recall@10", "recall@50", "recall@200", "ndcg@10", "ndcg@50", "ndcg@200"]

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sasrec_compare  # noqa: E402  (its store, its Sheaf runs, the SASRec runs' directories)
import study_records  # noqa: E402  (finished runs kept in git, for the runs whose directories are gone)
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


def evaluation(model_dir, store, test, recorded=None):
    """`sheaf evaluate --json` of a finished run (cached in its evaluate.json): its test metrics by history
    length and, for HyMiRec, how it uses its interests. None when the evaluating binary is missing or
    predates them. The evaluation must reproduce the run's own test metrics (`test`). A recorded run whose
    directory is gone (`model_dir` None) gives its record's evaluation (`recorded`), or None."""
    if model_dir is None:
        return recorded
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


SASREC_SIDES = [("Sheaf SASRec (IDs)", "sheaf"), ("Sheaf SASRec, content from codes", "sheaf-content"),
                ("Sheaf SASRec, content from float32", "sheaf-content-float32"), ("RecBole 1.2.1 SASRec", "recbole")]


def sasrec_runs(side, seeds, epochs, patience):
    """tools/sasrec-compare's finished runs of `side` ("sheaf", "sheaf-content", ..., "recbole") on these
    seeds, one per seed: its run directory's (recorded in tools/records/sasrec as it is read) or, when that
    is gone, the first recorded run of the seed. Each a dict with seed, test, dir (None for a record)."""
    out = []
    for s in seeds:
        local = None
        if side == "recbole":
            p = os.path.join(SASREC_WORK, f"recbole-e{epochs}-p{patience}-seed{s}.json")
            try:
                with open(p) as f:
                    rep = json.load(f)
                if rep.get("complete"):
                    local = dict(seed=s, test=rep["runs"][0]["test"], dir=None, finished=p,
                                 machine=dict(blasCore="PyTorch"))
            except (OSError, ValueError):
                pass
        else:
            d = os.path.join(SASREC_WORK, f"{side}-e{epochs}-p{patience}-seed{s}")
            if os.path.exists(os.path.join(d, "metrics.json")):
                with open(os.path.join(d, "metrics.json")) as f:
                    m = json.load(f)
                o = m["outcome"]
                local = dict(seed=s, test=o["test"], validation=o["validation"], best_epoch=o["bestEpoch"],
                             epochs=len(o["epochs"]), machine=m.get("machine"), dir=d,
                             binaries=sasrec_compare.binaries(d))
        if local is not None:
            study_records.write("sasrec", f"{side}-e{epochs}-p{patience}", local)
            out.append(local)
            continue
        recorded = study_records.load("sasrec", f"{side}-e{epochs}-p{patience}", s)
        if recorded:
            out.append(recorded[0])
    return out


def sasrec_rows(seeds, epochs, patience):
    """Test metrics of tools/sasrec-compare's runs for these seeds, per side (missing sides left out)."""
    out = {}
    for name, side in SASREC_SIDES:
        rs = [r["test"] for r in sasrec_runs(side, seeds, epochs, patience)]
        if rs:
            out[name] = rs
    return out


def cell(tests, m):
    """mean ± std of metric m, or "—" when a run lacks it (a record kept only the README's metrics)."""
    if not tests or any(m not in t for t in tests):
        return "—"
    return pm(*mean_std([t[m] for t in tests]), len(tests))


def pm(mu, sd, n, signed=False):
    """mean ± sample std over n seeds; the mean alone for one seed, which has no spread."""
    v = f"{mu:+.4f}" if signed else f"{mu:.4f}"
    return v if n == 1 else f"{v} ± {sd:.4f}"


def stats(tests):
    """{metric: (mean, std)} over the metrics every test has."""
    return {m: mean_std([t[m] for t in tests]) for m in METRICS if tests and all(m in t for t in tests)}


def history_tokens():
    """Per training example of the window split: (tokens the lightweight recommender reads, tokens the
    refined one reads), from the same file the store was loaded from (n = 50, max history 1024)."""
    from collections import Counter
    with open(INTER) as f:
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
    ap.add_argument("--records", default=study_records.RECORDS,
                    help="where finished runs are recorded and read when their directories are gone (kept in git; "
                         "see tools/study_records.py)")
    ap.add_argument("--only", default="",
                    help="train only these runs, in this order, as comma-separated directory keys (hymirec_window-1) or "
                         "key@seed (hymirec_item-ids@2); every other run of --parts is only read (a name that matches "
                         "no run is refused with the list of runs)")
    a = ap.parse_args()
    study_records.RECORDS = a.records
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
        """The finished versions of a run (oldest first): its run directory's, trained or resumed here when
        allowed, and the recorded ones (tools/records; a recorded run is not trained again unless --only
        names it)."""
        store, flags = distinct[k]
        name = f"{k}-e{a.epochs}-p{a.patience}"  # as the run's directory, without the seed
        recorded = study_records.load("hymirec", name, seed)
        # The main table's runs (HyMiRec's is also the ablations' reference and the sweep's s = 2, w = 4
        # point) train only with --parts main, so that a second driver on the other parts never runs
        # one of them at the same time; other parts read them once finished.
        read_only = (a.report_only or (k in main_keys and "main" not in parts) or (bool(only) and rank((seed, k)) is None)
                     or (not only and bool(recorded)))
        local = train(store, a.store, flags, seed, a, read_only)
        versions = study_records.merged("hymirec", name, seed, local)
        for r in versions:
            r["store"] = store
            print(f"seed {seed} {k} ({study_records.core(r)}{', recorded' if r['dir'] is None else ''}): best epoch "
                  f"{r['best_epoch']} of {r['epochs']}, test Recall@10 {r['test']['recall@10']:.4f} NDCG@10 "
                  f"{r['test']['ndcg@10']:.4f}" + (f", {r['median_train_seconds']:.1f} s/epoch" if r.get("median_train_seconds") else ""),
                  file=sys.stderr, flush=True)
        return versions

    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        done = list(pool.map(lambda j: job(*j), jobs))
    results = {}
    for (seed, k), versions in zip(jobs, done):
        results.setdefault(k, []).extend(versions)
    # Every finished run directory is recorded (with its evaluation) before the report reads it.
    for k, versions in results.items():
        for r in versions:
            if r["dir"] is not None:
                e = evaluation(r["dir"], r["store"], r["test"])
                if study_records.write("hymirec", f"{k}-e{a.epochs}-p{a.patience}", r, e):
                    print(f"recorded {k}@{r['seed']} ({study_records.core(r)})", file=sys.stderr)

    def versions(store, flags, seeds=None):
        """Every finished version of a variant's runs (a seed run on two machines is two versions), on
        `seeds` only when given."""
        return [r for r in results.get(key(store, flags, a.store), []) if seeds is None or r["seed"] in seeds]

    def runs(store, flags, seeds=None):
        """The finished runs of a variant, one per seed (its first version), on `seeds` only when given (the
        ablations and the sweep compare every variant on the same seeds, the study seeds)."""
        return study_records.first_per_seed(versions(store, flags, seeds))

    every = [r for rs in results.values() for r in rs]
    machines = sorted({(r["machine"] or {}).get("cpu", "?") + ", OpenBLAS " + study_records.core(r)
                       for r in every if r.get("machine")})
    recorded = sum(r["dir"] is None for r in every)
    lines = [f"# HyMiRec on MovieLens-100K (main table seeds {a.seeds}; ablation and sweep seeds {a.study_seeds})", "",
             f"Machines: {'; '.join(machines) or '?'}. {a.threads} thread(s) per run; sheaf binaries "
             f"{binaries_named(every)}. {recorded} of the {len(every)} runs are read from their records in "
             "tools/records (their run directories are gone with the machine that ran them). Leave-one-out by time, "
             f"full ranking of all items, best epoch on validation NDCG@10 (≤ {a.epochs} epochs, patience "
             f"{a.patience}), test once. Values: test mean ± sample standard deviation over seeds (n = seeds that "
             "finished; a seed run on two machines counts with its first run). A run's OpenBLAS core names its "
             "machine: the same seed on two cores is two different runs.", ""]
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
        summary[name] = {m: dict(zip(("mean", "std"), v)) for m, v in stats(tests).items()}
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
                  "Δ R@10: the variant minus HyMiRec on the same seed and the same OpenBLAS core (machine), mean ± std "
                  "over seeds; \"—\" when HyMiRec has no run there.", "",
                  "| variant | n | core | " + " | ".join(m.replace("recall", "R").replace("ndcg", "N") for m in SHOWN) + " | Δ R@10 |",
                  "|---|---:|---|" + "---:|" * len(SHOWN) + "---:|"]
        reference = {(r["seed"], study_records.core(r)): r for r in versions(main_v[1], main_v[2], a.study_seeds)}
        table = [(name, runs(store, flags, a.study_seeds)) for name, store, flags in ablations]
        cores = list(dict.fromkeys([study_records.core(r) for _, rs in table for r in rs]
                                   + [study_records.core(r) for r in runs(main_v[1], main_v[2], a.study_seeds)]))
        refs = [(f"HyMiRec ({c})", [r for (_, rc), r in sorted(reference.items()) if rc == c]) for c in cores]
        summary["ablations"] = {}
        for name, rs in [(n, rs) for n, rs in refs if rs] + table:
            c = ", ".join(dict.fromkeys(study_records.core(r) for r in rs))
            if not rs:
                lines.append(f"| {name} | 0 | | " + " | ".join("—" for _ in SHOWN) + " | — |")
                continue
            deltas = [r["test"]["recall@10"] - reference[(r["seed"], study_records.core(r))]["test"]["recall@10"]
                      for r in rs if (r["seed"], study_records.core(r)) in reference]
            d = mean_std(deltas) if len(deltas) == len(rs) else None
            tests = [r["test"] for r in rs]
            shown = " | |" if name.startswith("HyMiRec (") else f" | {pm(*d, len(deltas), signed=True)} |" if d else " | — |"
            lines.append(f"| {name} | {len(rs)} | {c} | " + " | ".join(cell(tests, m) for m in SHOWN) + shown)
            summary["ablations"][name] = dict(delta_recall10=d, cores=c, **stats(tests))

    # Figure 3.
    if "sweep" in parts and hy:
        lines += ["", "## Interests s and window w (the seed's Figure 3)", ""]
        plot = {}
        # Every point on one machine where it can be: the OpenBLAS core most of the sweep's other points used.
        counts = {}
        for _, store, flags in sweep_s + sweep_w:
            for r in runs(store, flags, a.study_seeds) if flags else []:  # not the reference (s = 2, w = 4)
                counts[study_records.core(r)] = counts.get(study_records.core(r), 0) + 1
        study_core = max(counts, key=counts.get) if counts else None
        # How many users the test ranks (every run ranks the same ones), from any run evaluated since records began.
        test_users = max([(r.get("evaluate") or {}).get("users", 0) for _, store, flags in sweep_s + sweep_w
                          for r in versions(store, flags, a.study_seeds)] + [0])
        lines += [f"Each point on the {study_core} machine where it has a run there (the core column says). "
                  f"The plot's bars: the standard deviation over seeds; for a point with one seed, Recall@10's "
                  f"binomial standard error over the {test_users} test users (NDCG@10 then has none).", ""]
        for label, group in (("s", sweep_s), ("w", sweep_w)):
            lines += [f"| {label} | n | core | R@10 | N@10 | R@50 | N@50 |", "|---:|---:|---|---:|---:|---:|---:|"]
            xs, r10, n10 = [], [], []
            for name, store, flags in group:
                on_core = [r for r in versions(store, flags, a.study_seeds) if study_records.core(r) == study_core]
                rs = study_records.first_per_seed(on_core) if on_core else runs(store, flags, a.study_seeds)
                x = int(name.split("= ")[1])
                if not rs:
                    lines.append(f"| {x} | 0 | | — | — | — | — |")
                    continue
                tests = [r["test"] for r in rs]
                lines.append(f"| {x} | {len(rs)} | {', '.join(dict.fromkeys(study_records.core(r) for r in rs))} | "
                             f"{cell(tests, 'recall@10')} | {cell(tests, 'ndcg@10')} | "
                             f"{cell(tests, 'recall@50')} | {cell(tests, 'ndcg@50')} |")
                xs.append(x)
                r10.append(mean_std([t["recall@10"] for t in tests]))
                n10.append(mean_std([t["ndcg@10"] for t in tests]))
                if len(rs) == 1:  # no spread over seeds: Recall@10's binomial standard error over the test users
                    p = r10[-1][0]
                    r10[-1] = (p, (p * (1 - p) / test_users) ** 0.5 if test_users else 0.0)
                    n10[-1] = (n10[-1][0], 0.0)
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
            one_seed = len(a.study_seeds) == 1
            axes[0].set_ylabel("test metric" + (" (bars: R@10 ± 1 s.e.)" if one_seed else " (mean ± std over seeds)"))
            handles, names = axes[0].get_legend_handles_labels()
            fig.legend(handles, names, loc="upper right", ncol=2, frameon=False)
            fig.suptitle("HyMiRec on MovieLens-100K" + (f" (seed {a.study_seeds[0]})" if one_seed else ""), x=0.3)
            fig.tight_layout(rect=(0, 0, 1, 0.97))
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
            e = evaluation(r["dir"], r["store"], r["test"], r.get("evaluate"))
            if e is not None and e.get("interests") and e["interests"]["interests"] > 1:
                usage_rows.append((name, r, dict(e["interests"], test=e["test"])))
    if usage_rows:
        lines += ["## How the interests are used (test targets)", "",
                  f"From `sheaf evaluate --json` of each finished model (binary `{os.path.relpath(EVALUATE_SHEAF, ROOT)}`; "
                  "cached as evaluate.json in the run's directory, and kept in its record). An item comes from the interest that gives its score "
                  "(the maximum over interests). Per interest, in order: the share of test targets and of the top-10 items "
                  "that come from it, and Recall@10 with items ranked by that interest alone.", "",
                  "| run | seed | core | s | mean cos(r_j, r_k) | targets from each | top-10 from each | R@10 alone | R@10 (max) |",
                  "|---|---:|---|---:|---:|---|---|---|---:|"]
        summary["interests"] = []
        for name, r, u in usage_rows:
            pct = lambda xs: " / ".join(f"{100 * x:.0f}%" for x in xs)
            alone = [x["recall@10"] for x in u["alone"]]
            lines.append(f"| {name} | {r['seed']} | {study_records.core(r)} | {u['interests']} | {u['meanPairwiseCosine']:.3f} | {pct(u['targetShare'])} | "
                         f"{pct(u['topShare'])} | {' / '.join(f'{x:.4f}' for x in alone)} | {u['test']['recall@10']:.4f} |")
            summary["interests"].append(dict(run=name, seed=r["seed"], core=study_records.core(r), **{k: u[k] for k in (
                "interests", "meanPairwiseCosine", "targetShare", "topShare")}, recall10_alone=alone,
                recall10=u["test"]["recall@10"]))
        lines.append("")

    # Test Recall@10 by the behaviours before the target: where reading the whole history should help.
    by_history = [(name, [(r["dir"], a.store, r["test"], r.get("evaluate")) for r in sasrec_runs(side, a.seeds, a.epochs, a.patience)])
                  for name, side in SASREC_SIDES[:2]]
    for name, store, flags in [main_v] + others + (ablations[:1] if "ablations" in parts else []):
        by_history.append((name, [(r["dir"], r["store"], r["test"], r.get("evaluate")) for r in runs(store, flags)]))
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
                cells.append(pm(m, sd, len(xs)))
                values.append(dict(mean=m, std=sd))
            lines.append(f"| {name} | {len(es)} | " + " | ".join(cells) + " |")
            summary["by_history"][name] = values
        lines.append("")

    # Cost: codes against float32 rows.
    f32 = runs(a.store, ablations[1][2]) if "ablations" in parts else []
    # A report written from tools/records alone (a fresh checkout) has the runs but not what the cost
    # section counts: the MovieLens file, the store and the binary that reads its statistics.
    missing = [os.path.relpath(x, ROOT) for x in (INTER, SHEAF, a.store) if not os.path.exists(x)]
    if hy and f32 and missing:
        sys.stderr.write(f"no cost section: {', '.join(missing)} missing\n")
        lines += ["## Cost: codes against float32 rows", "",
                  f"Not written: {', '.join(missing)} missing. `tools/demo` fetches the data; `tools/hymirec-compare` "
                  "without `--report-only` builds the store (and trains every run not yet recorded).", ""]
    elif hy and f32:
        light, recent = history_tokens()
        st = json.loads(run([SHEAF, "stats", a.store, "--json"]).stdout)["statistics"]
        st["bytesPerItem"] = next(c["bytesPerItem"] for c in st["codebooks"] if c["active"])
        tokens = light + recent
        sec = lambda x: "not recorded" if x != x else f"{x:.1f}"
        tc = statistics.median([r["median_train_seconds"] for r in hy if r.get("median_train_seconds")] or [float("nan")])
        tf = statistics.median([r["median_train_seconds"] for r in f32 if r.get("median_train_seconds")] or [float("nan")])
        lines += ["## Cost: codes against float32 rows", "",
                  f"- Training seconds per epoch (median over epochs and seeds): codes {sec(tc)}, float32 {sec(tf)}. The "
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

    # How long the whole study takes: every run once (each seed's first version), at the epoch time measured.
    study = [r for rs in results.values() for r in study_records.first_per_seed(rs)]
    timed = sorted(r["median_train_seconds"] + (r.get("median_valid_seconds") or 0) for r in study
                   if r.get("median_train_seconds"))
    if study and timed:
        epochs = sum(r["epochs"] for r in study)
        per = timed[len(timed) // 2] if len(timed) % 2 else (timed[len(timed) // 2 - 1] + timed[len(timed) // 2]) / 2
        lines += ["## How long the study takes", "",
                  f"{len(study)} runs, {epochs:,} epochs in all (early stopping sets each run's count). An epoch "
                  f"took {timed[0]:.0f}–{timed[-1]:.0f} s (median {per:.0f} s, training and validation) in the "
                  f"{len(timed)} runs whose records keep their seconds, {a.threads} thread(s) per run with two runs "
                  f"sharing the machine. At the median that is {epochs * per / 3600:.1f} run-hours: about "
                  f"{epochs * per / 3600 / 2:.1f} hours on 2 cores with --jobs 2, plus minutes for the euclidean "
                  "store's codebook and the evaluations.", ""]
        summary["study_time"] = dict(runs=len(study), epochs=epochs, seconds_per_epoch=per,
                                     run_hours=epochs * per / 3600)

    lines += ["± is the sample standard deviation over seeds, shown when n > 1."]
    md = "\n".join(lines) + "\n"
    with open(a.out + ".md", "w") as f:
        f.write(md)
    with open(a.out + ".json", "w") as f:
        json.dump(dict(seeds=a.seeds, epochs=a.epochs, patience=a.patience, threads=a.threads, jobs=a.jobs,
                       runs=results, peers=peers, summary=summary), f, indent=1)
    print(md)


if __name__ == "__main__":
    main()
