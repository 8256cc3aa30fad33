#!/usr/bin/env python3
"""A PyTorch peer of `sheaf chime train` on MovieLens-100K, to compare training time per epoch on the
same CPU threads. It is a speed peer, not a quality result: it runs the same workload (same data, same
batches, same model shapes, same losses and optimiser) and reports seconds per epoch and behaviours
(tokens) per second; its losses only show that it trains.

    /tmp/torchenv/bin/python tools/chime_torch.py [--threads 1] [--epochs 2] [--layers 2] [--seed 1]
                                                  [--max-users N] [--quiet]

Sheaf's run to compare with: `sheaf chime train STORE --first-fraction 0.8 --epochs E --threads N`
with the other flags at their defaults (the store of tools/sasrec-compare).

Workload (the defaults of `sheaf chime train`; every size is a flag here):

* Data: data/ml-100k/ml-100k.inter read directly (no store). Each user's behaviours in (timestamp,
  file line) order; only each user's first ⌊0.8·n⌋ are kept (`--first-fraction 0.8`). Items are dense
  indices 1…N by ascending item id (0 = padding); the content table [N + 1, 384] is
  data/ml-100k/item_embeddings.npy (row i = item item_ids.npy[i]) with row 0 zeros, frozen.
* Users with ≥ 2 kept behaviours take part; user u is held out when
  SplitMix64.mix(u ^ 0xC41E05EED) % 10⁶ < 0.1·10⁶ (Sheaf's `CHIMETrainer.isHeldOut`: the finaliser
  alone, without the generator's golden-ratio increment). The rest are the training users (851 with the
  defaults, 27 steps of 32 users per epoch).
* Epoch e draws its user order, cuts and batch order from the same SplitMix64 stream as Sheaf's
  `CHIMETrainer.trainEpoch` (seed mix(seed ^ (e + 1)·0x9E3779B97F4A7C15)): one example per training
  user with a cut c uniform in 1…n − 1, window = behaviours [max(0, c − 256), c), futures = behaviours
  [c, min(n, c + 64)); groups of 8 batches sorted by (window length, user), cut into batches of 32, the
  batches shuffled. So both sides read the same batches in the same order and the same tokens.
* IAM: g = (x·Wv + bv) ⊙ σ(x·Wg + bg) per distinct item of the batch (x its 384-d content, width 256);
  token = g·Wc + labels[clamp(round(rating), 0, 7)] + actions[0] + gaps[gap bucket] + bias, with gap
  bucket 0 for a user's first behaviour or a gap ≤ 0, else min(31, 1 + ⌊log₂ gap⌋) (seconds).
* IRM: LayerNorm(token + positions[p]) → dropout → 2 post-LN BERT layers (width 384, 12 heads,
  feed-forward 1536 with exact GELU, dropout 0.1 on the attention weights, the attention output and the
  feed-forward output, LN ε 1e-12), causal mask plus key-padding mask. Written by hand (not
  nn.TransformerEncoderLayer, which adds a dropout after the GELU that BERT and Sheaf do not have), with
  F.scaled_dot_product_attention and a boolean mask, and q, k, v as one fused d → 3d Linear (the same
  function and initialisation distribution as three Linears).
* Keys: L2-normalised g·Wk + bk of the batch's distinct items (tokens', next items' and futures').
* Immediate loss: for every real window position, normalize(h_t)·Kᵀ/0.1 over the batch's distinct items,
  cross-entropy against the next behaviour's item. Holistic loss: normalize(h at each row's last real
  position) against every future behaviour of the batch (/0.1); per row r and each future p with rating
  ≥ 4: −s_rp + log(exp s_rp + Σ_j exp s_rj) over negatives j (r's own futures rated ≤ 2 and every other
  row's futures) whose item differs from p's; mean over a row's positives, then over rows with one.
  Total = 0.5·immediate + 0.5·holistic.
* AdamW (β 0.9/0.999, ε 1e-8, lr 3e-4, weight decay 0.01 on 2-D tensors only), warm-up 20 steps then
  cosine to 0 over all epochs' steps (Sheaf's WarmupCosineSchedule), gradient norm clipped at 1.
* Timed: the epoch's steps (batch building, forward, backward, clipping, AdamW), as Sheaf's
  `trainingSeconds`; Sheaf's held-out evaluation after each epoch is outside that time and not run here.

Not identical to Sheaf: the initial weights (normal(0, 0.02) from torch's generator, not Sheaf's
SplitMix64 draws), the dropout masks, the content embeddings (Sheaf decodes them from the store's 8-bit
codebook; here the float32 originals) and float summation order, so losses differ a little; the
amount of work per step does not. No early stopping and no held-out losses.
"""
import argparse
import json
import math
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "ml-100k"), help="directory of ml-100k.inter and the item embeddings")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (also OMP/MKL_NUM_THREADS)")
    ap.add_argument("--omp-wait-policy", default="PASSIVE", help="OMP_WAIT_POLICY (PASSIVE: idle threads do not spin)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--first-fraction", type=float, default=0.8)
    ap.add_argument("--held-out", type=float, default=0.1)
    ap.add_argument("--max-users", type=int, default=0, help="only the first N users by id (a smoke test); 0 = all")
    ap.add_argument("--width", type=int, default=384)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--inner", type=int, default=1536)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--content-width", type=int, default=256)
    ap.add_argument("--label-buckets", type=int, default=8)
    ap.add_argument("--action-buckets", type=int, default=16)
    ap.add_argument("--gap-buckets", type=int, default=32)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--eps", type=float, default=1e-12, help="layer-norm epsilon")
    ap.add_argument("--init-range", type=float, default=0.02)
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--holistic-weight", type=float, default=0.5)
    ap.add_argument("--positive-label", type=float, default=4)
    ap.add_argument("--negative-label", type=float, default=2)
    ap.add_argument("--future", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--warmup-steps", type=int, default=20)
    ap.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip (0: none)")
    ap.add_argument("--quiet", action="store_true", help="no per-step progress on stderr")
    return ap.parse_args()


# Threads must be fixed before torch (and its OpenMP runtime) is loaded.
ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)
    os.environ["OMP_WAIT_POLICY"] = ARGS.omp_wait_policy

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


