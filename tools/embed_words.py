#!/usr/bin/env python3
"""Embed the ~100,000 most frequent English words with all-MiniLM-L6-v2, in pure numpy.

A larger real embedding set than the 1,682 MovieLens items, for quantizer quality comparisons
(tools/faiss_compare.py). Run with the tools venv (tools/python-env; tools/prepare-words does
everything and skips the work when the outputs are up to date):

    tools/.venv/bin/python tools/embed_words.py                       # -> data/words/
    tools/.venv/bin/python tools/embed_words.py --count 2000 --out-dir /tmp/w   # a quick subset

Model: the validated numpy MiniLM of tools/embed_items.py, imported (class MiniLM, its
MiniLM.encode: BERT forward, mean pooling over non-padding tokens, L2 normalisation); nothing
of the model is re-implemented here. Each word is embedded as the whole input text, as is
(wordfreq's words are already lower-case; the tokenizer lower-cases anyway and adds [CLS]/[SEP]).

Word source: the PyPI package wordfreq (pinned in tools/requirements.txt), English list
"best" (= "large" for en). Licences: wordfreq's code is Apache-2.0; its word-frequency data is
CC-BY-SA 4.0 (built from Wikipedia, SUBTLEX, OpenSubtitles, Google Books Ngrams, the Leeds
Internet Corpus, ParaCrawl, Twitter, ...; wordfreq asks that the SUBTLEX authors be credited).
data/words/words.txt is derived from that data: it lives under the git-ignored data/ and is
generated at run time, never committed; anything that redistributes it must carry CC-BY-SA 4.0
attribution. The embeddings are computed by us from those words.

Word selection (exact):
    candidates = wordfreq.top_n_list("en", M)        descending frequency; ties (wordfreq's
                                                     rounded bands) in wordfreq's own order
    keep w  iff  w.isascii() and w.isalpha() and len(w) >= 2
                                                     i.e. w matches [A-Za-z]{2,} (wordfreq's words
                                                     are lower-case, so [a-z]{2,}): no digits,
                                                     apostrophes, hyphens, periods, accents
    words  = the first --count (100,000) kept candidates, in candidate order
M starts at --count and grows by 25% until enough words pass (top_n_list(n) is a prefix of
top_n_list(n') for n < n', so the result does not depend on the steps) and is then reported as
the smallest M that yields --count words; with wordfreq 3.1.1 M = 107,106 (93,602 of the top
100,000 pass). If the whole list has fewer passing words than --count, all of them are taken and
a note is printed.
Why ASCII only: the tokenizer strips accents, so "thé", "général", "rosé" get exactly the token
ids, hence exactly the embedding, of "the", "general", "rose" (with plain isalpha() 428 of
100,000 rows were such duplicates, which makes nearest-neighbour ties). With the ASCII filter
every word has its own token-id sequence; the script checks that, and that no word maps to [UNK].

Batching: words are grouped by token count (with [CLS]/[SEP]; 3..10 for these words) and cut
into batches of --batch-size words of the same token count, so no batch has padding. Batches go
to --workers (default 2) spawned processes with OpenBLAS/OMP single-threaded; each row depends
only on its batch, so the output does not depend on the number of workers. At the end
--verify (default 32) random words are re-embedded one by one with MiniLM.encode and compared.

Outputs (row i = line i):
    data/words/embeddings.npy   float32 (N, 384), C order, unit-norm rows
    data/words/words.txt        UTF-8, one word per line, "\\n" line ends, same order (frequency)
    data/words/info.json        N, wordfreq version, M, filter, timing
embeddings.npy is written last (tools/prepare-words compares its mtime with the inputs').
"""

import argparse
import json
import multiprocessing as mp
import os
import sys
import time

# One BLAS thread everywhere (this process and the spawned workers inherit it): OpenBLAS's
# results can differ in the last bit with the thread count, and one thread per process makes
# the output independent of --workers. Must be set before numpy is imported.
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import numpy as np

from embed_items import ROOT, MiniLM, atomic_write

PROG = "embed_words"
FILTER = "w.isascii() and w.isalpha() and len(w) >= 2"


def keep(w):
    return w.isascii() and w.isalpha() and len(w) >= 2


def select_words(count, lang="en"):
    """(words, list_size, exhausted): the first `count` words of top_n_list(lang, M) passing keep()."""
    import wordfreq
    m = count
    while True:
        cand = wordfreq.top_n_list(lang, m)
        words = [w for w in cand if keep(w)]
        exhausted = len(cand) < m
        if len(words) >= count or exhausted:
            break
        m = int(m * 1.25)
    if len(words) >= count:
        # smallest M that yields `count` words: position of the count-th kept word + 1
        k = 0
        for pos, w in enumerate(cand):
            if keep(w):
                k += 1
                if k == count:
                    m = pos + 1
                    break
        words = words[:count]
    else:
        m = len(cand)
    if len(set(words)) != len(words):
        raise SystemExit(f"{PROG}: wordfreq returned duplicate words")
    return words, m, exhausted and len(words) < count


# --------------------------------------------------------------------------------------------
# Workers

_model = None


def _init(model_dir):
    global _model
    _model = MiniLM(model_dir)


def _embed(job):
    start, texts = job
    e = _model.encode(texts, batch_size=len(texts))
    return start, e


