#!/usr/bin/env python3
"""Numerical parity of Sheaf's SASRec with RecBole 1.2.1's: the same weights, the same histories, the
same scores.

    TORCH_PYTHON=/tmp/torchenv/bin/python tools/sasrec-parity --store data/demo-store --model DIR [--users 20]

Loads a model trained by `sheaf train` (DIR/model.safetensors, ID variant) into RecBole's own `SASRec`
class (built from RecBole's ml-100k dataset, so its item remapping is RecBole's): Sheaf's [in, out]
matrices become PyTorch's [out, in] weights, and item rows are permuted from Sheaf's vocabulary
(ascending item id) to RecBole's token ids. Then, for `--users` users, both sides score every item
after the user's last 50 behaviours (Sheaf: `sheaf recommend --json -k 1682`; RecBole:
`full_sort_predict` in eval mode) and the script reports the largest score difference and whether the
top-10 lists agree. Exit status 1 when any score differs by more than --tolerance (default 1e-3).

Needs torch, RecBole and safetensors in TORCH_PYTHON's venv (tools/recbole-sasrec says how; then
`pip install safetensors`) and a store holding MovieLens-100K (tools/demo's data/demo-store).
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHEAF = os.path.join(ROOT, ".build", "release", "sheaf")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=os.path.join(ROOT, "data", "demo-store"))
    ap.add_argument("--model", required=True)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--tolerance", type=float, default=1e-3)
    a = ap.parse_args()
    sys.argv = sys.argv[:1]  # RecBole's Config parses sys.argv

    import numpy as np
    for name, value in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_),
                        ("float", np.float64), ("int", np.int_), ("complex", np.complex128), ("object", np.object_),
                        ("str", np.str_), ("unicode", np.str_)):
        if not hasattr(np, name):
            setattr(np, name, value)  # numpy 2 removed these aliases; RecBole 1.2.1 uses them
    import torch
    try:
        from safetensors.numpy import load_file, safe_open
    except ImportError:
        sys.exit(f"sasrec_parity: {sys.executable} has no safetensors; pip install safetensors into that venv")
    from recbole.config import Config
    from recbole.data import create_dataset
    from recbole.model.sequential_recommender.sasrec import SASRec

    path = os.path.join(a.model, "model.safetensors")
    with safe_open(path, "np") as f:
        meta = f.metadata()
    cfg = json.loads(meta["sheaf.model_configuration"])
    if cfg.get("content"):
        sys.exit("the parity check covers the ID variant only")
    w = load_file(path)
    config = Config(model="SASRec", dataset="ml-100k", config_dict={
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]}, "MAX_ITEM_LIST_LENGTH": cfg["maxLength"],
        "n_layers": cfg["layers"], "n_heads": cfg["heads"], "hidden_size": cfg["hiddenSize"],
        "inner_size": cfg["innerSize"], "hidden_dropout_prob": cfg["hiddenDropout"],
        "attn_dropout_prob": cfg["attentionDropout"], "hidden_act": "gelu", "layer_norm_eps": cfg["layerNormEpsilon"],
        "initializer_range": cfg["initializerRange"], "loss_type": "CE", "train_neg_sample_args": None,
        "use_gpu": False, "device": "cpu", "show_progress": False, "state": "ERROR"})
    dataset = create_dataset(config)
    model = SASRec(config, dataset).eval()

    # Sheaf's vocabulary: the items of the histories, ascending id; index i + 1 ↔ ids[i].
    tokens = dataset.field2id_token["item_id"]  # RecBole id → token (string), 0 = "[PAD]"
    sheaf_ids = sorted(int(t) for t in tokens[1:])
    sheaf_index = {item: i + 1 for i, item in enumerate(sheaf_ids)}
    perm = [0] + [sheaf_index[int(t)] for t in tokens[1:]]  # RecBole row r takes Sheaf row perm[r]
    t = lambda x: torch.from_numpy(np.ascontiguousarray(x))
    state = {
        "item_embedding.weight": t(w["items"][perm]),
        "position_embedding.weight": t(w["positions"]),
        "LayerNorm.weight": t(w["input_norm.gamma"]), "LayerNorm.bias": t(w["input_norm.beta"]),
    }
    for l in range(cfg["layers"]):
        p, s = f"trm_encoder.layer.{l}.", f"layers.{l}."
        for theirs, ours in (("multi_head_attention.query", "query"), ("multi_head_attention.key", "key"),
                             ("multi_head_attention.value", "value"), ("multi_head_attention.dense", "output"),
                             ("feed_forward.dense_1", "inner"), ("feed_forward.dense_2", "outer")):
            state[p + theirs + ".weight"] = t(w[s + ours + ".weight"].T)
            state[p + theirs + ".bias"] = t(w[s + ours + ".bias"])
        for theirs, ours in (("multi_head_attention.LayerNorm", "attention_norm"), ("feed_forward.LayerNorm", "feed_forward_norm")):
            state[p + theirs + ".weight"] = t(w[s + ours + ".gamma"])
            state[p + theirs + ".bias"] = t(w[s + ours + ".beta"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        sys.exit(f"state dict mismatch: missing {missing}, unexpected {unexpected}")

    # The users' histories in the store's order, from the same .inter file RecBole read (stable by time).
    inter = os.path.join(ROOT, "data", "ml-100k", "ml-100k.inter")
    rows = [l.split("\t") for l in open(inter, encoding="utf-8").read().splitlines()[1:] if l]
    by_user = {}
    for i, r in enumerate(rows):
        by_user.setdefault(int(r[0]), []).append((float(r[3]), i, int(r[1])))
    users = sorted(by_user)[: a.users]
    L = cfg["maxLength"]
    worst, same_top = 0.0, 0
    for u in users:
        seq = [item for _, _, item in sorted(by_user[u])][-L:]
        out = subprocess.run([SHEAF, "recommend", a.store, "--model", a.model, "--user", str(u), "-k", str(len(sheaf_ids)),
                              "--json"], capture_output=True, text=True, check=True).stdout
        ours = {r["item"]: r["score"] for r in json.loads(out)}
        item_seq = torch.zeros((1, L), dtype=torch.long)
        item_seq[0, : len(seq)] = torch.tensor([dataset.token2id("item_id", str(i)) for i in seq])
        with torch.no_grad():
            h = model.forward(item_seq, torch.tensor([len(seq)]))
            scores = (h @ model.item_embedding.weight.T)[0].numpy()
        theirs = {int(tokens[r]): float(scores[r]) for r in range(1, len(tokens))}
        worst = max(worst, max(abs(ours[i] - theirs[i]) for i in theirs))
        top = lambda d: [i for i, _ in sorted(d.items(), key=lambda kv: -kv[1])[:10]]
        same_top += top(ours) == top(theirs)
    print(json.dumps({"users": len(users), "items": len(sheaf_ids), "max_abs_score_difference": worst,
                      "same_top10": same_top, "tolerance": a.tolerance}))
    sys.exit(0 if worst <= a.tolerance else 1)


if __name__ == "__main__":
    main()