# --- SplitMix64, bit for bit as Sources/SheafRandom/SplitMix64.swift -------------------------------

def mix(z):
    """SplitMix64's finaliser (Sheaf's `SplitMix64.mix`), mod 2⁶⁴."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & M64

    def next(self):
        self.state = (self.state + GOLDEN) & M64
        return mix(self.state)

    def partial_shuffle(self, xs, count):
        n = len(xs)
        for i in range(count):
            j = i + self.next() % (n - i)
            xs[i], xs[j] = xs[j], xs[i]


def is_held_out(user, fraction):
    return mix(user ^ 0xC41E05EED) % 1_000_000 < fraction * 1_000_000


# --- Data --------------------------------------------------------------------------------------------

class User:
    """One user's kept behaviours: dense items, labels, timestamps."""

    def __init__(self, uid, items, labels, times):
        self.uid, self.items, self.labels, self.times = uid, items, labels, times
        self.n = len(items)


def load(a):
    """Users (ascending id, kept behaviours only) and the content table [N + 1, D]."""
    rows = {}
    with open(os.path.join(a.data, "ml-100k.inter")) as f:
        next(f)  # header
        for line_no, line in enumerate(f):
            u, i, r, t = line.rstrip("\n").split("\t")
            rows.setdefault(int(u), []).append((int(float(t)), line_no, int(i), float(r)))
    vocab = sorted({i for bs in rows.values() for _, _, i, _ in bs})
    dense = {item: k + 1 for k, item in enumerate(vocab)}
    ids = np.load(os.path.join(a.data, "item_ids.npy"))
    emb = np.load(os.path.join(a.data, "item_embeddings.npy")).astype(np.float32)
    row_of = {int(x): k for k, x in enumerate(ids)}
    content = np.zeros((len(vocab) + 1, emb.shape[1]), dtype=np.float32)
    for item, k in dense.items():
        content[k] = emb[row_of[item]]
    users = []
    for uid in sorted(rows)[: a.max_users or None]:
        bs = sorted(rows[uid])
        bs = bs[: int(a.first_fraction * len(bs))]
        if bs:
            users.append(User(uid, np.array([dense[i] for _, _, i, _ in bs], dtype=np.int64),
                              np.array([r for _, _, _, r in bs], dtype=np.float32),
                              np.array([t for t, _, _, _ in bs], dtype=np.int64)))
    return users, torch.from_numpy(content)


