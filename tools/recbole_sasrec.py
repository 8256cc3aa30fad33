#!/usr/bin/env python3
"""RecBole 1.2.1's own SASRec on its own bundled MovieLens-100K: the peer baseline for Sheaf's SASRec.

    tools/recbole-sasrec [--seeds 1 2 3] [--epochs 200] [--patience 10] [--threads 2]
                         [--eval-batch-size 2048] [--out results/recbole_sasrec]
                         [--omp-wait-policy PASSIVE] [--anomaly-detection] [--check-data]
                         [--restart] [--stop-after-epochs N]

Each seed is a fresh RecBole run (Config -> create_dataset -> data_preparation -> SASRec -> Trainer.fit
-> Trainer.evaluate(test, load_best_model=True)), the same sequence as recbole.quick_start.run_recbole
minus its FLOPs count. Writes OUT.json (config, environment, every epoch of every seed) and OUT.md (one
row per seed, then mean +- sample std), prints the Markdown, and rewrites both after every epoch while
running ("complete": false until the end). RecBole's own log, tensorboard files and checkpoints go to
OUT_work/seed<N>/. Needs torch and recbole 1.2.1 in TORCH_PYTHON's environment (the wrapper installs
the cached recbole wheel; see the error message if the import fails).

Protocol (RecBole 1.2.1 as installed; paths relative to site-packages/recbole/)
--------------------------------------------------------------------------------
Data. RecBole ignores data_path for the dataset name "ml-100k": config/configurator.py,
Config._set_default_parameters, `if self.dataset == "ml-100k": ... data_path = <recbole>/dataset_example/ml-100k`.
So the run always reads the wheel's bundled ml-100k.inter; the script checks its sha256 against Sheaf's
data/ml-100k/ml-100k.inter and prints whether they are identical. Only the .inter file is loaded
(load_col has only `inter`). No filtering (rm_dup_inter, val_interval, user/item_inter_num_interval all
None in properties/dataset/ml-100k.yaml): 943 users, 1,682 items, 100,000 interactions. IDs are remapped
to 1..n with 0 = "[PAD]", so dataset.item_num = 1,683 = items + padding; SASRec's item_embedding and
its output layer have 1,683 rows and full-sort scores have 1,683 columns.

Timestamps are float fields (`timestamp:float`) and properties/dataset/ml-100k.yaml sets
`normalize_all: True`, so data/dataset/dataset.py Dataset._normalize rescales them to
`arr = (arr - mn) / (mx - mn)` in float64 and Dataset._dataframe_to_interaction stores them as
`torch.FloatTensor(value)` (float32). Near 1.0 a float32 step is 2^-24 of the 18.6e6 s range (about
1.1 s), so timestamps a second apart can become equal, and equal keys then fall back to file order.

Ordering: a stable sort by (float32 normalised timestamp), equal keys in file order.
  * data/dataset/sequential_dataset.py SequentialDataset.data_augmentation:
      `self.sort(by=[self.uid_field, self.time_field], ascending=True)`
    -> data/interaction.py Interaction.sort, which sorts key by key from the last to the first:
      `for b, a in zip(by[::-1], ascending[::-1]): ... index = np.argsort(key, kind="stable")`
    i.e. a stable sort by the float32 timestamp, then a stable sort by user: each user's rows by
    timestamp, ties in the order they had in the loaded file (no earlier step reorders rows:
    rm_dup_inter, the only other sort (a pandas sort_values), is off).
  * data/dataset/dataset.py Dataset.build, order "TO": `self.sort(by=self.time_field)` -- again a
    stable argsort on the augmented rows, so each user's rows keep their relative order.
  * Dataset.leave_one_out -> Dataset._grouped_index (dict of index lists in row order) ->
    Dataset._split_index_by_leave_one_out.
  The script checks this on every run ("order check"): it rebuilds every user's sequence from RecBole's
  train/valid/test rows and compares it with (a) the exact order by (integer timestamp, file line) and
  (b) the order by (float32((t - min) / (max - min)), file line). On ml-100k: 0 users differ from (b);
  83 of 943 differ from (a), and for 5 users the valid target, for 4 the test target, is a different
  item than under (a). (The file has 50,561 same-user neighbours with equal integer timestamps, which
  keep file order under both.) To reproduce RecBole's split exactly, sort like (b).

Sequences. data_augmentation runs before the split (Dataset._change_feat_format): a user with n
interactions i_1..i_n gives n-1 rows "(i_max(1,k-50) .. i_{k-1}) -> i_k" for k = 2..n, the history
truncated to the last MAX_ITEM_LIST_LENGTH = 50 items (`if i - seq_start > max_item_list_len:
seq_start += 1`), stored left-aligned (item_id_list[:length], zeros after), item_length = history
length. The leave-one-out split works on these rows:
      `legal_leave_one_num = min(leave_one_num, tot_cnt - 1)`; `pr = tot_cnt - legal_leave_one_num`
  so with n >= 4: train = the n-3 rows with targets i_2..i_{n-2}, valid = target i_{n-1} (history
  i_1..i_{n-2}), test = target i_n (history includes the valid item i_{n-1}; nothing is retrained on
  it). n = 3: 2 rows -> 1 train, 1 test, no valid row. n = 2: 1 row -> train only. n = 1: no row.
  (ml-100k has no user below 20 interactions.) Training rows per epoch on ml-100k:
  100,000 - 3 * 943 = 97,171, shuffled each epoch, batches of 256, last batch kept (drop_last=False).

Model/loss. model/sequential_recommender/sasrec.py SASRec: item + learned position embedding (positions
0..49 from the oldest item), LayerNorm, dropout, 2 post-LN transformer layers (model/layers.py: attention
mask = key is not padding AND causal (additive -10000), exact erf GELU), output = hidden state at
position item_length-1. calculate_loss (CE): logits = seq_output @ item_embedding.weight.T over all
1,683 rows, including padding row 0 (initialised N(0, 0.02) like every row; it receives gradient
through this product), nn.CrossEntropyLoss (mean over the batch). Adam lr 1e-3, no weight decay, no
gradient clipping.

Full-ranking evaluation for SASRec (data/dataloader/general_dataloader.py FullSortEvalDataLoader):
  `self.is_sequential = config["MODEL_TYPE"] == ModelType.SEQUENTIAL`; the history/positive-item
  tables are built only `if not self.is_sequential`, and collate_fn returns
  `return transformed_interaction, None, positive_u, positive_i` -- history_index is None.
  trainer/trainer.py Trainer._full_sort_batch_eval:
      `scores[:, 0] = -np.inf`
      `if history_index is not None: scores[history_index] = -np.inf`
  So the padding item 0 is excluded and items the user already interacted with are NOT masked: they
  are ranked like any other of the 1,682 items. One positive per row (the target), so Recall@K = Hit@K.
  evaluator/collector.py Collector.eval_batch_collect ranks with `torch.topk(scores, max(topk))` (ties
  in topk's order) and evaluator/metrics.py computes Recall/NDCG/MRR from that; metric names are
  lower-case "recall@10", "ndcg@10", "mrr@10"; values are rounded to metric_decimal_place = 4.
Early stopping (utils/utils.py early_stopping): after every epoch, valid NDCG@10 (rounded to 4 places)
  `if value >= best:` becomes the best (so a tie moves the best epoch later) and the checkpoint is
  saved; training stops when it has not improved for more than stopping_step epochs
  (`if cur_step > max_step`). Test = the best checkpoint (reloaded with torch.load) on the test rows.

Other settings: `repeatable: True` is RecBole's sequential default (properties/quick_start_config/
sequential.yaml; Config raises for sequential models without it); it only chooses the negative sampler,
and no sampler is used here. With pandas 3 (copy-on-write) Dataset._fill_nan's
`feat[field].fillna(..., inplace=True)` is a no-op (pandas warns ChainedAssignmentError); ml-100k.inter
has no missing field, so nothing changes.

Resuming: after every epoch the seed's state goes to OUT_work/seed<N>/resume.pth (model, Adam state,
epoch, early-stopping counter and best score, the best checkpoint's path, torch's global generator (the
dropout draws), numpy's and Python's generators, and the training loader's own torch.Generator (the
shuffle)). Running the same command again continues from the epoch after it, with the same numbers as
an uninterrupted run; a finished seed goes straight to its test evaluation. Another run's file (other
seed, epochs, patience, order, versions) is refused; --restart discards it.

Timing: wall time of each Trainer._train_epoch call (one pass over the 97,171 training rows) and each
Trainer._valid_epoch call (full ranking of the 943 validation rows and the metrics), measured by
wrapping those methods; RecBole's own logged times include the same work. OMP_WAIT_POLICY defaults to
PASSIVE (--omp-wait-policy): on a shared 2-core machine libgomp's default spin-waiting made a step ~6x
slower with 2 threads while another process was busy. Autograd anomaly detection, which importing
RecBole switches on globally (recbole/model/sequential_recommender/sine.py, module level:
`torch.autograd.set_detect_anomaly(True)`), is switched off again (--anomaly-detection keeps it): same
numbers, about half the backward time. The machine is shared; timings are noisy.
"""
import argparse
import hashlib
import json
import math
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

