"""Records of finished quality runs, kept in git under tools/records/ so that a study longer than one
machine's life can be reported whole.

A run directory under results/ does not outlive its machine here, and HyMiRec's study (tools/hymirec-compare)
takes more machine-hours than one session has. So when the driver sees a finished run it writes a small
record of it (its test and validation metrics, best epoch, seconds per epoch, the machine and the
binary, and `sheaf evaluate --json`'s output), and when a run directory is missing it reads the run's
record instead of training it again. A record is a measurement: it is never edited, only replaced by
the same run's own directory on the same OpenBLAS core.

tools/records/<kind>/<run>@<seed>-<core>.json, one per run, seed and OpenBLAS core (the same seed on two
machines whose BLAS kernels differ is two different runs: both are kept, and the reports say which
they use). Fields:
  run, seed          the run's key (its directory name without -e200-p10-seedS) and seed
  recorded           ISO time the run finished (or, for "README" records, an upper bound)
  source             where the numbers come from: the run's own file (results/.../metrics.json or a
                     report), or "README ..." (a run whose directory was lost before records existed:
                     only the numbers the README kept)
  best_epoch, epochs, test, validation, median_train_seconds, median_valid_seconds (when known)
  machine            the run's metrics.json "machine" (cpu, blasCore, ...)
  binaries           the sheaf binaries that trained it
  evaluate           `sheaf evaluate --json` of the finished model (HyMiRec only; may be absent)
"""
import datetime
import glob
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS = os.path.join(ROOT, "tools", "records")


def core(run):
    """The OpenBLAS core a run trained on ("unknown" when its machine was not recorded)."""
    return (run.get("machine") or {}).get("blasCore") or "unknown"


def path(kind, name, seed, blas_core):
    return os.path.join(RECORDS, kind, f"{name}@{seed}-{blas_core}.json")


def load(kind, name, seed):
    """The recorded runs of `name` on `seed`, oldest first, each marked with "record": its path."""
    out = []
    for p in sorted(glob.glob(os.path.join(RECORDS, kind, f"{glob.escape(name)}@{seed}-*.json"))):
        with open(p) as f:
            r = json.load(f)
        if r.get("run") != name or r.get("seed") != seed:  # a longer name sharing this one's prefix
            continue
        r["record"] = os.path.relpath(p, ROOT)
        r.setdefault("dir", None)
        out.append(r)
    return sorted(out, key=lambda r: r["recorded"])


FIELDS = ("seed", "best_epoch", "epochs", "test", "validation", "median_train_seconds", "median_valid_seconds",
          "machine", "binaries")


def finished_file(run):
    """The file that says a local run finished: run["finished"] (a report file), else its directory's
    metrics.json."""
    return run.get("finished") or os.path.join(run["dir"], "metrics.json")


def finished_at(run):
    """When a local run finished: its finished_file's modification time, ISO, UTC."""
    t = os.path.getmtime(finished_file(run))
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write(kind, name, run, evaluate=None):
    """Records a finished local run (see finished_file). Returns the record's path, or None when nothing
    changed."""
    p = path(kind, name, run["seed"], core(run))
    rec = dict(run=name, recorded=finished_at(run), source=os.path.relpath(finished_file(run), ROOT),
               **{k: run.get(k) for k in FIELDS})
    if evaluate is not None:
        rec["evaluate"] = evaluate
    old = None
    if os.path.exists(p):
        with open(p) as f:
            old = json.load(f)
        if "evaluate" in old and evaluate is None:
            rec["evaluate"] = old["evaluate"]
        rec["recorded"] = old["recorded"]  # the same run (or its rerun on the same core) keeps its place
    if old == rec:
        return None
    os.makedirs(os.path.dirname(p), exist_ok=True)
    tmp = p + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rec, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, p)
    return p


def merged(kind, name, seed, local):
    """A run's versions: the recorded ones, with the local run directory's (when finished) in place of the
    record of its own core; oldest first."""
    rs = [r for r in load(kind, name, seed) if local is None or core(r) != core(local)]
    if local is not None:
        local = dict(local, recorded=finished_at(local))
        # A local run that was recorded earlier keeps its record's time (the same run).
        same = [r for r in load(kind, name, seed) if core(r) == core(local)]
        if same:
            local["recorded"] = same[0]["recorded"]
        rs.append(local)
    return sorted(rs, key=lambda r: r["recorded"])


def first_per_seed(runs):
    """One run per seed, the first that finished (the study's runs are compared on the first run of a seed;
    a later run of the same seed on another machine only serves as that machine's reference)."""
    out = {}
    for r in sorted(runs, key=lambda r: r["recorded"]):
        out.setdefault(r["seed"], r)
    return [out[s] for s in sorted(out)]