def gap_buckets(times, buckets):
    """0 for the first behaviour or a gap ≤ 0, else min(buckets − 1, 1 + ⌊log₂ gap⌋), per behaviour."""
    gaps = np.diff(times, prepend=times[0])
    out = np.zeros(len(times), dtype=np.int64)
    pos = gaps > 0
    # 1 + ⌊log₂ gap⌋ is the gap's bit length: frexp's exponent (exact below 2⁵³).
    out[pos] = np.minimum(buckets - 1, np.frexp(gaps[pos].astype(np.float64))[1])
    return out


class Batch:
    """One step's tensors (CHIMEBatch in Sources/SheafModels/CHIME.swift): windows left-aligned and padded
    at the end, every item mapped to a row of the batch's distinct-item table."""

    def __init__(self, examples, users, a):
        windows = [(u, max(0, c - a.max_length), c) for u, c in examples]
        self.rows = len(windows)
        self.lengths = [c - s for _, s, c in windows]
        L = self.length = max(self.lengths)
        local = {}

        def rows_of(items):
            return [local.setdefault(int(i), len(local)) for i in items]

        tok = np.zeros((self.rows, L), dtype=np.int64)
        lab = np.zeros((self.rows, L), dtype=np.int64)
        gap = np.zeros((self.rows, L), dtype=np.int64)
        mask = np.zeros((self.rows, L), dtype=bool)
        positions, nexts, f_row, f_item, f_label = [], [], [], [], []
        for r, (ui, s, c) in enumerate(windows):
            u = users[ui]
            n = c - s
            tok[r, :n] = rows_of(u.items[s:c])
            lab[r, :n] = np.clip(np.floor(u.labels[s:c] + 0.5), 0, a.label_buckets - 1)  # Swift's rounded(), after the clamp
            gap[r, :n] = u.gaps[s:c]
            mask[r, :n] = True
            positions.extend(range(r * L, r * L + n))  # every window position has a next behaviour (c ≤ n − 1)
            nexts.extend(rows_of(u.items[s + 1:c + 1]))
            e = min(u.n, c + a.future)
            f_row.extend([r] * (e - c))
            f_item.extend(rows_of(u.items[c:e]))
            f_label.extend(u.labels[c:e].tolist())
        self.items = torch.tensor(sorted(local, key=local.get), dtype=torch.long)
        self.token_local = torch.from_numpy(tok)
        self.label_buckets = torch.from_numpy(lab)
        self.gap_buckets = torch.from_numpy(gap)
        self.key_mask = torch.from_numpy(mask)
        self.positions = torch.tensor(positions, dtype=torch.long)
        self.next_items = torch.tensor(nexts, dtype=torch.long)
        self.last = torch.tensor([r * L + n - 1 for r, n in enumerate(self.lengths)], dtype=torch.long)
        self.future_row = torch.tensor(f_row, dtype=torch.long)
        self.future_item = torch.tensor(f_item, dtype=torch.long)
        self.future_label = torch.tensor(f_label, dtype=torch.float32)


# --- Model -------------------------------------------------------------------------------------------

class Layer(torch.nn.Module):
    """A post-LN BERT layer: attention, dropout, residual, LN; GELU feed-forward, dropout, residual, LN."""

    def __init__(self, a):
        super().__init__()
        d = a.width
        self.heads, self.p, self.eps = a.heads, a.dropout, a.eps
        self.qkv, self.out = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.up, self.down = torch.nn.Linear(d, a.inner), torch.nn.Linear(a.inner, d)
        self.ln1, self.ln2 = torch.nn.LayerNorm(d, eps=a.eps), torch.nn.LayerNorm(d, eps=a.eps)

    def forward(self, x, mask):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        p = self.p if self.training else 0.0
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        x = self.ln1(x + F.dropout(self.out(att.transpose(1, 2).reshape(b, t, d)), p, self.training))
        return self.ln2(x + F.dropout(self.down(F.gelu(self.up(x))), p, self.training))