INSTALL_HELP = """\
recbole_sasrec: cannot import {what}: {err}

This script needs torch and RecBole 1.2.1 in the Python it runs under ({python}).
Install them in a venv, e.g.:
    python3 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch
    /tmp/torchenv/bin/pip install .cache/wheels/recbole-1.2.1-py3-none-any.whl   # tools/fetch-sample puts it there
(pip pulls RecBole's dependencies: pandas, scipy, tqdm, colorlog, colorama, tensorboard, texttable, psutil, ...)
then run tools/recbole-sasrec (it uses TORCH_PYTHON or --python, default /tmp/torchenv/bin/python, and installs
the cached wheel itself when recbole is missing)."""


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[2020],
                    help="one fresh RecBole run per seed (default 2020, RecBole's default seed)")
    ap.add_argument("--epochs", type=int, default=200, help="maximum epochs (RecBole `epochs`)")
    ap.add_argument("--patience", type=int, default=10, help="RecBole `stopping_step`")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads and OMP/MKL threads")
    ap.add_argument("--omp-wait-policy", default=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
                    help="OMP_WAIT_POLICY for torch's libgomp (default PASSIVE: on a shared 2-core machine the "
                         "default spin-waiting makes 2 threads ~6x slower than PASSIVE when another process is busy)")
    ap.add_argument("--eval-batch-size", type=int, default=2048)
    ap.add_argument("--restart", action="store_true",
                    help="discard OUT_work/seed<N>/resume.pth and start the seed again (default: continue it)")
    ap.add_argument("--stop-after-epochs", type=int, default=0, metavar="N",
                    help="end after epoch N as if killed (exit status 3), leaving resume.pth; for testing resume")
    ap.add_argument("--anomaly-detection", action="store_true",
                    help="keep torch autograd anomaly detection on, as importing RecBole leaves it (see the shims); "
                         "default off: same numbers, ~2x faster backward")
    ap.add_argument("--check-data", action="store_true",
                    help="only build RecBole's dataset and split, run the order check, print and exit")
    ap.add_argument("--order", choices=["exact", "recbole"], default="exact",
                    help="exact (default): RecBole reads a copy of its bundled ml-100k.inter whose timestamps are "
                         "replaced by their rank in the (timestamp, file line) order, so its split is Sheaf's "
                         "(dataset name ml-100k-exact); recbole: the bundled file as shipped, whose float32 "
                         "normalised timestamps reorder 83 users (see the docstring)")
    ap.add_argument("--out", default="results/recbole_sasrec", help="output prefix (.json/.md are appended)")
    ap.add_argument("--sheaf-inter", default=None,
                    help="Sheaf's copy of ml-100k.inter to compare with the bundled one "
                         "(default: data/ml-100k/ml-100k.inter here or in the main checkout)")
    return ap.parse_args()


