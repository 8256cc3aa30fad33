#!/usr/bin/env python3
"""`sheaf items load` at L3 K4096 against faiss ResidualQuantizer `compute_codes`, interleaved on the same rows.

    tools/load-vs-faiss [--rounds 5] [--cores auto,Prescott] [--search auto] [--out results/load_vs_faiss]

Data: the 100,000 MiniLM word embeddings of tools/prepare-words, split 80/20 with
np.random.default_rng(0).permutation (the first 80,000 rows of the permutation train, the other 20,000
are held out). Sheaf: a cosine L3 K4096 8-bit codebook trained on the 80,000 (`sheaf codebook train`),
then every round a fresh copy of the store loads the 20,000 held-out rows (`sheaf items load --timings`).
faiss: ResidualQuantizer(384, 8, 8) (8 bytes per item, like Sheaf's codes) with max_beam_size = 1,
trained on 50,000 of the training rows; every round `compute_codes` encodes the same 20,000 rows on 2
threads and on 1 (the best of 3 calls each).

Each round runs Sheaf once per OpenBLAS core (OPENBLAS_CORETYPE unset = OpenBLAS's own choice, or
forced) and faiss right after, so each ratio compares runs a few seconds apart on a shared, noisy
machine. Sheaf's rate is the total of its --timings stages (reading and checking the input, encoding,
packing, LMDB puts and durable commits: everything but process start-up and opening the store), and
also shown from the command's wall time.

Writes <out>.md and <out>.json and prints the table.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHEAF = os.path.join(ROOT, ".build", "release", "sheaf")


def run(cmd, env=None, check=True):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if check and p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def split(work):
    train, test = os.path.join(work, "words_train.npy"), os.path.join(work, "words_test.npy")
    if not (os.path.exists(train) and os.path.exists(test)):
        e = np.load(os.path.join(ROOT, "data", "words", "embeddings.npy"))
        perm = np.random.default_rng(0).permutation(len(e))
        n = int(len(e) * 0.8)
        np.save(train, e[perm[:n]])
        np.save(test, e[perm[n:]])
    return train, test


def sheaf_template(work, train):
    store = os.path.join(work, "store-template")
    if not os.path.exists(os.path.join(store, "data.mdb")):
        shutil.rmtree(store, ignore_errors=True)
        run([SHEAF, "init", store, "--dim", "384"])
        p = run([SHEAF, "codebook", "train", store, "--input", train, "--levels", "3", "--codes", "4096",
                 "--sample", "0"])
        print(p.stdout.strip(), file=sys.stderr)
    else:
        run([SHEAF, "migrate", store, "--quiet"])  # a template an older build made (no-op when current)
    return store


def sheaf_load(template, work, test, core, search):
    store = os.path.join(work, "store-run")
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(template, store)
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    if core != "auto":
        env["OPENBLAS_CORETYPE"] = core
    start = time.perf_counter()
    p = run([SHEAF, "items", "load", store, "--input", test, "--timings", "--search", search], env=env)
    wall = time.perf_counter() - start
    total = re.search(r"^total\s+([0-9.]+) s", p.stderr, re.M)
    encode = re.search(r"^encode \((.*?)\)\s+([0-9.]+) s", p.stderr, re.M)
    if not total or not encode:
        sys.exit(f"no --timings table in:\n{p.stderr}")
    shutil.rmtree(store, ignore_errors=True)
    return dict(total_seconds=float(total.group(1)), encode_seconds=float(encode.group(2)),
                search=encode.group(1), wall_seconds=wall, timings=p.stderr.strip())


def faiss_model(train, seed=1):
    import faiss
    x = np.load(train)
    rows = np.random.default_rng(seed).choice(len(x), 50_000, replace=False)
    rq = faiss.ResidualQuantizer(384, 8, 8)
    rq.max_beam_size = 1
    rq.cp.min_points_per_centroid = 1
    faiss.omp_set_num_threads(2)
    rq.train(np.ascontiguousarray(x[np.sort(rows)]))
    return rq


def faiss_rate(rq, x, threads):
    import faiss
    faiss.omp_set_num_threads(threads)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        rq.compute_codes(x)
        best = min(best, time.perf_counter() - t)
    return len(x) / best


def summary(values):
    return dict(median=statistics.median(values), min=min(values), max=max(values))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cores", default="auto,Prescott", help="OpenBLAS cores to run Sheaf under (auto = unset)")
    ap.add_argument("--search", default="auto", help="sheaf items load --search")
    ap.add_argument("--work", default=os.path.join(ROOT, "results", "load-vs-faiss"))
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "load_vs_faiss"))
    a = ap.parse_args()
    import faiss
    os.makedirs(a.work, exist_ok=True)
    train, test = split(a.work)
    template = sheaf_template(a.work, train)
    x = np.ascontiguousarray(np.load(test))
    n = len(x)
    rq = faiss_model(train)
    doctor = json.loads(run([SHEAF, "doctor", "--json"]).stdout)
    cores = a.cores.split(",")
    rounds = []
    for r in range(a.rounds):
        row = dict(round=r + 1, sheaf={})
        for core in cores:
            row["sheaf"][core] = sheaf_load(template, a.work, test, core, a.search)
        row["faiss_2_threads"] = faiss_rate(rq, x, 2)
        row["faiss_1_thread"] = faiss_rate(rq, x, 1)
        for core in cores:
            s = row["sheaf"][core]
            s["items_per_s"] = n / s["total_seconds"]
            s["encode_items_per_s"] = n / s["encode_seconds"]
            s["wall_items_per_s"] = n / s["wall_seconds"]
            s["vs_faiss_2_threads"] = s["items_per_s"] / row["faiss_2_threads"]
        print(f"round {r + 1}: faiss {row['faiss_2_threads']:,.0f}/s (2 threads), "
              + ", ".join(f"sheaf[{c}] {row['sheaf'][c]['items_per_s']:,.0f}/s "
                          f"({row['sheaf'][c]['vs_faiss_2_threads']:.2f}×)" for c in cores), file=sys.stderr)
        rounds.append(row)

    def fmt(s, digits=0):
        f = f"{{:,.{digits}f}}"
        return f"{f.format(s['median'])} ({f.format(s['min'])}–{f.format(s['max'])})"

    m = doctor.get("machine", {})
    lines = [f"# `sheaf items load` against faiss `compute_codes`: {n:,} held-out words, L3 K4096 / RQ 8×8",
             "",
             f"Machine: {m.get('cpu')} ({m.get('cpus')} CPUs; {m.get('cpuFeatures')}); OpenBLAS core "
             f"{m.get('blasCore')} ({m.get('blasCoreSelection')}); {m.get('blasConfiguration')}.",
             f"faiss {faiss.__version__}, beam 1; Sheaf --search {a.search}; {a.rounds} interleaved rounds, "
             "median (min–max) over rounds.",
             "",
             "| | items/s | Sheaf / faiss (2 threads), per round |",
             "|---|---:|---:|",
             f"| faiss RQ 8×8 beam 1, 2 threads | {fmt(summary([r['faiss_2_threads'] for r in rounds]))} | |",
             f"| faiss RQ 8×8 beam 1, 1 thread | {fmt(summary([r['faiss_1_thread'] for r in rounds]))} | |"]
    result = dict(n=n, rounds=rounds, doctor=doctor, faiss_version=faiss.__version__, search=a.search,
                  summary={})
    for core in cores:
        label = "OpenBLAS's choice" if core == "auto" else f"OPENBLAS_CORETYPE={core}"
        load = summary([r["sheaf"][core]["items_per_s"] for r in rounds])
        enc = summary([r["sheaf"][core]["encode_items_per_s"] for r in rounds])
        wall = summary([r["sheaf"][core]["wall_items_per_s"] for r in rounds])
        ratio = summary([r["sheaf"][core]["vs_faiss_2_threads"] for r in rounds])
        wall_ratio = summary([r["sheaf"][core]["wall_items_per_s"] / r["faiss_2_threads"] for r in rounds])
        result["summary"][core] = dict(load=load, encode=enc, wall=wall, vs_faiss_2_threads=ratio,
                                       wall_vs_faiss_2_threads=wall_ratio)
        lines += [f"| Sheaf load ({label}), all stages | {fmt(load)} | {fmt(ratio, 2)}× |",
                  f"| Sheaf load ({label}), whole command (wall) | {fmt(wall)} | {fmt(wall_ratio, 2)}× |",
                  f"| Sheaf encode stage alone ({label}) | {fmt(enc)} | |"]
    lines += ["", "Last round's stage timings:", ""]
    for core in cores:
        lines += [f"{core}:", "```", rounds[-1]["sheaf"][core]["timings"], "```"]
    md = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out + ".md", "w") as f:
        f.write(md)
    with open(a.out + ".json", "w") as f:
        json.dump(result, f, indent=1)
    print(md)


if __name__ == "__main__":
    main()
