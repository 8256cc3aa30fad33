#!/usr/bin/env python3
"""Measures tools/spark_shards.py: 8 shards of a 2,000,000-behaviour log in Spark local mode on this
machine's cores, against one `sheaf behaviors load` of the whole log, in the same run.

    tools/.venv/bin/python tools/spark_shards_bench.py [--sheaf .build/release/sheaf] [--copies 20] [--shards 8]

The log is real data made larger: MovieLens-100K's 100,000 ratings (data/ml-100k/ml-100k.inter, which
tools/demo fetches) written `--copies` times, copy c under user ids c · 10,000 + user, so each copy is
a distinct set of 943 users with the real items, timestamps and ratings. The base store holds a
codebook trained on the items' MiniLM embeddings (D = 384, 4 levels × 256) and the 1,682 items' codes.

Writes results/spark_shards.md and .json. Both sides load the same CSV into a copy of the same base
store; the Spark side includes starting Spark (reported apart), partitioning by the shard hash,
the 8 loads in parallel tasks and the exactly-once check.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    return r


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sheaf", default=os.environ.get("SHEAF_BIN") or os.path.join(root, ".build", "release", "sheaf"))
    p.add_argument("--copies", type=int, default=20)
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--work", default=os.path.join(root, "results", "spark_shards_work"))
    p.add_argument("--out", default=os.path.join(root, "results", "spark_shards"))
    args = p.parse_args()
    sheaf = os.path.abspath(args.sheaf)
    data = os.path.join(root, "data", "ml-100k")
    inter = os.path.join(data, "ml-100k.inter")
    if not os.path.exists(inter):
        sys.exit(f"{inter} is missing: run tools/demo (or tools/fetch-sample) first")
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)

    # The log.
    log = os.path.join(args.work, "behaviours.csv")
    with open(inter) as f:
        next(f)
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    with open(log, "w") as out:
        out.write("user,item,timestamp,label\n")
        for c in range(args.copies):
            for user, item, rating, ts in rows:
                out.write(f"{c * 10_000 + int(user)},{item},{int(float(ts))},{rating}\n")
    behaviours = len(rows) * args.copies
    print(f"log: {behaviours:,} behaviours ({os.path.getsize(log) / 1e6:.1f} MB CSV)", file=sys.stderr)

    # The base store: codebook and item codes, no histories.
    base = os.path.join(args.work, "base")
    run([sheaf, "init", base, "--dim", "384"])
    run([sheaf, "codebook", "train", base, "--input", os.path.join(data, "item_embeddings.npy"), "--levels", "4", "--codes", "256", "--seed", "1"])
    run([sheaf, "items", "load", base, "--input", os.path.join(data, "item_embeddings.npy"), "--ids", os.path.join(data, "item_ids.npy")])

    # One load of the whole log.
    single = os.path.join(args.work, "single")
    os.makedirs(single)
    shutil.copyfile(os.path.join(base, "data.mdb"), os.path.join(single, "data.mdb"))
    t = time.time()
    r = run(["/usr/bin/time", "-f", "%M", sheaf, "behaviors", "load", single, "--input", log, "--quiet"])
    single_seconds = time.time() - t
    single_rss_mb = int(r.stderr.strip().splitlines()[-1]) / 1024
    single_stats = json.loads(run([sheaf, "stats", single, "--json"]).stdout)["statistics"]

    # The Spark job.
    out_dir = os.path.join(args.work, "shards")
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    t = time.time()
    r = run([sys.executable, os.path.join(here, "spark_shards.py"), "--input", log, "--base-store", base, "--shards", str(args.shards),
             "--output", out_dir, "--master", args.master, "--sheaf", sheaf], env=env)
    spark_seconds = time.time() - t
    manifest = json.load(open(os.path.join(out_dir, "shards.json")))
    loads = [s["seconds_load"] for s in manifest["stores"]]

    result = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "master": args.master,
        "behaviours": behaviours,
        "distinct_behaviours": single_stats["behaviors"],
        "users": single_stats["users"],
        "shards": args.shards,
        "single_load_seconds": single_seconds,
        "single_load_peak_rss_mb": single_rss_mb,
        "spark_total_seconds": spark_seconds,
        "spark_session_seconds": manifest["seconds"]["session"],
        "spark_read_and_count_seconds": manifest["seconds"]["read_and_count"],
        "spark_build_seconds": manifest["seconds"]["build"],
        "shard_load_seconds": loads,
        "shard_behaviours": [s["behaviours"] for s in manifest["stores"]],
        "check_passed": not manifest["problems"] and manifest["behaviours"] == single_stats["behaviors"],
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=2)
    md = [
        f"# Building {args.shards} shards on Spark against one load",
        "",
        f"{behaviours:,} behaviours ({result['users']:,} users; MovieLens-100K × {args.copies} under distinct user ids), "
        f"D = 384, 4 × 256 codes. Machine: {result['cpu']}, {result['cores']} cores, Spark `{args.master}`.",
        "",
        "| side | wall | against one load |",
        "|---|---:|---:|",
        f"| one `sheaf behaviors load` of the whole log | {single_seconds:.1f} s (peak RSS {single_rss_mb:.0f} MB) | 1.00× |",
        f"| Spark job, whole | {spark_seconds:.1f} s | {spark_seconds / single_seconds:.2f}× |",
        f"| … starting Spark | {manifest['seconds']['session']:.1f} s | {manifest['seconds']['session'] / single_seconds:.2f}× |",
        f"| … reading the CSV, hashing, counting each shard's distinct behaviours (for the check) | "
        f"{manifest['seconds']['read_and_count']:.1f} s | {manifest['seconds']['read_and_count'] / single_seconds:.2f}× |",
        f"| … writing the shards' rows, the {args.shards} loads in parallel tasks | {manifest['seconds']['build']:.1f} s | "
        f"{manifest['seconds']['build'] / single_seconds:.2f}× |",
        f"| … the slowest shard's load alone | {max(loads):.1f} s | {max(loads) / single_seconds:.2f}× |",
        "",
        f"Shard loads: {', '.join(f'{x:.1f}' for x in loads)} s; shard sizes {', '.join(f'{x:,}' for x in result['shard_behaviours'])} "
        f"behaviours. Exactly-once check: {'passed' if result['check_passed'] else 'FAILED'}.",
        "",
        "Command: `tools/.venv/bin/python tools/spark_shards_bench.py` (after `tools/python-env --spark` and a release build).",
    ]
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0 if result["check_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