ARGS = parse_args()
# recbole.config.Config also parses sys.argv ("--key=value" overrides any config entry); hide ours from it.
sys.argv = sys.argv[:1]

# Thread count for OpenMP / MKL must be in the environment before torch (and numpy) load their runtimes.
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)
# torch's CPU ops run on libgomp; with the default (spinning) wait policy its idle threads burn the core
# another process needs and get descheduled mid-region, which on this shared 2-core machine made a
# training step ~6x slower with 2 threads (1.8 s vs 0.27 s measured while a Swift build ran).
if ARGS.omp_wait_policy.lower() != "default":
    os.environ["OMP_WAIT_POLICY"] = ARGS.omp_wait_policy

# ---- compatibility shims: must run before `import recbole` ----------------------------------------
try:
    import numpy as np
except ImportError as e:  # pragma: no cover
    raise SystemExit(INSTALL_HELP.format(what="numpy", err=e, python=sys.executable))

SHIMS = []
# numpy 2 removed the aliases np.float_/np.complex_/np.unicode_ (NEP 52). RecBole 1.2.1's
# Config.compatibility_settings (config/configurator.py) runs `np.float = np.float_`,
# `np.complex = np.complex_`, `np.unicode = np.unicode_` while building every Config, which raises
# AttributeError on numpy 2 unless these exist.
for _name, _value in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
    if not hasattr(np, _name):
        setattr(np, _name, _value)
        SHIMS.append(f"np.{_name} = np.{_value.__name__} (removed in numpy 2; RecBole's Config.compatibility_settings reads it)")
# numpy >= 1.24 removed np.float/np.int/np.bool/np.object/np.str/np.complex/np.long; RecBole uses
# np.float in evaluator/metrics.py (NDCG, MRR), data/interaction.py and data/dataset/dataset.py.
# Config.compatibility_settings sets them too, but only once a Config exists; set them here with the
# same values so nothing depends on import order.
for _name, _value in (("float", np.float64), ("int", np.int_), ("complex", np.complex128),
                      ("object", np.object_), ("str", np.str_), ("unicode", np.str_)):
    with warnings.catch_warnings():  # numpy 2 warns (FutureWarning) when probing np.object / np.str
        warnings.simplefilter("ignore", FutureWarning)
        missing = not hasattr(np, _name)
    if missing:
        setattr(np, _name, _value)
        SHIMS.append(f"np.{_name} = np.{_value.__name__} (alias removed from numpy; RecBole uses it)")

try:
    import torch
except ImportError as e:
    raise SystemExit(INSTALL_HELP.format(what="torch", err=e, python=sys.executable))

# torch >= 2.6 made torch.load default to weights_only=True. RecBole's checkpoints are pickles of
# {"config": Config, ...}; Trainer.evaluate(load_best_model=True) loads them with plain
# `torch.load(checkpoint_file, map_location=self.device)` (trainer/trainer.py), which then fails with
# an UnpicklingError. The checkpoint is one this process just wrote, so loading it fully is safe.
_torch_load = torch.load


def _torch_load_full(*args, **kwargs):
    kwargs.setdefault("weights_only", False)
    return _torch_load(*args, **kwargs)


torch.load = _torch_load_full
SHIMS.append("torch.load defaults to weights_only=False (torch >= 2.6 defaults to True; RecBole reloads "
             "its own pickled checkpoint in Trainer.evaluate)")
torch.set_num_threads(ARGS.threads)

try:
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed
    import recbole.model.sequential_recommender  # noqa: F401  (what get_model("SASRec") imports; see below)
