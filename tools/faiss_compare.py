#!/usr/bin/env python3
"""Compare faiss-cpu's ResidualQuantizer with Sheaf's codebook at equal bytes per item.

    tools/.venv/bin/python tools/faiss_compare.py \\
        --embeddings data/ml-100k/item_embeddings.npy --sheaf results/sheaf_quantize.json \\
        [--bytes 8,9] [--train-fraction 0.8] [--queries 1000] [--seed 1] [--out results/quantizer_comparison]

prints a Markdown table and writes <out>.md and <out>.json. --sheaf is optional: without it only the
faiss rows (and the numpy copy baseline) are produced, for the sizes given by --bytes; with both, the
sizes are the union of --bytes and the Sheaf runs' bytes_per_item.

    tools/.venv/bin/python tools/faiss_compare.py --embeddings E.npy --emit-queries Q.json \\
        [--train-fraction F] [--queries 1000] [--seed 1]

only writes the recall query rows {"seed", "queries", "n", "query_indices": [...]} for a tool that
cannot reproduce numpy's generator (the Swift side can read them instead of drawing its own). With
--train-fraction it also writes the split: {"seed", "queries", "n", "train_fraction", "n_train",
"n_eval", "train_indices": [...], "eval_indices": [...], "query_indices": [...]}, all indices into
the FULL embeddings array.

Protocol. Without --train-fraction (the default), everything below is on all N rows: the quantizer is
trained on them and the same rows are encoded, decoded and evaluated. With --train-fraction F
(0 < F < 1), held-out:
    perm          = np.random.default_rng(seed).permutation(N)
    n_train       = round(F * N)      (Python round, half to even); needs n_train >= 1 and N - n_train > 10
    train_indices = sorted(perm[:n_train])          eval_indices = sorted(perm[n_train:])
    the quantizer is trained on e[train_indices] only (in that order); e[eval_indices] (in that order,
    M = N - n_train rows) is encoded, decoded, timed and measured, with every definition below applied
    to that M-row array in place of the N-row one: recall@10 query positions are
    np.random.default_rng(seed).choice(M, Q, replace=False), Q = min(--queries, M), and neighbours
    are searched among the evaluation rows only. query_indices (JSON) = eval_indices[positions],
    i.e. full-array indices; ties in the neighbour ranking go to the lower position in the evaluation
    array, which is the lower full-array index since eval_indices is sorted.

Sheaf side: a JSON list written by the Swift tool, one object per run:
    {"name": "sheaf cosine L3 K4096 u8", "bytes_per_item": 8, "train_seconds": ..,
     "encode_items_per_s": .., "decode_gb_per_s": .., "mean_cosine": .., "p5_cosine": ..,
     "relative_mse": .., "recall_at_10": ..}
Missing or null fields are shown as "—". If a run carries "query_indices" (full-array indices),
they are checked against ours and a mismatch is reported in the notes (its recall would not be
comparable); so are "train_indices", "eval_indices" and "train_fraction" when present. In held-out
mode a run without "eval_indices" or "train_fraction" is noted as not stating its split.

faiss side: for each distinct bytes_per_item B (Sheaf runs and --bytes), faiss.ResidualQuantizer(d, B, 8)
(B codebooks of 256 entries = B bytes/item), once with max_beam_size = 1 and once with the
default 5. Everything runs on one thread (faiss.omp_set_num_threads(1)), training included.
Trained on all N embeddings, or on the n_train training rows with --train-fraction
(cp.min_points_per_centroid is set to 1: that only silences the "please provide at least ... training
points" warning, it does not change the clustering; cp.max_points_per_centroid keeps faiss's default
256, so each stage's k-means subsamples at most 256 * 256 = 65,536 of the training rows).
In the timings N means the evaluated rows (all N, or the M evaluation rows):
    train s           wall time of rq.train(training rows), one run
    encode items/s    N / wall time of rq.compute_codes(evaluated rows), best of --encode-runs (3)
    decode GB/s       N*D*4 bytes of float32 output / 1e9 / wall time of rq.decode(codes), best of 5
    numpy copy GB/s   N*D*4 / 1e9 / wall time of np.copyto(dst, src) of the N x D float32
                      evaluated embeddings into a preallocated array, best of 5 (same run, same process)

Quality metrics (Sheaf implements the same; e = original row, ê = decoded row, all in float64):
    cosine_i      = e_i·ê_i / (‖e_i‖ ‖ê_i‖), and 0 when e_i or ê_i is the zero vector
    mean cos      = mean_i cosine_i
    p5 cos        = np.percentile(cosine, 5)  (linear interpolation; q = 5)
    rel. MSE      = Σ_i ‖e_i − ê_i‖² / Σ_i ‖e_i‖²
    recall@10     Q = min(--queries, N) query rows idx = np.random.default_rng(seed).choice(N, Q, replace=False)
                  (in that order). e_norm = e / ‖e‖ per row, ê_norm = ê / ‖ê‖ per row (zero rows
                  stay zero). For each query row q with vector v = e_norm[q]:
                    exact  = top-10 rows by e_norm·v over all N rows except row q
                    approx = top-10 rows by ê_norm·v over all N rows except row q
                  ranking by descending score, ties broken by ascending row index;
                  recall@10 = mean over queries of |exact ∩ approx| / 10.
                  (Requires N ≥ 11.)
"""

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time

