#!/usr/bin/env python3
"""The Python `lmdb` binding reading raw float32 histories from a Sheaf benchmark store.

    tools/.venv/bin/python tools/lmdb_baseline.py --probe PROBE.json --out ROWS.json [--requests 500]

PROBE.json is written by `sheaf-measure bench synthetic|real --probe`: the store path, D, the names of
the float32 baseline tables (`aux.raw_items`, one float32 row per item under an 8-byte big-endian id;
`aux.raw_histories`, a user's whole history as consecutive float32 rows), and per history-length
bucket the measured users with their item ids and Sheaf's p50/p99 fetch + decode latency from the
same run.

Per request (a user drawn at random, seed 1), each in its own read transaction, like the Swift side:
    blob    txn.get(user) -> np.frombuffer(...) -> np.copyto into a preallocated (n, D) float32 array
    rows    txn.get(item) for each behaviour -> copy into row i of the preallocated array
Writes report rows (the schema of sheaf-measure bench): Sheaf's latency beside Python's, ratio =
Python / Sheaf (how many times faster Sheaf rebuilds the history than Python reads raw float32).
"""
import argparse
import json
import struct
import sys
import time

import lmdb
import numpy as np


def quantile(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round((len(s) - 1) * p)))]


def open_probe(path):
    """The probe, and its store opened with the `lmdb` binding: (probe, env, float32 items table)."""
    with open(path) as f:
        probe = json.load(f)
    env = lmdb.open(probe["store"], readonly=True, lock=False, max_dbs=32, subdir=True)
    return probe, env, env.open_db(probe["rawItemsTable"].encode(), create=False)


def read_rows(env, items_db, items, out):
    """The `rows` baseline: one read transaction, txn.get(item) per behaviour into row i of `out`."""
    with env.begin(db=items_db, buffers=True) as txn:
        for i, item in enumerate(items):
            out[i] = np.frombuffer(txn.get(struct.pack(">Q", item)), dtype=np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--probe", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=20)
    a = ap.parse_args()
    probe, env, items_db = open_probe(a.probe)
    d = probe["dimension"]
    hist_db = env.open_db(probe["rawHistoriesTable"].encode(), create=False)
    rng = np.random.default_rng(1)
    rows = []
    for bucket in probe["buckets"]:
        users, items = bucket["users"], bucket["items"]
        longest = max(len(x) for x in items)
        out = np.empty((longest, d), dtype=np.float32)
        blob_s, rows_s = [], []
        requests = a.requests if longest < 10_000 else max(10, a.requests // 10)
        for rep in range(requests + a.warmup):
            k = int(rng.integers(len(users)))
            key = struct.pack(">Q", users[k])
            t0 = time.perf_counter_ns()
            with env.begin(db=hist_db, buffers=True) as txn:
                v = txn.get(key)
                arr = np.frombuffer(v, dtype=np.float32).reshape(-1, d)
                np.copyto(out[: arr.shape[0]], arr)
            t1 = time.perf_counter_ns()
            read_rows(env, items_db, items[k], out)
            t2 = time.perf_counter_ns()
            if rep >= a.warmup:
                blob_s.append((t1 - t0) / 1000)
                rows_s.append((t2 - t1) / 1000)
        mean_len = sum(len(x) for x in items) / len(items)
        what = f"history of {bucket['name'] if bucket['name'] != 'all' else f'{mean_len:.0f} (mean)'} behaviours, D={d}"
        params = {"users": str(len(users)), "requests": str(requests), "lmdb": lmdb.__version__, "numpy": np.__version__}
        for path, samples, name in [("blob", blob_s, "Python lmdb: float32 history blob -> numpy"),
                                    ("rows", rows_s, "Python lmdb: float32 row per behaviour -> numpy")]:
            for q, sheaf in [("p50", bucket["sheafP50Microseconds"]), ("p99", bucket["sheafP99Microseconds"])]:
                py = quantile(samples, 0.5 if q == "p50" else 0.99)
                rows.append(dict(section="side-by-side", key=f"python-lmdb/{probe['dataset']}/{bucket['name']}/{path}/{q}",
                                 label=f"fetch + decode {q} (Swift, same run), {what}", unit="µs", sheaf=sheaf,
                                 baselineName=name, baseline=py, better="lower", ratio=py / sheaf, params=params))
        print(f"lmdb_baseline: {probe['dataset']} {bucket['name']}: python blob p50 {quantile(blob_s, 0.5):.1f} µs, "
              f"rows p50 {quantile(rows_s, 0.5):.1f} µs; sheaf p50 {bucket['sheafP50Microseconds']:.1f} µs", file=sys.stderr)
    with open(a.out, "w") as f:
        json.dump(dict(suite="python-lmdb", dataset=probe["dataset"], rows=rows,
                       notes=[f"Python lmdb {lmdb.__version__}, numpy {np.__version__}; one read transaction per request"],
                       details={}), f, indent=1)


if __name__ == "__main__":
    main()