except Exception as e:  # ImportError, or an incompatibility raised while importing
    raise SystemExit(INSTALL_HELP.format(what="recbole", err=f"{type(e).__name__}: {e}", python=sys.executable))

# recbole/model/sequential_recommender/sine.py runs `torch.autograd.set_detect_anomaly(True)` at module
# level, and the package __init__ imports every sequential model, so any RecBole sequential run trains
# with autograd anomaly detection on (a NaN check on every backward output plus a stack trace stored for
# every forward op). It does not change a single number, only time: about 2x on SASRec's backward here.
# Turned off unless --anomaly-detection; the JSON records which.
ANOMALY_AS_IMPORTED = torch.is_anomaly_enabled()
if not ARGS.anomaly_detection:
    torch.autograd.set_detect_anomaly(False)
    if ANOMALY_AS_IMPORTED:
        SHIMS.append("torch.autograd.set_detect_anomaly(False) (recbole/model/sequential_recommender/sine.py "
                     "turns it on globally at import; --anomaly-detection keeps it)")

METRICS = ["recall@10", "recall@50", "recall@200", "ndcg@10", "ndcg@50", "ndcg@200", "mrr@10"]


def recbole_config(seed, work):
    """Every setting that matters, spelled out (values equal RecBole's SASRec/ml-100k defaults unless noted)."""
    return {
        # data
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "rm_dup_inter": None, "val_interval": None, "filter_inter_by_user_or_item": True,
        "user_inter_num_interval": None, "item_inter_num_interval": None,
        "normalize_all": True,  # ml-100k.yaml default: timestamps become float32 in [0, 1] (see docstring)
        "MAX_ITEM_LIST_LENGTH": 50,
        # split and evaluation
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "repeatable": True,  # properties/quick_start_config/sequential.yaml; Config refuses False for sequential models
        "metrics": ["Recall", "NDCG", "MRR"],
        "topk": [10, 50, 200],
        "valid_metric": "NDCG@10", "valid_metric_bigger": True,
        "metric_decimal_place": 4,  # RecBole default; early stopping compares these rounded values
        "eval_step": 1,
        # model (properties/model/SASRec.yaml)
        "n_layers": 2, "n_heads": 2, "hidden_size": 64, "inner_size": 256,
        "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5, "hidden_act": "gelu",
        "layer_norm_eps": 1e-12, "initializer_range": 0.02, "loss_type": "CE",
        # training
        "train_neg_sample_args": None,  # CE over all items: no negative sampling
        "train_batch_size": 256, "eval_batch_size": ARGS.eval_batch_size,
        "learner": "adam", "learning_rate": 1e-3, "weight_decay": 0.0, "clip_grad_norm": None,
        "epochs": ARGS.epochs, "stopping_step": ARGS.patience, "shuffle": True,
        "enable_amp": False, "enable_scaler": False,
        # environment
        "seed": seed, "reproducibility": True,
        "use_gpu": False, "gpu_id": "", "device": "cpu",  # Config._init_device turns gpu_id "" into torch.device("cpu")
        "worker": 0, "show_progress": False, "state": "INFO",
        "checkpoint_dir": os.path.join(work, "saved"),
        "save_dataset": False, "save_dataloaders": False, "log_wandb": False,
    }


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sheaf_inter_candidates():
    if ARGS.sheaf_inter:
        return [os.path.abspath(ARGS.sheaf_inter)]
    out = [os.path.join(ROOT, "data/ml-100k/ml-100k.inter")]
    try:  # a git worktree: data/ is gitignored and lives in the main checkout
        common = subprocess.run(["git", "-C", ROOT, "rev-parse", "--path-format=absolute", "--git-common-dir"],
                                capture_output=True, text=True, check=True).stdout.strip()
        out.append(os.path.join(os.path.dirname(common), "data/ml-100k/ml-100k.inter"))
    except Exception:
        pass
    return out


def data_check():
    bundled = os.path.join(os.path.dirname(recbole.__file__), "dataset_example/ml-100k/ml-100k.inter")
    info = {"bundled_inter": bundled, "bundled_sha256": sha256(bundled)}
    for cand in sheaf_inter_candidates():
        if os.path.exists(cand):
            info["sheaf_inter"] = cand
            info["sheaf_sha256"] = sha256(cand)
            info["identical"] = info["sheaf_sha256"] == info["bundled_sha256"]
            break
    else:
        info["sheaf_inter"] = None
        info["identical"] = None
    return info


def environment():
    cfg = torch.__config__.show()
    m = re.search(r"BLAS_INFO=([^,\s]+)", cfg)
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import pandas
        pandas_version = pandas.__version__
    except Exception:
        pandas_version = "?"
    return {
        "torch": torch.__version__, "recbole": recbole.__version__, "numpy": np.__version__,
        "pandas": pandas_version, "python": platform.python_version(),
        "torch_blas": m.group(1) if m else "?",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_model": cpu, "logical_cpus": os.cpu_count(),
        "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(libgomp default)"),
        "anomaly_detection_after_importing_recbole": ANOMALY_AS_IMPORTED,
        "anomaly_detection": torch.is_anomaly_enabled(),
        "shims": SHIMS,
    }