class CHIME(torch.nn.Module):
    def __init__(self, a, content_dim):
        super().__init__()
        d, cw = a.width, a.content_width
        self.a = a
        self.glu_value, self.glu_gate = torch.nn.Linear(content_dim, cw), torch.nn.Linear(content_dim, cw)
        self.content_to_token = torch.nn.Parameter(torch.empty(cw, d))
        self.labels = torch.nn.Parameter(torch.empty(a.label_buckets, d))
        self.actions = torch.nn.Parameter(torch.empty(a.action_buckets, d))
        self.gaps = torch.nn.Parameter(torch.empty(a.gap_buckets, d))
        self.token_bias = torch.nn.Parameter(torch.zeros(d))
        self.positions = torch.nn.Parameter(torch.empty(a.max_length, d))
        self.input_norm = torch.nn.LayerNorm(d, eps=a.eps)
        self.layers = torch.nn.ModuleList(Layer(a) for _ in range(a.layers))
        self.keys = torch.nn.Linear(cw, d)
        # BERT's initialisation, as Sheaf's: matrices and tables normal(0, σ), biases 0, norms 1 and 0
        # (torch.nn.LayerNorm's own initialisation).
        norms = {id(p) for m in self.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()}
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, 0.0, a.init_range)
            elif id(p) not in norms:
                torch.nn.init.zeros_(p)

    def losses(self, batch, content):
        a = self.a
        x = content[batch.items]
        g = self.glu_value(x) * torch.sigmoid(self.glu_gate(x))  # [I, cw]
        keys = F.normalize(self.keys(g), dim=-1)  # [I, d]
        b, L = batch.rows, batch.length
        tokens = (g @ self.content_to_token)[batch.token_local] + self.labels[batch.label_buckets] \
            + self.actions[0] + self.gaps[batch.gap_buckets] + self.token_bias  # every action is 0
        h = F.dropout(self.input_norm(tokens + self.positions[:L]), a.dropout, self.training)
        # True = may attend: key s ≤ query t and key s is a real behaviour. Position 0 is always real,
        # so no query row is fully masked.
        allowed = torch.ones(L, L, dtype=torch.bool).tril() & batch.key_mask[:, None, None, :]
        for layer in self.layers:
            h = layer(h, allowed)
        h = h.reshape(b * L, -1)

        # Immediate: every real position against the batch's distinct items.
        q = F.normalize(h[batch.positions], dim=-1)
        immediate = F.cross_entropy(q @ keys.T / a.tau, batch.next_items)

        # Holistic: each row's last h against every future behaviour of the batch.
        rows, fitem, flabel = batch.future_row, batch.future_item, batch.future_label
        pos_r, pos_j = torch.nonzero((rows[None, :] == torch.arange(b)[:, None]) & (flabel >= a.positive_label)[None, :],
                                     as_tuple=True)
        if len(pos_r) == 0:
            return (1 - a.holistic_weight) * immediate, immediate, None
        u = F.normalize(h[batch.last], dim=-1)
        s = u @ keys[fitem].T / a.tau  # [rows, futures]
        # Per positive (r, p): negatives are r's own futures rated ≤ negative-label and every other
        # row's futures, minus those on p's item.
        negative = (rows[None, :] != pos_r[:, None]) | (flabel <= a.negative_label)[None, :]
        negative &= fitem[None, :] != fitem[pos_j][:, None]
        sp = s[pos_r, pos_j]
        sn = s[pos_r].masked_fill(~negative, float("-inf"))
        terms = torch.logsumexp(torch.cat([sp[:, None], sn], dim=1), dim=1) - sp
        per_row = torch.zeros(b).index_add(0, pos_r, terms)
        count = torch.zeros(b).index_add(0, pos_r, torch.ones_like(terms))
        active = count > 0
        holistic = (per_row[active] / count[active]).mean()
        total = (1 - a.holistic_weight) * immediate + a.holistic_weight * holistic
        return total, immediate, holistic


# --- Training ----------------------------------------------------------------------------------------