import numpy as np

K = 10


# --------------------------------------------------------------------------------------------
# Metrics


def query_indices(n, queries, seed):
    q = min(queries, n)
    return np.random.default_rng(seed).choice(n, q, replace=False).astype(np.int64)


def split_indices(n, train_fraction, seed):
    """(train_indices, eval_indices), both sorted int64, for the held-out protocol of the docstring."""
    if not 0 < train_fraction < 1:
        raise SystemExit(f"--train-fraction must be in (0, 1), got {train_fraction}")
    n_train = round(train_fraction * n)
    if n_train < 1 or n - n_train <= K:
        raise SystemExit(f"--train-fraction {train_fraction} of N = {n} gives {n_train} training and "
                         f"{n - n_train} evaluation rows; need >= 1 and > {K}")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:n_train]).astype(np.int64), np.sort(perm[n_train:]).astype(np.int64)


def normalise_rows(x):
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def top_k_excluding(scores, exclude, k=K):
    """Row indices of the k best scores per row (descending, ties -> lower index), excluding exclude[r]."""
    s = scores.copy()
    s[np.arange(len(s)), exclude] = -np.inf
    order = np.argsort(-s, axis=1, kind="stable")
    return order[:, :k]


def exact_neighbours(e, qidx):
    en = normalise_rows(e)
    return top_k_excluding(en[qidx] @ en.T, qidx)


def quality(e, d, qidx, exact=None):
    """The metrics of the docstring, for originals e and decoded d (both N x D)."""
    e = np.asarray(e, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    ne = np.linalg.norm(e, axis=1)
    nd = np.linalg.norm(d, axis=1)
    denom = ne * nd
    cos = np.divide((e * d).sum(axis=1), denom, out=np.zeros(len(e)), where=denom > 0)
    rel_mse = float(((e - d) ** 2).sum() / (e ** 2).sum())
    if exact is None:
        exact = exact_neighbours(e, qidx)
    en = normalise_rows(e)
    approx = top_k_excluding(en[qidx] @ normalise_rows(d).T, qidx)
    hits = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(exact, approx)]
    return dict(mean_cosine=float(cos.mean()), p5_cosine=float(np.percentile(cos, 5)),
                relative_mse=rel_mse, recall_at_10=float(np.mean(hits)) / K)


# --------------------------------------------------------------------------------------------
# Timing


def best_of(runs, fn):
    best, out = math.inf, None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def numpy_copy_gb_per_s(e, runs=5):
    dst = np.empty_like(e)
    np.copyto(dst, e)  # touch the pages once
    t, _ = best_of(runs, lambda: np.copyto(dst, e))
    return e.nbytes / 1e9 / t


def run_faiss(faiss, train, e, nbytes, beam, qidx, exact, encode_runs, decode_runs):
    """Trains on `train`, encodes/decodes/measures `e` (the same array without a held-out split)."""
    n, d = e.shape
    rq = faiss.ResidualQuantizer(d, nbytes, 8)
    rq.max_beam_size = beam
    rq.cp.min_points_per_centroid = 1  # only silences the "too few points" warning
    rq.verbose = False
    t = time.perf_counter()
    rq.train(train)
    train_s = time.perf_counter() - t
    assert rq.code_size == nbytes, (rq.code_size, nbytes)
    enc_t, codes = best_of(encode_runs, lambda: rq.compute_codes(e))
    assert codes.shape == (n, nbytes) and codes.dtype == np.uint8, (codes.shape, codes.dtype)
    rq.decode(codes)  # warm up
    dec_t, decoded = best_of(decode_runs, lambda: rq.decode(codes))
    assert decoded.shape == e.shape
    row = dict(name=f"faiss RQ M{nbytes}x8 beam{beam}", source="faiss", bytes_per_item=nbytes,
               max_beam_size=beam, train_seconds=train_s, encode_items_per_s=n / enc_t,
               decode_gb_per_s=n * d * 4 / 1e9 / dec_t)
    row.update(quality(e, decoded, qidx, exact))
    return row


# --------------------------------------------------------------------------------------------
# Output