def reference_sequences(inter_path):
    """Per user token, two orders of its (item, timestamp, file line) rows:
    exact    -- by (integer timestamp, file line): the true chronological order, ties in file order;
    emulated -- by (float32((t - min) / (max - min)), file line): what RecBole's stable sorts should give."""
    rows = {}
    with open(inter_path) as f:
        header = f.readline().rstrip("\n").split("\t")
        iu, ii, it = (header.index(c) for c in ("user_id:token", "item_id:token", "timestamp:float"))
        for line_no, line in enumerate(f):
            p = line.rstrip("\n").split("\t")  # every field present: no NaN for Dataset._fill_nan to touch
            rows.setdefault(p[iu], []).append((int(p[it]), line_no, p[ii]))
    lo = min(r[0] for s in rows.values() for r in s)
    hi = max(r[0] for s in rows.values() for r in s)
    exact, emulated = {}, {}
    for u, s in rows.items():
        f32 = (np.array([r[0] for r in s], dtype=np.float64) - lo) / (hi - lo)
        f32 = f32.astype(np.float32)
        exact[u] = sorted(s)
        emulated[u] = [r for _, r in sorted(zip(f32.tolist(), s), key=lambda z: (z[0], z[1][1]))]
    return exact, emulated


def order_check(dataset, train_ds, valid_ds, test_ds, inter_path):
    """Rebuild each user's full sequence from RecBole's split rows and compare it with both reference orders."""
    uid, iid = dataset.uid_field, dataset.iid_field
    lst, ln = iid + dataset.config["LIST_SUFFIX"], dataset.item_list_length_field
    u_tok = dataset.field2id_token[uid]
    i_tok = dataset.field2id_token[iid]
    got = {}
    for part, ds in (("train", train_ds), ("valid", valid_ds), ("test", test_ds)):
        feat = ds.inter_feat
        users = feat[uid].numpy()
        targets = feat[iid].numpy()
        lengths = feat[ln].numpy()
        firsts = feat[lst][:, 0].numpy()
        for u, t, n, first in zip(users, targets, lengths, firsts):
            seq = got.setdefault(u, [])
            if not seq:
                assert part == "train" and n == 1, "first row of a user must be a training row with history 1"
                seq.append(first)
            seq.append(t)
    exact, emulated = reference_sequences(inter_path)
    ties = sum(1 for s in exact.values() for a, b in zip(s, s[1:]) if a[0] == b[0])
    differ_exact, differ_emulated, valid_differs, test_differs = [], [], 0, 0
    for u, seq in got.items():
        mine = [i_tok[i] for i in seq]
        want = [x[2] for x in exact[u_tok[u]]]
        if mine != want:
            differ_exact.append(u_tok[u])
            valid_differs += mine[-2] != want[-2]
            test_differs += mine[-1] != want[-1]
        if mine != [x[2] for x in emulated[u_tok[u]]]:
            differ_emulated.append(u_tok[u])
    merged = 0
    for u, s in exact.items():
        em = {r[1]: i for i, r in enumerate(emulated[u])}
        merged += sum(1 for a, b in zip(s, s[1:]) if a[0] != b[0] and em[a[1]] > em[b[1]])
    return {
        "users_checked": len(got),
        "users_in_file": len(exact),
        "users_differing_from_exact_order": len(differ_exact),
        "example_users_differing_from_exact_order": differ_exact[:10],
        "users_whose_valid_target_differs_from_exact_order": valid_differs,
        "users_whose_test_target_differs_from_exact_order": test_differs,
        "users_differing_from_float32_normalised_stable_order": len(differ_emulated),
        "same_user_equal_timestamp_adjacent_pairs": ties,
        "same_user_timestamp_pairs_reversed_by_float32_normalisation": merged,
    }


def summarise(values):
    if not values:
        return None, None
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    return mean, std


def run_seed(seed, out_prefix, report):
    work = os.path.abspath(f"{out_prefix}_work/seed{seed}")
    os.makedirs(work, exist_ok=True)
    here = os.getcwd()
    os.chdir(work)  # RecBole writes ./log/ and ./log_tensorboard/ relative to the working directory
    try:
        return _run_seed(seed, work, report)
    finally:
        os.chdir(here)


def exact_order_copy(bundled, out_dir):
    """A copy of the bundled ml-100k.inter whose timestamp column holds each row's rank in the
    (integer timestamp, file line) order: the same order as Sheaf's store (equal timestamps keep file
    order), and values 0…99,999 stay distinct after RecBole's float32 normalisation."""
    name = "ml-100k-exact"
    path = os.path.join(out_dir, name, name + ".inter")
    with open(bundled, encoding="utf-8") as f:
        header, *lines = f.read().splitlines()
    cols = header.split("\t")
    t = next(i for i, c in enumerate(cols) if c.startswith("timestamp"))
    rows = [line.split("\t") for line in lines if line]
    order = sorted(range(len(rows)), key=lambda i: (float(rows[i][t]), i))
    for rank, i in enumerate(order):
        rows[i][t] = str(rank)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(header + "\n" + "".join("\t".join(r) + "\n" for r in rows))
    os.replace(path + ".tmp", path)
    return name, out_dir


class StopAfter(Exception):
    """--stop-after-epochs: end the run as if it were killed after an epoch (tests resuming)."""