def epoch_batches(a, users, training, epoch):
    """Sheaf's CHIMETrainer.trainEpoch order: the same SplitMix64 draws, so the same batches."""
    rng = SplitMix64(mix(a.seed ^ (((epoch + 1) * GOLDEN) & M64)))
    order = list(training)
    rng.partial_shuffle(order, len(order))
    examples = [(u, 1 + rng.next() % (users[u].n - 1)) for u in order]
    shuffler = SplitMix64(rng.next())
    size, out = a.batch_size, []
    for start in range(0, len(examples), 8 * size):
        group = sorted(examples[start:start + 8 * size], key=lambda e: (min(e[1], a.max_length), e[0]))
        out += [group[i:i + size] for i in range(0, len(group), size)]
    shuffler.partial_shuffle(out, len(out))
    return out


def learning_rate(a, step, total):
    if step < a.warmup_steps:
        return a.lr * (step + 1) / a.warmup_steps
    if step >= total:
        return 0.0
    return a.lr * 0.5 * (1 + math.cos(math.pi * (step - a.warmup_steps) / (total - a.warmup_steps)))


def machine():
    blas = "unknown"
    for line in torch.__config__.show().splitlines():
        line = line.strip()
        if line.startswith("- BLAS_INFO=") or "BLAS_INFO=" in line:
            blas = line.split("BLAS_INFO=")[1].split(",")[0]
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        capability = None
    return blas, cpu, capability


def main(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    users, content = load(a)
    for u in users:
        u.gaps = gap_buckets(u.times, a.gap_buckets)
    eligible = [i for i, u in enumerate(users) if u.n >= 2]
    training = [i for i in eligible if not is_held_out(users[i].uid, a.held_out)]
    held_out = len(eligible) - len(training)
    steps = (len(training) + a.batch_size - 1) // a.batch_size
    total_steps = max(a.warmup_steps + 1, a.epochs * steps)
    print(f"{len(users)} users, {len(content) - 1} items, {sum(u.n for u in users)} kept behaviours; "
          f"{len(training)} training users, {held_out} held out; {steps} steps per epoch", flush=True)

    model = CHIME(a, content.shape[1])
    decayed = [p for p in model.parameters() if p.dim() == 2]
    undecayed = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decayed, "weight_decay": a.weight_decay}, {"params": undecayed, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    params = decayed + undecayed
    print(f"{sum(p.numel() for p in params):,} parameters; torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

    seconds, rates, losses = [], [], []
    model.train()
    for epoch in range(a.epochs):
        batches = epoch_batches(a, users, training, epoch)
        total = immediate = holistic = 0.0
        holistic_steps = tokens = 0
        started = time.perf_counter()
        for step, examples in enumerate(batches):
            batch = Batch(examples, users, a)
            tokens += sum(batch.lengths)
            loss, imm, hol = model.losses(batch, content)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if a.clip > 0:
                torch.nn.utils.clip_grad_norm_(params, a.clip)
            for group in opt.param_groups:
                group["lr"] = learning_rate(a, epoch * steps + step, total_steps)
            opt.step()
            total += loss.item()
            immediate += imm.item()
            if hol is not None:
                holistic += hol.item()
                holistic_steps += 1
            if not a.quiet:
                print(f"  epoch {epoch + 1} step {step + 1}/{len(batches)}: loss {total / (step + 1):.4f} "
                      f"({time.perf_counter() - started:.1f} s)", file=sys.stderr, flush=True)
        elapsed = time.perf_counter() - started
        n = max(len(batches), 1)
        mean = (total / n, immediate / n, holistic / holistic_steps if holistic_steps else float("nan"))
        seconds.append(elapsed)
        rates.append(tokens / max(elapsed, 1e-9))
        losses.append({"total": mean[0], "immediate": mean[1], "holistic": mean[2]})
        print(f"epoch {epoch + 1}: {elapsed:.2f} s training, {rates[-1]:.0f} tokens/s ({tokens} tokens, {len(batches)} steps); "
              f"loss {mean[0]:.4f} (immediate {mean[1]:.4f}, holistic {mean[2]:.4f})", flush=True)

    blas, cpu, capability = machine()
    print(json.dumps({
        "seconds_per_epoch": seconds, "tokens_per_second": rates, "losses": losses, "threads": a.threads,
        "training_users": len(training), "steps_per_epoch": steps, "layers": a.layers,
        "torch": torch.__version__, "blas": blas, "cpu_capability": capability, "cpu": cpu,
    }))


if __name__ == "__main__":
    main(ARGS)
