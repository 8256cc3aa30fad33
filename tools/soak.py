#!/usr/bin/env python3
"""Soak test of a Sheaf store under a killed writer and concurrent readers.

    tools/soak [--minutes 10] [--readers 3] [--store /tmp/sheaf-soak] [--seed 1]

One writer runs `sheaf` commands one after another: behaviour loads (new events, about 10% of them
late, reaching back into sealed segments, and repeats of earlier loads), and now and then a codebook
change (`codebook train` + `items load`, which re-codes every item). At random moments it is killed
with SIGKILL; then `sheaf verify` must pass, and the killed command is re-run to completion (loads are
idempotent). Meanwhile N reader threads run `sheaf history --json` on random users and check each
read: time order, no repeated (timestamp, item), every behaviour of every load that had committed
before the read began is there (else a behaviour was lost), and nothing is there that no load wrote
(else the read was torn). At the end every committed behaviour must be in the store.

Writes results/soak.md and results/soak.json: operations by kind, kills, verify runs, errors, torn
reads, behaviours lost. Exit status 1 when any of the last three is not 0.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHEAF = os.path.join(ROOT, ".build", "release", "sheaf")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--readers", type=int, default=3)
    ap.add_argument("--store", default="/tmp/sheaf-soak")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sheaf", default=SHEAF)
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "soak"))
    a = ap.parse_args()
    rng = random.Random(a.seed)
    shutil.rmtree(a.store, ignore_errors=True)
    work = a.store + "-inputs"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    import numpy as np  # noqa: E402 (only for the item rows)

    items, dim, users = 500, 16, 200
    x = np.random.default_rng(a.seed).standard_normal((items, dim)).astype(np.float32)
    np.save(f"{work}/items.npy", x)
    np.save(f"{work}/ids.npy", np.arange(items, dtype=np.uint64))

    def sheaf(*args, check=True):
        p = subprocess.run([a.sheaf, *args], capture_output=True, text=True)
        if check and p.returncode != 0:
            raise SystemExit(f"sheaf {' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
        return p

    sheaf("init", a.store, "--dim", str(dim), "--segment-capacity", "16")
    sheaf("codebook", "train", a.store, "--input", f"{work}/items.npy", "--levels", "2", "--codes", "16")
    sheaf("items", "load", a.store, "--input", f"{work}/items.npy", "--ids", f"{work}/ids.npy")

    lock = threading.Lock()
    committed = {}      # user -> set of (timestamp, item) of loads that finished
    attempted = {}      # user -> set of every (timestamp, item) any load tried to write
    counts = {"loads": 0, "late_behaviours": 0, "repeated_loads": 0, "codebook_changes": 0, "reads": 0,
              "kills": 0, "verify_runs": 0, "errors": 0, "torn_reads": 0, "lost_behaviours": 0}
    problems = []
    clock = [1_000_000]
    history = []        # the loads written so far: (path, rows)

    def new_load(n):
        rows = []
        for _ in range(n):
            u = rng.randrange(users)
            if rng.random() < 0.10 and clock[0] > 1_000_100:
                t = rng.randrange(1_000_000, clock[0])   # late: anywhere back in time
                counts["late_behaviours"] += 1
            else:
                clock[0] += rng.randrange(1, 5)
                t = clock[0]
            rows.append((u, rng.randrange(items), t, rng.randrange(5)))
        path = f"{work}/load-{len(history)}.csv"
        with open(path, "w") as f:
            f.write("user,item,timestamp,label\n")
            for r in rows:
                f.write(f"{r[0]},{r[1]},{r[2]},{r[3]}\n")
        history.append((path, rows))
        return path, rows

    def note_attempt(rows):
        with lock:
            for u, i, t, _ in rows:
                attempted.setdefault(u, set()).add((t, i))

    def note_commit(rows):
        with lock:
            for u, i, t, _ in rows:
                committed.setdefault(u, set()).add((t, i))

    stop = threading.Event()

    def reader(k):
        r = random.Random(a.seed * 1000 + k)
        while not stop.is_set():
            u = r.randrange(users)
            with lock:
                must = set(committed.get(u, ()))
            p = subprocess.run([a.sheaf, "history", a.store, "--user", str(u), "--json"], capture_output=True, text=True)
            with lock:
                counts["reads"] += 1
                may = set(attempted.get(u, ()))
            if p.returncode != 0:
                if "has no history" in p.stderr and not must:
                    continue
                with lock:
                    counts["errors"] += 1
                    problems.append(f"read user {u}: exit {p.returncode}: {p.stderr.strip()[-300:]}")
                continue
            got = [(b["timestamp"], b["item"]) for b in json.loads(p.stdout)["behaviors"]]
            torn = (any(got[j][0] > got[j + 1][0] for j in range(len(got) - 1)) or len(set(got)) != len(got)
                    or not set(got) <= may)
            lost = must - set(got)
            with lock:
                if torn:
                    counts["torn_reads"] += 1
                    problems.append(f"torn read of user {u}: {len(got)} behaviours")
                if lost:
                    counts["lost_behaviours"] += len(lost)
                    problems.append(f"user {u}: {len(lost)} committed behaviour(s) missing, e.g. {sorted(lost)[:3]}")

    threads = [threading.Thread(target=reader, args=(k,), daemon=True) for k in range(a.readers)]
    for t in threads:
        t.start()

    def run_writer(args, rows=None):
        """Runs a writer command, killing it at a random moment about a third of the time."""
        if rows is not None:
            note_attempt(rows)
        p = subprocess.Popen([a.sheaf, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killed = False
        if rng.random() < 0.35:
            time.sleep(rng.random() * 0.25)
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                killed = True
        out, err = p.communicate()
        if killed and p.returncode == -signal.SIGKILL:
            counts["kills"] += 1
            v = sheaf("verify", a.store, check=False)
            counts["verify_runs"] += 1
            if v.returncode != 0:
                counts["errors"] += 1
                problems.append(f"verify after a kill of `{' '.join(args[:2])}`: {v.stdout.strip()[-500:]}")
            return run_writer(args, rows)   # finish what was killed
        if p.returncode != 0:
            counts["errors"] += 1
            problems.append(f"sheaf {' '.join(args[:2])}: exit {p.returncode}: {err.strip()[-500:]}")
            return
        if rows is not None:
            note_commit(rows)

    deadline = time.time() + a.minutes * 60
    while time.time() < deadline:
        roll = rng.random()
        if roll < 0.05:
            codes = rng.choice([8, 16, 32])
            run_writer(["codebook", "train", a.store, "--input", f"{work}/items.npy", "--levels", "2", "--codes", str(codes)])
            run_writer(["items", "load", a.store, "--input", f"{work}/items.npy", "--ids", f"{work}/ids.npy"])
            counts["codebook_changes"] += 1
        elif roll < 0.15 and history:
            path, rows = rng.choice(history)
            run_writer(["behaviors", "load", a.store, "--input", path, "--chunk-size", "50"], rows)
            counts["repeated_loads"] += 1
        else:
            path, rows = new_load(rng.randrange(200, 2000))
            run_writer(["behaviors", "load", a.store, "--input", path, "--chunk-size", "50"], rows)
            counts["loads"] += 1
    stop.set()
    for t in threads:
        t.join()

    # Every committed behaviour must be there at the end.
    final_lost = 0
    for u, must in committed.items():
        p = sheaf("history", a.store, "--user", str(u), "--json")
        got = {(b["timestamp"], b["item"]) for b in json.loads(p.stdout)["behaviors"]}
        final_lost += len(must - got)
    counts["lost_behaviours"] += final_lost
    v = sheaf("verify", a.store, check=False)
    counts["verify_runs"] += 1
    if v.returncode != 0:
        counts["errors"] += 1
        problems.append("final verify: " + v.stdout.strip()[-500:])
    stats = sheaf("stats", a.store, "--json")
    st = json.loads(stats.stdout)["statistics"]
    report = {"minutes": a.minutes, "readers": a.readers, "seed": a.seed, "counts": counts, "problems": problems[:50],
              "store": {"users": st["users"], "behaviors": st["behaviors"], "segments": st["segments"]}}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out + ".json", "w") as f:
        json.dump(report, f, indent=2)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    c = counts
    md = [f"# Soak: {a.minutes:g} min, 1 writer killed at random, {a.readers} readers", "",
          f"Machine: {cpu}. Command: `tools/soak --minutes {a.minutes:g} --readers {a.readers} --seed {a.seed}`.", "",
          "| operations | count |", "|---|---:|",
          f"| behaviour loads (new) | {c['loads']:,} |", f"| of which late behaviours | {c['late_behaviours']:,} |",
          f"| repeated loads | {c['repeated_loads']:,} |", f"| codebook changes (train + re-code) | {c['codebook_changes']:,} |",
          f"| reads (`sheaf history`) | {c['reads']:,} |", f"| kill -9 of the writer | {c['kills']:,} |",
          f"| `sheaf verify` runs | {c['verify_runs']:,} |", "", "| failures | count |", "|---|---:|",
          f"| errors | {c['errors']} |", f"| torn reads | {c['torn_reads']} |", f"| behaviours lost | {c['lost_behaviours']} |", "",
          f"Store at the end: {st['users']:,} users, {st['behaviors']:,} behaviours in {st['segments']:,} segments."]
    if problems:
        md += ["", "Problems:", ""] + [f"- {p}" for p in problems[:20]]
    with open(a.out + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    bad = c["errors"] or c["torn_reads"] or c["lost_behaviours"]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