def resume_key(seed):
    """What must match for a resume file to continue this run."""
    return {"seed": seed, "epochs": ARGS.epochs, "patience": ARGS.patience, "order": ARGS.order,
            "eval_batch_size": ARGS.eval_batch_size, "recbole": recbole.__version__, "torch": torch.__version__}


def _run_seed(seed, work, report):
    t_start = time.perf_counter()
    cfg = recbole_config(seed, work)
    dataset_name = "ml-100k"
    if ARGS.order == "exact":
        dataset_name, cfg["data_path"] = exact_order_copy(report["data"]["bundled_inter"], os.path.join(work, "data"))
    config = Config(model="SASRec", dataset=dataset_name, config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    t0 = time.perf_counter()
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    data_s = time.perf_counter() - t0
    train_ds, valid_ds, test_ds = train_data._dataset, valid_data._dataset, test_data._dataset
    stats = {
        "users": dataset.user_num - 1, "items": dataset.item_num - 1,
        "user_num_incl_padding": dataset.user_num, "item_num_incl_padding": dataset.item_num,
        "interactions": len(train_ds) + len(valid_ds) + len(test_ds) + (dataset.user_num - 1),
        "train_rows": len(train_ds), "valid_rows": len(valid_ds), "test_rows": len(test_ds),
        "train_batches_per_epoch": len(train_data),
        "data_prep_seconds": data_s,
    }
    stats["order_check"] = order_check(dataset, train_ds, valid_ds, test_ds, report["data"]["bundled_inter"])
    print(f"[seed {seed}] data: {stats['users']} users, {stats['items']} items (+1 padding = "
          f"{stats['item_num_incl_padding']}), {stats['interactions']} interactions; rows train/valid/test "
          f"{stats['train_rows']}/{stats['valid_rows']}/{stats['test_rows']}, "
          f"{stats['train_batches_per_epoch']} batches/epoch; prepared in {data_s:.1f}s", flush=True)
    oc = stats["order_check"]
    print(f"[seed {seed}] order check: {oc['users_differing_from_exact_order']} of {oc['users_checked']} users' "
          f"sequences differ from the exact (integer timestamp, file line) order (valid target differs for "
          f"{oc['users_whose_valid_target_differs_from_exact_order']}, test target for "
          f"{oc['users_whose_test_target_differs_from_exact_order']}); "
          f"{oc['users_differing_from_float32_normalised_stable_order']} differ from the (float32 normalised "
          f"timestamp, file line) order; the file has {oc['same_user_equal_timestamp_adjacent_pairs']} same-user "
          f"equal-timestamp neighbours", flush=True)

    if ARGS.check_data:
        run = {"seed": seed, "dataset": stats, "epochs": [], "complete": False, "check_data_only": True}
        report["runs"].append(run)
        return run
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_ds).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    run = {"seed": seed, "work_dir": work, "dataset": stats, "epochs": [], "complete": False, "resumed_at": []}
    report["runs"].append(run)
    resume_path = os.path.join(work, "resume.pth")
    key = resume_key(seed)
    stopped = False
    if os.path.exists(resume_path) and not ARGS.restart:
        state = torch.load(resume_path, map_location="cpu", weights_only=False)
        if state["key"] != key:
            raise SystemExit(f"{resume_path} belongs to another run ({state['key']}, this one is {key}); "
                             "pass --restart to discard it")
        model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.start_epoch = state["epoch_idx"] + 1
        trainer.cur_step = state["cur_step"]
        trainer.best_valid_score = state["best_valid_score"]
        trainer.best_valid_result = state["best_valid_result"]
        trainer.saved_model_file = state["best_checkpoint"]
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        train_data.generator.set_state(state["loader_rng"])
        run["epochs"] = state["epochs"]
        run["resumed_at"] = state["resumed_at"] + [state["epoch_idx"] + 1]
        stopped = state["stopped"]
        print(f"[seed {seed}] resumed after epoch {state['epoch_idx'] + 1} from {resume_path}"
              + (" (training had already stopped early)" if stopped else ""), flush=True)
    pending = {}
    orig_train, orig_valid, orig_save = trainer._train_epoch, trainer._valid_epoch, trainer._save_checkpoint

    def train_epoch(train_data, epoch_idx, *a, **k):
        t = time.perf_counter()
        loss = orig_train(train_data, epoch_idx, *a, **k)
        dt = time.perf_counter() - t
        total = float(sum(loss) if isinstance(loss, tuple) else loss)
        pending.clear()
        pending.update({"epoch": epoch_idx + 1, "recbole_epoch_idx": epoch_idx, "train_seconds": dt,
                        "loss_sum_over_batches": total, "loss_mean_per_batch": total / len(train_data)})
        return loss

    def valid_epoch(valid_data, *a, **k):
        t = time.perf_counter()
        score, result = orig_valid(valid_data, *a, **k)
        dt = time.perf_counter() - t
        row = dict(pending, valid_seconds=dt, valid_score=float(score),
                   valid={m: float(result[m]) for m in METRICS}, saved_as_best=False)
        run["epochs"].append(row)
        print(f"[seed {seed}] epoch {row['epoch']:3d}  train {row['train_seconds']:7.2f}s  "
              f"loss {row['loss_mean_per_batch']:.4f}  valid eval {dt:6.2f}s  "
              f"valid NDCG@10 {result['ndcg@10']:.4f}  Recall@10 {result['recall@10']:.4f}", flush=True)
        return score, result

    def save_checkpoint(epoch, *a, **k):
        orig_save(epoch, *a, **k)
        if run["epochs"] and run["epochs"][-1]["recbole_epoch_idx"] == epoch:
            run["epochs"][-1]["saved_as_best"] = True
        write_outputs(report)  # progress survives an interrupted run

    trainer._train_epoch, trainer._valid_epoch, trainer._save_checkpoint = train_epoch, valid_epoch, save_checkpoint

    def end_of_epoch(epoch_idx, valid_score):
        # Called by Trainer.fit after early_stopping() has updated cur_step and the best checkpoint is
        # saved: everything the next epoch depends on, so a resumed run continues the same run exactly
        # (dropout draws come from torch's global generator, the shuffle from the loader's own).
        state = {
            "key": key, "epoch_idx": epoch_idx, "cur_step": trainer.cur_step,
            "stopped": trainer.cur_step > trainer.stopping_step or epoch_idx + 1 >= trainer.epochs,
            "best_valid_score": trainer.best_valid_score, "best_valid_result": trainer.best_valid_result,
            "best_checkpoint": trainer.saved_model_file,
            "model": model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(), "loader_rng": train_data.generator.get_state(),
            "epochs": run["epochs"], "resumed_at": run["resumed_at"],
        }
        torch.save(state, resume_path + ".tmp")
        os.replace(resume_path + ".tmp", resume_path)
        write_outputs(report)
        if ARGS.stop_after_epochs and epoch_idx + 1 >= ARGS.stop_after_epochs and not state["stopped"]:
            raise StopAfter(epoch_idx + 1)

    run["anomaly_detection"] = torch.is_anomaly_enabled()
    if stopped:
        best_score, best_valid = trainer.best_valid_score, trainer.best_valid_result
    else:
        best_score, best_valid = trainer.fit(train_data, valid_data, saved=True, show_progress=False,
                                             callback_fn=end_of_epoch)
    t = time.perf_counter()
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    test_s = time.perf_counter() - t
    best = [e for e in run["epochs"] if e["saved_as_best"]][-1]
    run.update({
        "best_epoch": best["epoch"], "epochs_run": len(run["epochs"]),
        "best_valid_score": float(best_score),
        "best_valid": {m: float(best_valid[m]) for m in METRICS},
        "test": {m: float(test[m]) for m in METRICS},
        "test_seconds": test_s,
        "median_train_seconds": statistics.median(e["train_seconds"] for e in run["epochs"]),
        "median_valid_seconds": statistics.median(e["valid_seconds"] for e in run["epochs"]),
        "wall_seconds": time.perf_counter() - t_start,
        "complete": True,
    })
    print(f"[seed {seed}] best epoch {run['best_epoch']} of {run['epochs_run']} (by valid NDCG@10); valid "
          + "  ".join(f"{m} {run['best_valid'][m]:.4f}" for m in METRICS), flush=True)
    print(f"[seed {seed}] test (best checkpoint) "
          + "  ".join(f"{m} {run['test'][m]:.4f}" for m in METRICS)
          + f"; median train {run['median_train_seconds']:.2f}s/epoch, median valid eval "
          f"{run['median_valid_seconds']:.2f}s, wall {run['wall_seconds']:.1f}s", flush=True)
    return run


