#!/usr/bin/env python3
"""CHIME's Figure 5 on MovieLens-100K: a 2-D projection of the users' profiles, coloured by how many
behaviours each profile summarises.

    tools/chime-projection [--store results/chime-store] [--model results/chime_ranking_work/chime-minilm-L2-e30-seed1]
                           [--perplexity 30] [--out results/chime_projection]

The profiles are the ones tools/chime-ranking builds (each user's first 80% of behaviours). `sheaf
profiles export` decodes each into CHIME's space (the count-weighted mean of its ICM centroids,
normalised). Two projections: PCA (numpy SVD) and exact t-SNE (a small numpy implementation, fixed
seed; the seed paper shows t-SNE). Beside the picture, two numbers say whether the profiles order users
by history length, without trusting the eye:
  - Spearman correlation of log(behaviours) with each of the first two principal components;
  - the mean |Δ log2(behaviours)| between each user and their 10 nearest profiles (cosine), against the
    same over random pairs (a ratio below 1: neighbours in profile space have similar history lengths).

Writes <out>.md, <out>.json and <out>.png.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHEAF = os.path.join(ROOT, ".build", "release", "sheaf")


def ranks(x):
    r = np.empty(len(x))
    r[np.argsort(x, kind="stable")] = np.arange(len(x))
    return r


def spearman(a, b):
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def tsne(x, perplexity=30.0, iterations=1000, seed=1):
    """Exact t-SNE (van der Maaten & Hinton 2008): Gaussian affinities at the given perplexity,
    symmetrised; Student-t in 2-D; gradient descent with momentum, early exaggeration 12 for 250 steps."""
    n = x.shape[0]
    d2 = np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0)
    p = np.zeros((n, n))
    target = np.log(perplexity)
    for i in range(n):
        lo, hi, beta = 0.0, np.inf, 1.0
        di = np.delete(d2[i], i)
        for _ in range(60):
            w = np.exp(-(di - di.min()) * beta)
            s = w.sum()
            h = np.log(s) + beta * (di - di.min()) @ w / s
            if abs(h - target) < 1e-5:
                break
            if h > target:
                lo, beta = beta, beta * 2 if hi == np.inf else (beta + hi) / 2
            else:
                hi, beta = beta, (beta + lo) / 2
        p[i, np.arange(n) != i] = w / s
    p = (p + p.T) / (2 * n)
    p = np.maximum(p, 1e-12)
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 1e-4, (n, 2))
    velocity = np.zeros_like(y)
    gains = np.ones_like(y)
    for it in range(iterations):
        exaggeration = 12.0 if it < 250 else 1.0
        momentum = 0.5 if it < 250 else 0.8
        sq = ((y[:, None, :] - y[None, :, :]) ** 2).sum(-1)
        num = 1 / (1 + sq)
        np.fill_diagonal(num, 0)
        q = np.maximum(num / num.sum(), 1e-12)
        pq = (exaggeration * p - q) * num
        grad = 4 * ((np.diag(pq.sum(1)) - pq) @ y)
        gains = np.where(np.sign(grad) != np.sign(velocity), gains + 0.2, gains * 0.8).clip(0.01)
        velocity = momentum * velocity - 200.0 * gains * grad
        y = y + velocity
        y -= y.mean(0)
    kl = float((p * np.log(p / q)).sum())
    return y, kl


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=os.path.join(ROOT, "results", "chime-store"))
    ap.add_argument("--model", default=os.path.join(ROOT, "results", "chime_ranking_work", "chime-minilm-L2-e30-seed1"))
    ap.add_argument("--perplexity", type=float, default=30.0)
    ap.add_argument("--neighbours", type=int, default=10)
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "chime_projection"))
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.model, "icm.safetensors")):
        sys.exit(f"{a.model} has no profiles yet: run tools/chime-ranking first (it trains CHIME and builds them)")
    work = a.out + "_work"
    os.makedirs(work, exist_ok=True)
    paths = [os.path.join(work, f) for f in ("vectors.npy", "ids.npy", "behaviours.npy")]
    p = subprocess.run([SHEAF, "profiles", "export", a.store, "--model", a.model, "--output", paths[0],
                        "--ids-output", paths[1], "--behaviors-output", paths[2]], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"sheaf profiles export failed ({p.returncode}):\n{p.stderr[-3000:]}")
    x = np.load(paths[0]).astype(np.float64)
    n_beh = np.load(paths[2]).astype(np.float64)
    logn = np.log2(np.maximum(n_beh, 1))

    centred = x - x.mean(0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    pca = u[:, :2] * s[:2]
    explained = (s[:2] ** 2 / (s ** 2).sum()).tolist()
    y, kl = tsne(x, perplexity=a.perplexity)

    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    nearest = np.argsort(-sim, axis=1)[:, :a.neighbours]
    neighbour_gap = float(np.abs(logn[:, None] - logn[nearest]).mean())
    rng = np.random.default_rng(1)
    i, j = rng.integers(0, len(x), 200_000), rng.integers(0, len(x), 200_000)
    keep = i != j
    random_gap = float(np.abs(logn[i[keep]] - logn[j[keep]]).mean())
    stats = dict(users=len(x), dimension=x.shape[1], explained_variance=explained,
                 spearman_pc1=spearman(pca[:, 0], logn), spearman_pc2=spearman(pca[:, 1], logn),
                 neighbour_gap=neighbour_gap, random_gap=random_gap, ratio=neighbour_gap / random_gap, tsne_kl=kl,
                 behaviours=dict(min=int(n_beh.min()), median=float(np.median(n_beh)), max=int(n_beh.max())))

    lines = ["# CHIME profiles in two dimensions (MovieLens-100K, each user's first 80% of behaviours)", "",
             f"{len(x)} profiles decoded into CHIME's {x.shape[1]}-dimensional space (model {os.path.basename(a.model)}); "
             f"behaviours per profile: {stats['behaviours']['min']} to {stats['behaviours']['max']} (median {stats['behaviours']['median']:.0f}).", "",
             "| measure | value |", "|---|---:|",
             f"| variance explained by PC1, PC2 | {explained[0]:.3f}, {explained[1]:.3f} |",
             f"| Spearman(PC1, log behaviours) | {stats['spearman_pc1']:+.3f} |",
             f"| Spearman(PC2, log behaviours) | {stats['spearman_pc2']:+.3f} |",
             f"| mean \\|Δ log2 behaviours\\|, {a.neighbours} nearest profiles | {neighbour_gap:.3f} |",
             f"| mean \\|Δ log2 behaviours\\|, random pairs | {random_gap:.3f} |",
             f"| ratio (below 1: neighbours have similar lengths) | {neighbour_gap / random_gap:.3f} |",
             f"| t-SNE final KL (perplexity {a.perplexity:g}) | {kl:.3f} |"]
    with open(a.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(a.out + ".json", "w") as f:
        json.dump(dict(args=vars(a), stats=stats), f, indent=1)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
        for ax, pts, title in ((axes[0], pca, "PCA"), (axes[1], y, f"t-SNE (perplexity {a.perplexity:g})")):
            sc = ax.scatter(pts[:, 0], pts[:, 1], c=logn, cmap="viridis", s=8)
            ax.set_title(title)
            ax.set_xticks([])
            ax.set_yticks([])
        cb = fig.colorbar(sc, ax=axes, shrink=0.85)
        ticks = [t for t in (8, 16, 32, 64, 128, 256, 512) if n_beh.min() <= t <= n_beh.max()]
        cb.set_ticks(np.log2(ticks))
        cb.set_ticklabels([str(t) for t in ticks])
        cb.set_label("behaviours in the profile")
        fig.suptitle("CHIME profiles of MovieLens-100K users, coloured by history length")
        fig.savefig(a.out + ".png", dpi=120)
    except ImportError:
        print("matplotlib is missing: no plot (pip install matplotlib)", file=sys.stderr)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
