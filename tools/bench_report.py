#!/usr/bin/env python3
"""Renders tools/bench-report's suite files (DIR/raw/*.json) into report.md and report.json.

    python3 tools/bench_report.py --raw DIR/raw --out DIR --mode full|quick --command "..." [--python 0|1]

Standard library only. Every row is Sheaf's figure, a baseline's figure measured in the same run, and
the ratio "Sheaf's advantage": sheaf / baseline when higher is better, baseline / sheaf when lower is.
The goals of issue 5 are looked up by row key and stated as met or missed, with the margin.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import subprocess

SECTIONS = [
    ("bandwidth", "Bandwidth: bytes fetched per full history"),
    ("store", "Store: history fetch + decode latency and item gets"),
    ("projected", "Histories into a model's first layer: projected decode against float32 rows + sgemm"),
    ("decode", "Decode throughput (single thread)"),
    ("ingest", "Encode and load"),
    ("side-by-side", "Side by side: Python lmdb reading raw float32"),
    ("faiss", "Side by side: faiss ResidualQuantizer at equal bytes per item"),
]


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:
        return ""


def machine():
    lscpu = sh("lscpu")
    info = {}
    for line in lscpu.splitlines():
        k, _, v = line.partition(":")
        info[k.strip()] = v.strip()
    return {
        "cpu": info.get("Model name", platform.processor()),
        "cpus": info.get("CPU(s)", str(os.cpu_count())),
        "l2": info.get("L2 cache", ""),
        "l3": info.get("L3 cache", ""),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "swift": sh("swift --version 2>&1 | head -1"),
        "commit": sh("git rev-parse --short HEAD") + ("+dirty" if sh("git status --porcelain --untracked-files=no") else ""),
    }


def faiss_rows(path, dataset):
    """Rows from a tools/faiss_compare.py JSON: each Sheaf run beside each faiss run at equal bytes."""
    with open(path) as f:
        rep = json.load(f)
    rows = []
    sheaf = [r for r in rep["rows"] if r.get("source") not in ("faiss", "numpy")]
    faiss = [r for r in rep["rows"] if r.get("source") == "faiss"]
    on = f"{rep['n']}x{rep['d']}" + (", held-out" if rep.get("held_out") else ", in-sample")
    for s in sheaf:
        for fr in faiss:
            if fr["bytes_per_item"] != s["bytes_per_item"]:
                continue
            beam = fr.get("max_beam_size")
            for metric, unit, label in [("encode_items_per_s", "items/s", "encode"), ("decode_gb_per_s", "GB/s", "decode"),
                                        ("mean_cosine", "cosine", "mean cosine"), ("recall_at_10", "recall", "neighbour recall@10")]:
                if s.get(metric) is None or fr.get(metric) is None:
                    continue
                rows.append(dict(
                    section="faiss", key=f"faiss/{dataset}/{s['bytes_per_item']}B/beam{beam}/{metric}",
                    label=f"{label}, {s['name']} vs faiss beam {beam}, {s['bytes_per_item']} B/item, {on}", unit=unit,
                    sheaf=s[metric], baselineName=f"faiss RQ M{fr['bytes_per_item']}x8 beam {beam}", baseline=fr[metric],
                    better="higher", ratio=s[metric] / fr[metric] if fr[metric] else float("inf"),
                    params={"dataset": dataset, "bytes_per_item": str(s["bytes_per_item"])}))
    return rows, rep


def fmt(v, unit=""):
    if v is None:
        return "—"
    if unit in ("cosine", "recall"):
        return f"{v:.3f}"
    a = abs(v)
    if a >= 100_000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:,.0f}" if unit != "µs" else f"{v:,.1f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(rows):
    out = ["| measurement | unit | Sheaf | baseline | baseline value | Sheaf's advantage |", "|---|---|---:|---|---:|---:|"]
    for r in rows:
        out.append(f"| {r['label']} | {r['unit']} | {fmt(r['sheaf'], r['unit'])} | {r['baselineName']} | "
                   f"{fmt(r['baseline'], r['unit'])} | {r['ratio']:.2f}× |")
    return out


def decode_table(rows):
    grid = {}
    for r in rows:
        p = r["params"]
        k = (int(p["dimension"]), int(p["codes"]), int(p["levels"]), int(p["magnitude_bits"]),
             0 if p.get("centroids", "float32") == "float32" else 1)
        grid.setdefault(k, {})[p["mode"]] = r
        grid[k]["codebook_mib"] = p.get("codebook_mib", "")
        grid[k]["bytes"] = p.get("bytes_per_item", "")
        if p["mode"] == "stream":
            grid[k]["rows"] = p["rows"]
    out = ["| D | K | L | magnitudes | centroids | B/item | centroid table MiB | cache-resident GB/s | memcpy GB/s | ratio | streaming GB/s | memcpy GB/s | ratio |",
           "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k in sorted(grid):
        g = grid[k]
        c, s = g.get("cache"), g.get("stream")
        cells = [str(k[0]), str(k[1]), str(k[2]), f"{k[3]}-bit", "float16" if k[4] else "float32", str(g["bytes"]), str(g["codebook_mib"])]
        for x in (c, s):
            cells += [fmt(x["sheaf"]), fmt(x["baseline"]), f"{x['ratio']:.2f}×"] if x else ["—"] * 3
        out.append("| " + " | ".join(cells) + " |")
    return out


def goals(rows, mode):
    by = {r["key"]: r for r in rows}
    small, large = ("synthetic-384", "synthetic-2048") if mode == "full" else ("synthetic-small", "synthetic-large")
    small_len, large_len = ("1000", "1000") if mode == "full" else ("100", "50")
    out = []

    def status(measured, target):
        if measured is None:
            return "not measured", None
        return ("met" if measured >= target else "missed"), (measured / target - 1) * 100

    stream = [r for r in rows if r["key"].startswith("decode/stream/")]
    for half in (False, True):
        part = [r for r in stream if r["key"].endswith("/c16") == half]
        if not part:
            continue
        met = [r for r in part if r["ratio"] >= 0.8]
        worst = min(part, key=lambda r: r["ratio"])
        best = max(part, key=lambda r: r["ratio"])
        st = "met" if len(met) == len(part) else ("partly met" if met else "missed")
        out.append(dict(goal="streaming decode ≥ 0.8× memcpy of the same output bytes, single thread"
                             + (", float16 centroids (opt-in)" if half else ", float32 centroids (default)"), target=0.8,
                        measured=f"{len(met)} of {len(part)} configurations; best {best['ratio']:.2f}× ({best['label']}), "
                                 f"worst {worst['ratio']:.2f}× ({worst['label']})",
                        status=st, margin=None))
    targets = []
    for suffix, what in (("p50", "float32 centroids (default)"), ("c16-p50", "float16 centroids (opt-in)")):
        targets += [
            (f"history fetch + decode, 1,000 behaviours, D=384, {what}, vs float32 rows from the same LMDB (p50)", f"store/{small}/history/{small_len}/{suffix}", 5, "×"),
            (f"history fetch + decode, 1,000 behaviours, D=2048, {what}, vs float32 rows from the same LMDB (p50)", f"store/{large}/history/{large_len}/{suffix}", 10, "×"),
        ]
    for name, key, target, what in targets + [
        ("bytes fetched per history, D=384, fewer than float32", f"bytes/{small}/{small_len}", 100, "×"),
        ("bytes fetched per history, D=2048, fewer than float32", f"bytes/{large}/{large_len}", 600, "×"),
    ]:
        r = by.get(key)
        m = r["ratio"] if r else None
        st, margin = status(m, target)
        out.append(dict(goal=name, target=target, measured=(f"{m:.2f}×" if m is not None else "—"), status=st, margin=margin, key=key))
    # Histories → x · W + b (the code-space input layer issue).
    for name, key, target in (
        ("history → model inputs, 1,000 behaviours, D=2048, H=64: projected decode vs float32 rows + sgemm (p50)", f"projected/{large}/{large_len}/h64/rows-p50", 10),
        ("history → model inputs, 1,000 behaviours, D=384, H=64: projected decode vs float32 rows + sgemm (p50)", f"projected/{small}/{small_len}/h64/rows-p50", 5),
    ):
        r = by.get(key)
        m = r["ratio"] if r else None
        st, margin = status(m, target)
        out.append(dict(goal=name, target=target, measured=(f"{m:.2f}×" if m is not None else "—"), status=st, margin=margin, key=key))
    for suffix, what, widths in (("decode-p50", "Sheaf decode to D + sgemm, every width", None),
                                 ("blob-p50", "a float32 history blob + sgemm (the strongest baseline), H ≤ 128", ("h64", "h128"))):
        part = [r for r in rows if r["section"] == "projected" and r["key"].endswith("/" + suffix)
                and (widths is None or r["key"].split("/")[-2] in widths)]
        if not part:
            continue
        met = [r for r in part if r["ratio"] >= 1]
        worst = min(part, key=lambda r: r["ratio"])
        out.append(dict(goal=f"projected decode faster than {what} (p50)", target=1,
                        measured=f"{len(met)} of {len(part)}; worst {worst['ratio']:.2f}× ({worst['label']})",
                        status="met" if len(met) == len(part) else ("partly met" if met else "missed"), margin=None))
    dec = [r for r in rows if r["section"] == "faiss" and r["key"].endswith("/decode_gb_per_s")]
    for r in dec:
        st, margin = status(r["ratio"], 1.5)
        out.append(dict(goal=f"decode GB/s ≥ 1.5× faiss decode ({r['label']})", target=1.5, measured=f"{r['ratio']:.2f}×",
                        status=st, margin=margin, key=r["key"]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", default="full")
    ap.add_argument("--command", default="tools/bench-report")
    ap.add_argument("--python", type=int, default=1)
    a = ap.parse_args()
    rows, notes, suites = [], [], []
    sheaf_machine = None
    for path in sorted(glob.glob(os.path.join(a.raw, "*.json"))):
        base = os.path.basename(path)
        if base.endswith("-probe.json") or base.endswith("-sheaf.json"):
            continue
        if base.startswith("faiss-"):
            dataset = base[len("faiss-"):-len(".json")]
            frows, rep = faiss_rows(path, dataset)
            rows += frows
            suites.append(dict(suite="faiss", dataset=dataset, file=base))
            notes.append(f"faiss {rep.get('faiss_version')} ({dataset}): 1 thread; numpy copy of the same rows "
                         f"{rep.get('numpy_copy_gb_per_s', 0):.2f} GB/s in the same run")
            continue
        with open(path) as f:
            s = json.load(f)
        rows += s["rows"]
        if s.get("machine"):
            sheaf_machine = s["machine"]
        suites.append(dict(suite=s["suite"], dataset=s["dataset"], file=base, details=s.get("details", {})))
        notes += [f"{s['suite']} ({s['dataset']}): {n}" for n in s.get("notes", [])]
    g = goals(rows, a.mode)
    m = machine()
    if sheaf_machine:
        # What the measuring process ran: the OpenBLAS core (and how it was chosen) and the CPU's features.
        m["blas_core"] = sheaf_machine.get("blasCoreSelection", "")
        m["blas_configuration"] = sheaf_machine.get("blasConfiguration", "")
        m["cpu_features"] = sheaf_machine.get("cpuFeatures", "")
        m["decode_kernel"] = sheaf_machine.get("decodeKernel", "")
        m["encode_kernel"] = sheaf_machine.get("encodeKernel", "")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report = dict(mode=a.mode, command=a.command, generated=now, machine=m, suites=suites, goals=g, rows=rows, notes=notes)
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1, ensure_ascii=False)

    md = [f"# Sheaf benchmark report ({a.mode})", ""]
    if a.mode == "quick":
        md += ["**Quick mode**: tiny sizes and a synthetic stand-in for MovieLens, to prove the pipeline works. "
               "These numbers mean nothing.", ""]
    md += [f"`{a.command}` — {now}, commit {m['commit']}.", "",
           f"Machine: {m['cpu']}, {m['cpus']} CPUs, L2 {m['l2']}, L3 {m['l3']}, {m['memory_gib']} GiB; "
           f"Linux {m['kernel']}; {m['swift']}.", "",
           f"Kernels: OpenBLAS core {m.get('blas_core', '?')}; CPU features {m.get('cpu_features', '?')}; "
           f"decode kernel {m.get('decode_kernel', '?')}; int8 encode kernel {m.get('encode_kernel', '?')}.", "",
           "Each row: Sheaf's figure, a baseline measured in the same run, and Sheaf's advantage "
           "(sheaf ÷ baseline when higher is better, baseline ÷ sheaf when lower is better).", ""]
    for s in suites:
        d = s.get("details") or {}
        if d:
            md.append(f"- {s['suite']} — {s['dataset']}: " + ", ".join(f"{k} {v}" for k, v in sorted(d.items())))
    md += ["", "## Goals", "", "| goal | target | measured | status |", "|---|---:|---|---|"]
    for x in g:
        margin = f" (by {x['margin']:+.0f}%)" if x.get("margin") is not None else ""
        md.append(f"| {x['goal']} | {x['target']} | {x['measured']} | **{x['status']}**{margin} |")
    for sec, title in SECTIONS:
        part = [r for r in rows if r["section"] == sec]
        if not part:
            if sec in ("side-by-side", "faiss") and not a.python:
                md += ["", f"## {title}", "", "Skipped (--skip-python)."]
            continue
        md += ["", f"## {title}", ""]
        md += decode_table(part) if sec == "decode" else table(part)
    md += ["", "## Notes", ""] + [f"- {n}" for n in notes] + [""]
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write("\n".join(md))


if __name__ == "__main__":
    main()