def fmt(x, nd=4):
    return "-" if x is None else f"{x:.{nd}f}"


def markdown(report):
    env, data = report["environment"], report["data"]
    done = [r for r in report["runs"] if r.get("complete")]
    lines = [
        "# RecBole 1.2.1 SASRec on its bundled MovieLens-100K",
        "",
        f"Protocol: leave-one-out by user on time-ordered rows (valid = second-to-last, test = last item), "
        f"full ranking over all {done[0]['dataset']['items'] if done else '?'} items (padding excluded, already-seen items "
        f"NOT masked), CE loss, max length 50, 2 layers x 2 heads, d=64, ffn 256, dropout 0.5, Adam 1e-3, batch 256, "
        f"early stopping on valid NDCG@10 with patience {report['args']['patience']} (max {report['args']['epochs']} epochs); "
        f"test metrics of the best-validation checkpoint.",
        "",
        f"Environment: torch {env['torch']} (BLAS {env['torch_blas']}, {env['cpu_capability']}), recbole {env['recbole']}, "
        f"numpy {env['numpy']}, pandas {env['pandas']}; {env['cpu_model']}, {env['threads']} threads, "
        f"OMP_WAIT_POLICY {env['omp_wait_policy']}, autograd anomaly detection "
        f"{'on' if env['anomaly_detection'] else 'off'} "
        f"({env['logical_cpus']} logical CPUs; shared machine, timings noisy).",
        f"Data: {data['bundled_inter']} sha256 {data['bundled_sha256'][:16]}...; "
        + ("identical to Sheaf's " + data["sheaf_inter"] if data.get("identical")
           else ("DIFFERS from Sheaf's " + data["sheaf_inter"] if data.get("sheaf_inter") else "Sheaf's copy not found")) + ".",
        "",
        "| seed | best epoch | epochs run | test Recall@10 | NDCG@10 | MRR@10 | Recall@50 | NDCG@50 | Recall@200 | NDCG@200 "
        "| train s/epoch (median) | valid eval s (median) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["runs"]:
        if r.get("complete"):
            t = r["test"]
            lines.append(f"| {r['seed']} | {r['best_epoch']} | {r['epochs_run']} | {fmt(t['recall@10'])} | {fmt(t['ndcg@10'])} "
                         f"| {fmt(t['mrr@10'])} | {fmt(t['recall@50'])} | {fmt(t['ndcg@50'])} | {fmt(t['recall@200'])} "
                         f"| {fmt(t['ndcg@200'])} | {fmt(r['median_train_seconds'], 2)} | {fmt(r['median_valid_seconds'], 2)} |")
        else:
            ep = r["epochs"]
            lines.append(f"| {r['seed']} | (running: {len(ep)} epochs so far) | | | | | | | | | "
                         f"{fmt(statistics.median(e['train_seconds'] for e in ep), 2) if ep else '-'} "
                         f"| {fmt(statistics.median(e['valid_seconds'] for e in ep), 2) if ep else '-'} |")
    if done:
        agg = report.get("aggregate") or aggregate(done)
        def ms(key, nd=4):
            m, s = agg[key]["mean"], agg[key]["std"]
            return fmt(m, nd) + ("" if s is None else " ± " + fmt(s, nd))
        lines.append(f"| mean ± std (n={len(done)}) | {ms('best_epoch', 1)} | | {ms('recall@10')} | {ms('ndcg@10')} "
                     f"| {ms('mrr@10')} | {ms('recall@50')} | {ms('ndcg@50')} | {ms('recall@200')} | {ms('ndcg@200')} "
                     f"| {ms('median_train_seconds', 2)} | {ms('median_valid_seconds', 2)} |")
    lines.append("")
    lines.append("std is the sample standard deviation (ddof=1; blank for one seed). Metrics are RecBole's, rounded to 4 places.")
    return "\n".join(lines) + "\n"


def aggregate(done):
    agg = {}
    for m in METRICS:
        mean, std = summarise([r["test"][m] for r in done])
        agg[m] = {"mean": mean, "std": std}
    for k in ("best_epoch", "median_train_seconds", "median_valid_seconds", "wall_seconds"):
        mean, std = summarise([float(r[k]) for r in done])
        agg[k] = {"mean": mean, "std": std}
    return agg


def write_outputs(report):
    out = report["out"]
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".json.tmp", "w") as f:
        json.dump(report, f, indent=1, default=str)
    os.replace(out + ".json.tmp", out + ".json")
    with open(out + ".md", "w") as f:
        f.write(markdown(report))


