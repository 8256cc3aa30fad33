#!/usr/bin/env python3
"""Reading histories into numpy from Python: the `sheaf` package (tools/python/sheaf) against the Python
`lmdb` binding reading the same histories as float32 rows, one get per behaviour (the README's baseline),
interleaved request by request in one process (the paths in a shuffled order per request), beside the Swift call's p50 on the same store from the
`sheaf-measure` run that made it (the probe; another process, measured minutes before).

    lib=$(tools/build-clib)
    .build/release/sheaf-measure bench synthetic --out /tmp/s.json --probe /tmp/probe.json --keep /tmp/syn \\
        --dim 384 --items 100000 --buckets 1000:1000:100 --name synthetic-384
    SHEAF_LIBRARY=$lib PYTHONPATH=tools/python tools/.venv/bin/python tools/python_read_bench.py --probe /tmp/probe.json

Per request (a user drawn at random, seed 1):
    package   store.history(user): ids, timestamps, labels and the (n, D) float32 embeddings, new arrays
    package-out  store.history(user, out=store.buffers(n)): the same into arrays reused across requests
    library   sheaf_read_history called through ctypes into preallocated arrays, its length known: the
              Swift call itself (plus ctypes' dispatch, about a microsecond), in the same process
    lmdb-rows txn.get(item) per behaviour into a preallocated (n, D) array (no ids, timestamps or labels)
Prints p50/p99 per path and the ratios; --json writes them.
"""
import argparse
import ctypes
import json
import time

import numpy as np

import sheaf
from lmdb_baseline import open_probe, quantile, read_rows  # tools/ is on sys.path when this script runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--probe", required=True)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--json")
    a = ap.parse_args()
    probe, env, items_db = open_probe(a.probe)
    d = probe["dimension"]
    store = sheaf.Store(probe["store"])
    rng = np.random.default_rng(1)
    results = []
    for bucket in probe["buckets"]:
        users, items = bucket["users"], bucket["items"]
        longest = max(len(x) for x in items)
        out = np.empty((longest, d), np.float32)
        times = {"package": [], "package-out": [], "library": [], "lmdb-rows": []}
        reused = store.buffers(longest)
        lib = sheaf.library()
        P = ctypes.POINTER
        raw = [a.ctypes.data_as(P(t)) for a, t in zip(reused, (ctypes.c_uint64, ctypes.c_int64, ctypes.c_float, ctypes.c_float))]
        count = ctypes.c_int64(0)
        def package(k):
            assert len(store.history(users[k]).items) == len(items[k])

        def package_out(k):
            assert len(store.history(users[k], out=reused).items) == len(items[k])

        def library(k):
            code = lib.sheaf_read_history(store._handle, users[k], longest, raw[0], raw[1], raw[2], raw[3], ctypes.byref(count))
            assert code == 0 and count.value == len(items[k])

        def lmdb_rows(k):
            read_rows(env, items_db, items[k], out)

        paths = {"package": package, "package-out": package_out, "library": library, "lmdb-rows": lmdb_rows}
        for rep in range(a.requests + a.warmup):
            k = int(rng.integers(len(users)))
            # Every path reads the same user, in a shuffled order: none always finds the pages warm.
            for name in rng.permutation(list(paths)):
                t0 = time.perf_counter_ns()
                paths[name](k)
                t1 = time.perf_counter_ns()
                if rep >= a.warmup:
                    times[name].append((t1 - t0) / 1e3)
        r = {k: {"p50_us": quantile(v, 0.5), "p99_us": quantile(v, 0.99)} for k, v in times.items()}
        r.update(bucket=bucket["name"], dimension=d, swift_p50_us=bucket["sheafP50Microseconds"], requests=a.requests)
        p, l = r["package"]["p50_us"], r["lmdb-rows"]["p50_us"]
        po = r["package-out"]["p50_us"]
        lc = r["library"]["p50_us"]
        print(f"{probe['dataset']} {bucket['name']} behaviours, D={d}: package p50 {p:.1f} µs (into reused arrays {po:.1f} µs, "
              f"{po / bucket['sheafP50Microseconds']:.2f}× Swift, lmdb rows / it {l / po:.2f}×), "
              f"Swift (sheaf-measure, same store) {bucket['sheafP50Microseconds']:.1f} µs, lmdb float32 rows {l:.1f} µs; "
              f"package / Swift {p / bucket['sheafP50Microseconds']:.2f}×, lmdb rows / package {l / p:.2f}×; "
              f"same process: the library call {lc:.1f} µs, package / library call {p / lc:.2f}×, into reused arrays {po / lc:.2f}×")
        results.append(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(dataset=probe["dataset"], results=results, library=sheaf.versions()), f, indent=1)


if __name__ == "__main__":
    main()
