#!/usr/bin/env python3
"""The PyTorch side of `sheaf-measure nn-step`: one training step (forward, backward, AdamW) of the
same small causal transformer, on CPU, with a given thread count.

    python tools/torch_step.py --threads 1 [--steps 20]

Model and data sizes match Sources/SheafMeasure/NNStep.swift: batch 32 x sequence 64 item ids from a
10,000 x 64 table, learned positions, 2 post-LN layers of width 64 with 4 heads (causal
scaled_dot_product_attention), feed-forward 256 with exact GELU, InfoNCE (temperature 0.1) between
each sequence's last output and its next item's embedding (both L2-normalised), AdamW (lr 1e-3,
weight decay 0.01 on matrices), gradient norm clipped at 1. Needs torch (not in tools/requirements.txt:
install it in its own venv).
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

ITEMS, WIDTH, HEADS, FFN, LAYERS, LENGTH, BATCH = 10_000, 64, 4, 256, 2, 64, 32


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = (torch.nn.Linear(WIDTH, WIDTH) for _ in range(4))
        self.ln1, self.ln2 = torch.nn.LayerNorm(WIDTH), torch.nn.LayerNorm(WIDTH)
        self.up, self.down = torch.nn.Linear(WIDTH, FFN), torch.nn.Linear(FFN, WIDTH)

    def forward(self, x):
        b, t, w = x.shape
        split = lambda y: y.view(b, t, HEADS, w // HEADS).transpose(1, 2)
        a = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)), is_causal=True)
        x = self.ln1(x + self.o(a.transpose(1, 2).reshape(b, t, w)))
        return self.ln2(x + self.down(F.gelu(self.up(x))))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(ITEMS, WIDTH)
        self.positions = torch.nn.Parameter(torch.randn(LENGTH, WIDTH) * 0.1)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(LAYERS))

    def forward(self, sequences, nxt):
        x = self.table(sequences) + self.positions
        for blk in self.blocks:
            x = blk(x)
        q = F.normalize(x[:, -1], dim=-1)
        k = F.normalize(self.table(nxt), dim=-1)
        return F.cross_entropy(q @ k.T / 0.1, torch.arange(BATCH))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = Model()
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}], lr=1e-3)
    g = torch.Generator().manual_seed(2)
    times, losses = [], []
    for step in range(a.steps + 3):
        seqs = torch.randint(0, ITEMS, (BATCH, LENGTH), generator=g)
        nxt = torch.randint(0, ITEMS, (BATCH,), generator=g)
        t0 = time.perf_counter()
        loss = model(seqs, nxt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = (time.perf_counter() - t0) * 1000
        if step >= 3:
            times.append(dt)
        losses.append(loss.item())
    times.sort()
    print(f"torch-step: {a.threads} thread(s), median {times[len(times) // 2]:.2f} ms per step (min {times[0]:.2f}); "
          f"loss {losses[0]:.3f} -> {losses[-1]:.3f}; torch {torch.__version__}")
    config = torch.__config__.show()
    blas = next((l.split("BLAS_INFO=", 1)[1].split(",")[0].strip() for l in config.splitlines() if "BLAS_INFO=" in l), "?")
    isa = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else "?"
    print(json.dumps({"median_ms": times[len(times) // 2], "min_ms": times[0], "threads": a.threads,
                      "torch": torch.__version__, "blas": blas, "cpu_capability": isa}))


if __name__ == "__main__":
    main()