def main():
    t0 = time.perf_counter()
    out = os.path.abspath(ARGS.out)
    if recbole.__version__ != "1.2.1":
        print(f"warning: recbole {recbole.__version__} installed; this script documents 1.2.1", file=sys.stderr)
    report = {
        "what": "RecBole SASRec on RecBole's bundled ml-100k (peer baseline for Sheaf's SASRec)",
        "out": out, "args": vars(ARGS), "complete": False,
        "environment": environment(), "data": data_check(),
        "config": {k: v for k, v in recbole_config(ARGS.seeds[0], "<out>_work/seed<N>").items() if k != "seed"},
        "runs": [],
    }
    env, data = report["environment"], report["data"]
    print(f"torch {env['torch']} (BLAS {env['torch_blas']}, {env['cpu_capability']}), recbole {env['recbole']}, "
          f"numpy {env['numpy']}, pandas {env['pandas']}; {env['cpu_model']}; {env['threads']} threads, "
          f"OMP_WAIT_POLICY {env['omp_wait_policy']}, autograd anomaly detection "
          f"{'on' if env['anomaly_detection'] else 'off'}", flush=True)
    for s in SHIMS:
        print(f"shim: {s}", flush=True)
    if data.get("sheaf_inter"):
        print(f"data: {data['bundled_inter']} vs {data['sheaf_inter']}: sha256 "
              f"{'identical' if data['identical'] else 'DIFFERENT'} ({data['bundled_sha256']})", flush=True)
    else:
        print(f"data: {data['bundled_inter']} sha256 {data['bundled_sha256']} (Sheaf's copy not found)", flush=True)
    if ARGS.check_data:
        run_seed(ARGS.seeds[0], out + "_check", report)
        print(json.dumps(report["runs"][0]["dataset"], indent=1))
        return
    for seed in ARGS.seeds:
        try:
            run_seed(seed, out, report)
        except StopAfter as e:
            write_outputs(report)
            print(f"[seed {seed}] stopped after epoch {e.args[0]} (--stop-after-epochs); run again to resume",
                  flush=True)
            sys.exit(3)
        write_outputs(report)
    report["aggregate"] = aggregate([r for r in report["runs"] if r.get("complete")])
    report["wall_seconds"] = time.perf_counter() - t0
    report["complete"] = True
    write_outputs(report)
    print()
    print(markdown(report), end="")
    print(f"\ntotal wall time {report['wall_seconds']:.1f}s; wrote {out}.json and {out}.md")


if __name__ == "__main__":
    main()