def batches(model, words, batch_size):
    """[(start, texts)] in order of (token count, frequency rank); `order` maps batch rows to words."""
    enc = model.tok.encode_batch(words)
    lengths = np.array([int(sum(e.attention_mask)) for e in enc])
    seqs = [tuple(e.ids[:n]) for e, n in zip(enc, lengths)]
    if len(set(seqs)) != len(seqs):
        raise SystemExit(f"{PROG}: some words share a token-id sequence (their embeddings would be equal)")
    unk = model.tok.token_to_id("[UNK]")
    if any(unk in s for s in seqs):
        raise SystemExit(f"{PROG}: some words map to [UNK]")
    order = np.lexsort((np.arange(len(words)), lengths))  # by length, then by rank
    jobs = []
    i = 0
    while i < len(order):
        L = lengths[order[i]]
        j = i
        while j < len(order) and j - i < batch_size and lengths[order[j]] == L:
            j += 1
        jobs.append((i, [words[k] for k in order[i:j]]))
        i = j
    return order, lengths, jobs


def embed_all(model, model_dir, words, batch_size, workers):
    order, lengths, jobs = batches(model, words, batch_size)
    hist = {int(L): int(c) for L, c in zip(*np.unique(lengths, return_counts=True))}
    print(f"{PROG}: {len(words)} words, token counts {hist}, {len(jobs)} batches, {workers} worker(s)",
          file=sys.stderr)
    sorted_emb = np.zeros((len(words), model.hidden), dtype=np.float32)
    t0 = time.time()
    last = t0
    done = 0

    def take(start, e):
        nonlocal done, last
        sorted_emb[start:start + len(e)] = e
        done += len(e)
        now = time.time()
        if now - last >= 10 or done == len(words):
            last = now
            rate = done / (now - t0)
            print(f"{PROG}: {done}/{len(words)} words, {now - t0:.0f} s, {rate:.0f} words/s, "
                  f"ETA {(len(words) - done) / rate:.0f} s", file=sys.stderr)

    if workers <= 1:
        for start, texts in jobs:
            take(start, model.encode(texts, batch_size=len(texts)))
    else:
        ctx = mp.get_context("spawn")
        # Longest batches first for balance at the end; results are placed by start offset.
        jobs_desc = sorted(jobs, key=lambda j: -lengths[order[j[0]]])
        with ctx.Pool(workers, initializer=_init, initargs=(model_dir,)) as pool:
            for start, e in pool.imap_unordered(_embed, jobs_desc, chunksize=1):
                take(start, e)
    secs = time.time() - t0
    emb = np.empty_like(sorted_emb)
    emb[order] = sorted_emb
    return emb, secs, hist


def verify(model, words, emb, k, seed=0):
    """Re-embed k random words alone; returns (min cosine, max |diff|)."""
    if k <= 0:
        return None
    idx = np.random.default_rng(seed).choice(len(words), min(k, len(words)), replace=False)
    solo = np.stack([model.encode([words[i]])[0] for i in idx])
    cos = (solo * emb[idx]).sum(axis=1)
    return float(cos.min()), float(np.abs(solo - emb[idx]).max())


# --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=100_000, help="number of words (default 100000)")
    ap.add_argument("--model", default=os.path.join(ROOT, "data/minilm"))
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "data/words"))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="processes (default 2, at most 2 on this machine)")
    ap.add_argument("--verify", type=int, default=32, help="words re-embedded alone as a check (0: none)")
    a = ap.parse_args()

    from importlib.metadata import version
    wf_version = version("wordfreq")
    t0 = time.time()
    words, list_size, short = select_words(a.count)
    print(f"{PROG}: wordfreq {wf_version}: {len(words)} words from top_n_list('en', {list_size}) "
          f"with {FILTER} ({time.time() - t0:.1f} s)", file=sys.stderr)
    if short:
        print(f"{PROG}: note: the whole English list has only {len(words)} passing words", file=sys.stderr)
    for w in words:
        if "\n" in w or "\r" in w or w != w.strip():
            raise SystemExit(f"{PROG}: unexpected word {w!r}")

    model = MiniLM(a.model)
    emb, secs, hist = embed_all(model, a.model, words, a.batch_size, max(1, a.workers))
    assert emb.dtype == np.float32 and emb.flags.c_contiguous and emb.shape == (len(words), model.hidden)
    norms = np.linalg.norm(emb, axis=1)
    if not np.all(np.abs(norms - 1) < 1e-5):
        raise SystemExit(f"{PROG}: rows are not unit norm (min {norms.min()}, max {norms.max()})")
    v = verify(model, words, emb, a.verify)
    if v is not None:
        print(f"{PROG}: verify: {a.verify} words re-embedded alone: min cosine {v[0]:.8f}, "
              f"max |diff| {v[1]:.2e}", file=sys.stderr)
        if v[0] < 0.99999:
            raise SystemExit(f"{PROG}: verification failed")

    os.makedirs(a.out_dir, exist_ok=True)

    def save(name, write):
        return atomic_write(a.out_dir, name, write)

    info = dict(n=len(words), d=model.hidden, source="wordfreq", wordfreq_version=wf_version, lang="en",
                wordlist="best", top_n_list_size=list_size, filter=FILTER, token_counts=hist,
                batch_size=a.batch_size, workers=a.workers, embed_seconds=round(secs, 1),
                model=os.path.relpath(a.model, ROOT) if a.model.startswith(ROOT) else a.model,
                licence="words: wordfreq data, CC-BY-SA 4.0 (code Apache-2.0)")
    save("words.txt", lambda f: f.write("".join(w + "\n" for w in words).encode("utf-8")))
    save("info.json", lambda f: f.write((json.dumps(info, indent=1) + "\n").encode("utf-8")))
    p = save("embeddings.npy", lambda f: np.save(f, emb))  # last: prepare-words checks its mtime
    print(f"{PROG}: wrote {p} {emb.shape} {emb.dtype}, words.txt, info.json; forward pass {secs:.1f} s "
          f"({len(words) / secs:.0f} words/s), total {time.time() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
