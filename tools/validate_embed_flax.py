#!/usr/bin/env python3
"""Cross-check tools/embed_items.py against an independent BERT: transformers' FlaxBertModel (jax).

Optional, not part of tools/prepare-sample. No torch: transformers' Flax code loads
model.safetensors directly. It needs its own throwaway venv (versions that still ship Flax BERT):

    python3 -m venv .cache/flax-ref-venv
    .cache/flax-ref-venv/bin/pip install jax==0.4.13 jaxlib==0.4.13 flax==0.7.0 "numpy<2" transformers==4.46.3
    .cache/flax-ref-venv/bin/python tools/validate_embed_flax.py

Reference pipeline: pure-python BertTokenizer(vocab.txt, do_lower_case=True), padding per batch,
truncation 256, FlaxBertModel last_hidden_state, mean pooling over the attention mask, L2 norm.
Checks, on every text of data/ml-100k/item_texts.tsv plus three extra sentences (one longer than
256 tokens, to exercise truncation):
  - token ids of the reference tokenizer == token ids of embed_items' tokenizer.json setup;
  - cosine(embed_items, reference) >= 0.9999 for every text, both re-encoded here and as saved
    in data/ml-100k/item_embeddings.npy.
Exit status 0 when all hold.
"""

import os
import sys

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from transformers import BertTokenizer, FlaxBertModel  # noqa: E402

from embed_items import MiniLM  # noqa: E402

MODEL = os.path.join(ROOT, "data/minilm")
TEXTS = os.path.join(ROOT, "data/ml-100k/item_texts.tsv")
SAVED = os.path.join(ROOT, "data/ml-100k/item_embeddings.npy")


def main():
    with open(TEXTS, encoding="utf-8") as f:
        items = [line.rstrip("\n").split("\t", 1)[1] for line in f]
    extra = ["a movie about space", "This framework generates embeddings for each input sentence",
             "The quick brown fox jumps over the lazy dog. " * 40]
    texts = items + extra

    slow = BertTokenizer(vocab_file=os.path.join(MODEL, "vocab.txt"), do_lower_case=True)
    ref_model = FlaxBertModel.from_pretrained(MODEL, from_pt=True)
    parts = []
    for s in range(0, len(texts), 64):
        enc = slow(texts[s:s + 64], padding=True, truncation=True, max_length=256, return_tensors="np")
        h = np.asarray(ref_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                 token_type_ids=np.zeros_like(enc["input_ids"])).last_hidden_state)
        m = enc["attention_mask"][..., None].astype(np.float32)
        p = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        parts.append(p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12))
    ref = np.concatenate(parts).astype(np.float32)

    ours = MiniLM(MODEL)
    mism = sum(slow(t, truncation=True, max_length=256)["input_ids"] != ours.tok.encode(t).ids for t in texts)
    mine = ours.encode(texts)
    cos = (mine * ref).sum(1)
    ok = mism == 0 and cos.min() >= 0.9999
    print(f"token id mismatches: {mism} of {len(texts)}")
    print(f"re-encoded vs Flax: min cos {cos.min():.7f}, mean {cos.mean():.7f}, max |diff| {np.abs(mine - ref).max():.2e}")
    if os.path.exists(SAVED):
        saved = np.load(SAVED)
        c = (saved * ref[:len(items)]).sum(1)
        print(f"saved {SAVED} vs Flax: min cos {c.min():.7f}, max |diff| {np.abs(saved - ref[:len(items)]).max():.2e}")
        ok &= saved.shape[0] == len(items) and c.min() >= 0.9999
    print("validate_embed_flax:", "OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