COLUMNS = [("method", "name"), ("bytes/item", "bytes_per_item"), ("train s", "train_seconds"),
           ("encode items/s", "encode_items_per_s"), ("decode GB/s", "decode_gb_per_s"),
           ("mean cos", "mean_cosine"), ("p5 cos", "p5_cosine"), ("rel. MSE", "relative_mse"),
           ("recall@10", "recall_at_10")]


def fmt(key, v):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if key == "name":
        return str(v).replace("|", "\\|")
    if key == "bytes_per_item":
        return f"{v:g}"
    if key == "train_seconds":
        return f"{v:.2f}"
    if key == "encode_items_per_s":
        return f"{v:,.0f}"
    if key == "decode_gb_per_s":
        return f"{v:.2f}"
    if key in ("mean_cosine", "p5_cosine"):
        return f"{v:.4f}"
    if key == "relative_mse":
        return f"{v:.4f}"
    if key == "recall_at_10":
        return f"{v:.3f}"
    return str(v)


def markdown(rows, header_lines):
    out = list(header_lines) + [""]
    out.append("| " + " | ".join(c for c, _ in COLUMNS) + " |")
    out.append("|" + "|".join("---" if k == "name" else "---:" for _, k in COLUMNS) + "|")
    for r in rows:
        out.append("| " + " | ".join(fmt(k, r.get(k)) for _, k in COLUMNS) + " |")
    return "\n".join(out) + "\n"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--embeddings", required=True, help="float32 (N, D) .npy")
    ap.add_argument("--sheaf", help="JSON list of Sheaf runs (from the Swift tool); optional")
    ap.add_argument("--bytes", default="", help="faiss code sizes B[,B...] to run besides the Sheaf runs' "
                    "(required without --sheaf)")
    ap.add_argument("--train-fraction", type=float, metavar="F",
                    help="held-out protocol: train on round(F*N) random rows, evaluate on the rest "
                         "(default: train and evaluate on all rows)")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="results/quantizer_comparison")
    ap.add_argument("--beams", default="1,5", help="faiss max_beam_size values (default 1,5)")
    ap.add_argument("--encode-runs", type=int, default=3)
    ap.add_argument("--decode-runs", type=int, default=5)
    ap.add_argument("--emit-queries", metavar="PATH", help="only write the query indices as JSON and exit")
    a = ap.parse_args()

    e = np.load(a.embeddings)
    if e.ndim != 2:
        raise SystemExit(f"{a.embeddings}: expected a 2-D array, got shape {e.shape}")
    e = np.ascontiguousarray(e, dtype=np.float32)
    n, d = e.shape
    if n <= K:
        raise SystemExit(f"need more than {K} rows for recall@{K}, got {n}")
    held_out = a.train_fraction is not None
    if held_out:
        train_idx, eval_idx = split_indices(n, a.train_fraction, a.seed)
        train = e[train_idx]
        ev = e[eval_idx]  # the evaluated rows; qidx are positions in it
    else:
        train = ev = e
    qidx = query_indices(len(ev), a.queries, a.seed)
    qidx_full = eval_idx[qidx] if held_out else qidx  # indices into the full array
    split = dict(train_fraction=a.train_fraction, n_train=len(train_idx), n_eval=len(eval_idx),
                 train_indices=train_idx.tolist(), eval_indices=eval_idx.tolist()) if held_out else {}

    if a.emit_queries:
        os.makedirs(os.path.dirname(os.path.abspath(a.emit_queries)), exist_ok=True)
        with open(a.emit_queries, "w") as f:
            json.dump(dict(seed=a.seed, queries=len(qidx), n=n, **split, query_indices=qidx_full.tolist()), f)
        what = (f"the split ({len(train_idx)} train / {len(eval_idx)} eval rows) and " if held_out else "")
        print(f"faiss_compare: wrote {what}{len(qidx)} query indices to {a.emit_queries}", file=sys.stderr)
        return
    try:
        extra_sizes = [int(x) for x in a.bytes.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"--bytes: expected comma-separated positive integers, got {a.bytes!r}")
    if any(b <= 0 for b in extra_sizes):
        raise SystemExit(f"--bytes: expected positive integers, got {a.bytes!r}")
    if not a.sheaf and not extra_sizes:
        raise SystemExit("give --sheaf and/or --bytes (or --emit-queries)")

    sheaf = []
    if a.sheaf:
        with open(a.sheaf) as f:
            sheaf = json.load(f)
        if not isinstance(sheaf, list) or not all(isinstance(r, dict) for r in sheaf):
            raise SystemExit(f"{a.sheaf}: expected a JSON list of objects")
    ours = dict(query_indices=qidx_full.tolist())
    if held_out:
        ours.update(train_indices=split["train_indices"], eval_indices=split["eval_indices"])
    sizes = list(extra_sizes)
    for r in sheaf:
        b = r.get("bytes_per_item")
        if not isinstance(b, int) or isinstance(b, bool) or b <= 0:
            if isinstance(b, float) and b.is_integer() and b > 0:
                b = int(b)
            else:
                raise SystemExit(f"{a.sheaf}: run {r.get('name')!r} has bytes_per_item {b!r}, need a positive integer")
        r["bytes_per_item"] = b
        r.setdefault("name", "sheaf (unnamed)")
        r["source"] = "sheaf"
        notes = []
        if held_out and "eval_indices" not in r and "train_fraction" not in r:
            notes.append("run does not state its train/eval split")
        if "train_fraction" in r and r["train_fraction"] != a.train_fraction:
            notes.append(f"TRAIN FRACTION {r.get('train_fraction')} DIFFERS from ours ({a.train_fraction}): "
                         f"not comparable")
        for key in ("query_indices", "train_indices", "eval_indices"):
            if key in r:
                what = key.replace("_", " ")
                if key not in ours:
                    notes.append(f"{what.upper()} GIVEN but we use no split: not comparable")
                elif list(r[key]) == ours[key]:
                    notes.append(f"{what} match")
                else:
                    notes.append(f"{what.upper()} DIFFER: {'recall' if key == 'query_indices' else 'results'} "
                                 f"not comparable")
                del r[key]
        if notes:
            r["notes"] = "; ".join(notes)
        if b not in sizes:
            sizes.append(b)
    sizes.sort()
    beams = [int(x) for x in a.beams.split(",") if x]

    import faiss
    faiss.omp_set_num_threads(1)

    exact = exact_neighbours(ev, qidx)
    copy_gbs = numpy_copy_gb_per_s(ev, a.decode_runs)
    base = dict(name="numpy copy (float32, baseline)", source="numpy", bytes_per_item=d * 4,
                decode_gb_per_s=copy_gbs)
    rows = [base]
    for b in sizes:
        rows += [r for r in sheaf if r["bytes_per_item"] == b]
        for beam in beams:
            on = (f"train {len(train)}, evaluate {len(ev)} held-out rows of {n}x{d}" if held_out else f"{n}x{d}")
            print(f"faiss_compare: faiss RQ M={b} nbits=8 beam={beam} on {on} ...", file=sys.stderr)
            rows.append(run_faiss(faiss, train, ev, b, beam, qidx, exact, a.encode_runs, a.decode_runs))

    protocol = (f"Held-out: trained on {len(train)} rows (train fraction {a.train_fraction}, seed {a.seed}), "
                f"encoded, decoded, timed and evaluated on the other {len(ev)} rows; recall@10 queries and "
                f"neighbours among those rows only. " if held_out else "")
    header = [f"# Quantizer comparison: Sheaf vs faiss ResidualQuantizer" if sheaf else
              f"# Quantizer comparison: faiss ResidualQuantizer",
              "",
              f"Embeddings `{a.embeddings}`: N = {n}, D = {d} (float32, {d * 4} bytes/item). "
              + (f"Sheaf runs from `{a.sheaf}`. " if a.sheaf else "No Sheaf runs. ") + protocol +
              f"faiss {faiss.__version__}, numpy {np.__version__}, 1 thread, "
              f"{platform.machine()} {os.cpu_count()} cores. recall@10 over {len(qidx)} queries, seed {a.seed} "
              f"(indices in the JSON). decode GB/s counts float32 output bytes; numpy copy is the "
              f"memory-bandwidth baseline measured in this run."]
    notes = [f"- {r['name']}: {r['notes']}" for r in rows if r.get("notes")]
    md = markdown(rows, header) + ("\n" + "\n".join(notes) + "\n" if notes else "")
    print(md)

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out + ".md", "w") as f:
        f.write(md)
    report = dict(
        embeddings=a.embeddings, embeddings_sha256=sha256(a.embeddings), n=n, d=d,
        sheaf=a.sheaf, seed=a.seed, queries=len(qidx), held_out=held_out, **split,
        query_indices=qidx_full.tolist(),
        threads=1, faiss_version=faiss.__version__, numpy_version=np.__version__,
        python=platform.python_version(), machine=platform.machine(), cpu_count=os.cpu_count(),
        numpy_copy_gb_per_s=copy_gbs, encode_runs=a.encode_runs, decode_runs=a.decode_runs,
        rows=rows)
    with open(a.out + ".json", "w") as f:
        json.dump(report, f, indent=1)
    print(f"faiss_compare: wrote {a.out}.md and {a.out}.json", file=sys.stderr)


if __name__ == "__main__":
    main()
