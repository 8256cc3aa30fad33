#!/usr/bin/env python3
"""Builds one Sheaf store per shard of a behaviour log, on Spark.

    tools/spark-shards --input LOG.csv --base-store BASE --shards 8 --output DIR [--master local[2]]

What it does:
  1. Reads the log (CSV/TSV with a header, or Parquet) with Spark, and computes each row's shard with
     the hash `sheaf behaviors load --shard k/n` uses (SplitMix64's finaliser of the user id, mod n;
     README "Shards"), as Spark column arithmetic (`shard_column`; `sheaf shard` prints the same).
  2. Writes shard k's rows to DIR/.staging/shard=k (Spark's partitioned writer: the rows stay in the
     JVM), then runs one task per shard, which copies BASE (the codebook and item codes, trained
     once: no histories) to DIR/shard-k-of-n.partial, loads its rows with `sheaf behaviors load
     --shard k/n` (which also drops, and counts, any row of another shard: a check that Spark and
     sheaf agree), and renames the store to DIR/shard-k-of-n.
  3. Checks that the shards together hold every behaviour exactly once: each shard store's users and
     behaviours equal the distinct (user, item, timestamp) rows of its shard in the log, and sheaf
     found no row of another shard. Writes DIR/shards.json (the manifest) and exits
     with status 1 when any check fails or a task's load failed (with sheaf's message).

Re-running is resuming: loads are idempotent per (user, timestamp, item), so a shard that exists (or
a .partial one from a killed run) is loaded again and gains only what it lacks.

On a cluster, BASE, DIR (with its .staging) and the sheaf binary must be at the same path on every
executor (a shared filesystem such as NFS), and --master names the cluster (README, "Building shards on Spark").

Needs Java 17+ and pyspark (tools/python-env --spark installs the pinned pyspark into tools/.venv).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

MASK64 = (1 << 64) - 1
M1 = 0xBF58476D1CE4E5B9
M2 = 0x94D049BB133111EB


def shard_of(user: int, count: int) -> int:
    """The reference hash in Python integers (for tests and small tools)."""
    z = user & MASK64
    z = ((z ^ (z >> 30)) * M1) & MASK64
    z = ((z ^ (z >> 27)) * M2) & MASK64
    z ^= z >> 31
    return z % count


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def shard_column(user, count: int):
    """shard_of as a Spark column expression over `user`, a LongType column holding the id's 64 bits
    (ids ≥ 2^63 as negative longs). Needs spark.sql.ansi.enabled=false, so that long multiplication
    wraps mod 2^64 as the hash wants (the session made here sets it)."""
    from pyspark.sql import functions as F

    z = user
    z = z.bitwiseXOR(F.shiftrightunsigned(z, 30)) * F.lit(_signed(M1))
    z = z.bitwiseXOR(F.shiftrightunsigned(z, 27)) * F.lit(_signed(M2))
    z = z.bitwiseXOR(F.shiftrightunsigned(z, 31))
    # z mod n with z read as unsigned: z = 2·(z >>> 1) + (z & 1).
    half = F.shiftrightunsigned(z, 1)
    return ((half % F.lit(count)) * 2 + z.bitwiseAND(F.lit(1))) % F.lit(count)


def user_columns(column, integer_typed: bool = False):
    """(the id as an unsigned decimal string, the id's 64 bits as a long) from a user column: strings
    of 0 … 2^64 − 1 (as `sheaf behaviors load` reads them), or, when `integer_typed` (a Parquet
    integer column), its 64 bits (a negative long is an id ≥ 2^63, as writers store unsigned ids).
    Null where the value is not such an id."""
    from pyspark.sql import functions as F

    d = column.cast("string").cast("decimal(21,0)")
    two64 = F.expr("CAST('18446744073709551616' AS DECIMAL(21,0))")
    two63 = F.expr("CAST('9223372036854775808' AS DECIMAL(21,0))")
    unsigned = F.when(d < 0, d + two64).otherwise(d) if integer_typed else d
    pattern = r"^\s*-?[0-9]+\s*$" if integer_typed else r"^\s*[0-9]+\s*$"
    valid = (unsigned >= 0) & (unsigned < two64) & column.cast("string").rlike(pattern)
    text = F.when(valid, unsigned.cast("string"))
    bits = F.when(valid, F.when(unsigned >= two63, unsigned - two64).otherwise(unsigned).cast("long"))
    return text, bits


def spark_session(master: str, app: str = "sheaf-shards"):
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app).config("spark.ui.enabled", "false").config("spark.sql.ansi.enabled", "false").config("spark.ui.showConsoleProgress", "false")
    if master:
        builder = builder.master(master)
    if master and master.startswith("local"):
        # Spark's default of 200 shuffle partitions is for clusters; a few per core suit one machine.
        builder = builder.config("spark.sql.shuffle.partitions", str(4 * (os.cpu_count() or 2)))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def sheaf_json(sheaf: str, args):
    r = subprocess.run([sheaf, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"sheaf {' '.join(args)}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def build_shard(index, *, count, staging, output, base, sheaf, header, chunk_size):
    """Task body: loads shard `index`'s rows (the files Spark wrote under staging/shard=index) into
    its store."""
    started = time.time()
    name = f"shard-{index:05d}-of-{count:05d}"
    final = os.path.join(output, name)
    partial = final + ".partial"
    result = {"shard": index, "store": final, "error": None}
    scratch = tempfile.mkdtemp(prefix=f"sheaf-{name}-")
    try:
        csv = os.path.join(scratch, "behaviours.csv")
        rows = 0
        part_dir = os.path.join(staging, f"shard={index}")
        parts = sorted(os.listdir(part_dir)) if os.path.isdir(part_dir) else []
        with open(csv, "wb") as f:
            f.write((header + "\n").encode())
            for part in parts:
                if part.startswith(("part-")):
                    with open(os.path.join(part_dir, part), "rb") as src:
                        for line in src:
                            f.write(line)
                            rows += 1
        result["rows"] = rows
        result["seconds_gather"] = time.time() - started
        # The store: an existing one is loaded again (idempotent); a new one starts as a copy of base.
        target = final if os.path.isdir(final) else partial
        if not os.path.isdir(target):
            os.makedirs(target)
            shutil.copyfile(os.path.join(base, "data.mdb"), os.path.join(target, "data.mdb"))
        load_started = time.time()
        r = subprocess.run(
            [sheaf, "behaviors", "load", target, "--input", csv, "--format", "csv", "--shard", f"{index}/{count}",
             "--chunk-size", str(chunk_size), "--quiet"],
            capture_output=True, text=True)
        result["seconds_load"] = time.time() - load_started
        if r.returncode != 0:
            result["error"] = r.stderr.strip() or f"sheaf exited with status {r.returncode}"
            return result
        m = re.search(r"shard \d+/\d+: ([\d,]+) kept, ([\d,]+) in other shards", r.stdout)
        a = re.search(r"appended ([\d,]+) behaviours for ([\d,]+) users", r.stdout)
        if not m or not a:
            result["error"] = f"cannot read sheaf's summary: {r.stdout.strip()}"
            return result
        result["kept"], result["other_shards"] = _number(m.group(1)), _number(m.group(2))
        result["appended"] = _number(a.group(1))
        if target == partial:
            os.rename(partial, final)
        stats = sheaf_json(sheaf, ["stats", final, "--json"])["statistics"]
        result["users"] = stats["users"]
        result["behaviours"] = stats["behaviors"]
        result["seconds"] = time.time() - started
    except Exception as e:  # reported by the driver with the shard's name
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def read_log(spark, path: str, fmt: str, columns):
    if fmt == "parquet":
        return spark.read.parquet(path)
    sep = "\t" if fmt == "tsv" else ","
    return spark.read.option("header", True).option("sep", sep).csv(path)


def run(args) -> int:
    from pyspark.sql import functions as F

    sheaf = os.path.abspath(args.sheaf)
    base = os.path.abspath(args.base_store)
    output = os.path.abspath(args.output)
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731

    try:
        base_stats = sheaf_json(sheaf, ["stats", base, "--json"])["statistics"]
    except RuntimeError as e:
        log(f"spark_shards: the base store: {e}")
        return 2
    if base_stats["behaviors"] != 0:
        log(f"spark_shards: the base store {base} holds {base_stats['behaviors']} behaviours; it must hold only the codebook and item "
            "codes (every shard starts as a copy of it)")
        return 2
    if base_stats["items"] == 0:
        log(f"spark_shards: warning: the base store {base} holds no item codes; histories will decode as missing items")
    os.makedirs(output, exist_ok=True)

    fmt = args.format or ("parquet" if args.input.endswith(".parquet") or os.path.isdir(args.input) else
                          "tsv" if args.input.endswith(".tsv") else "csv")
    names = [c.strip() for c in args.columns.split(",")]
    if not 3 <= len(names) <= 4:
        log("spark_shards: --columns names user,item,timestamp[,label]")
        return 2

    started = time.time()
    spark = spark_session(args.master)
    session_seconds = time.time() - started
    try:
        raw = read_log(spark, args.input, fmt, names)
        missing = [c for c in names if c not in raw.columns]
        if missing:
            log(f"spark_shards: {args.input} has no column {', '.join(missing)} (columns: {', '.join(raw.columns)})")
            return 2
        integer_typed = raw.schema[names[0]].dataType.typeName() in ("long", "integer", "short", "byte")
        text, bits = user_columns(F.col(names[0]), integer_typed)
        fields = [text] + [F.col(c).cast("string") for c in names[1:]]
        df = raw.select(
            text.alias("u"), bits.alias("bits"), *[F.col(c).cast("string").alias(f"c{i}") for i, c in enumerate(names[1:])],
            F.concat_ws(",", *fields).alias("line"),
        ).withColumn("shard", shard_column(F.col("bits"), args.shards)).persist()

        # What each shard must end with: its rows, users and distinct (user, item, timestamp)
        # behaviours (aggregated in steps; rows whose user is not an id fall in the null shard).
        per_behaviour = df.groupBy("shard", "u", F.col("c0").cast("decimal(21,0)"), F.col("c1").cast("long")).agg(F.count("*").alias("rows"))
        per_user = per_behaviour.groupBy("shard", "u").agg(F.count("*").alias("behaviours"), F.sum("rows").alias("rows"))
        per_shard = per_user.groupBy("shard").agg(
            F.count("*").alias("users"), F.sum("behaviours").alias("behaviours"), F.sum("rows").alias("rows")).collect()
        expected = {r["shard"]: r.asDict() for r in per_shard}
        invalid = expected.pop(None, None)
        if invalid:
            bad = df.filter(F.col("bits").isNull()).limit(5).collect()
            log(f"spark_shards: {invalid['rows']} row(s) have a user that is not an id 0 … 2^64 − 1 (first: "
                + ", ".join(repr(r["line"]) for r in bad) + "). Nothing was built.")
            return 1
        total_rows = sum(r["rows"] for r in expected.values())
        count_seconds = time.time() - started - session_seconds
        log(f"spark_shards: {total_rows:,} rows, {args.shards} shards; building in {args.shards} tasks")

        # Shard k's rows to staging/shard=k (written by the JVM: rows never pass through Python), then
        # one task per shard loads them.
        build_started = time.time()
        staging = os.path.join(output, ".staging")
        df.select("shard", "line").write.mode("overwrite").partitionBy("shard").text(staging)
        df.unpersist()
        header = ",".join(["user", "item", "timestamp", "label"][: len(names)])
        count, chunk = args.shards, args.chunk_size

        def task(index, _):
            return [build_shard(index, count=count, staging=staging, output=output, base=base, sheaf=sheaf, header=header, chunk_size=chunk)]

        results = spark.sparkContext.parallelize(range(count), count).mapPartitionsWithIndex(task).collect()
        build_seconds = time.time() - build_started
        shutil.rmtree(staging, ignore_errors=True)
    finally:
        spark.stop()

    # The check: every behaviour exactly once.
    problems = []
    for r in sorted(results, key=lambda r: r["shard"]):
        k = r["shard"]
        if r["error"]:
            problems.append(f"shard {k}: the load failed: {r['error']}")
            continue
        want = expected.get(k, {"rows": 0, "users": 0, "behaviours": 0})
        if r["other_shards"]:
            problems.append(f"shard {k}: sheaf found {r['other_shards']} of its rows in other shards (Spark's hash and sheaf's disagree)")
        if r["rows"] != want["rows"]:
            problems.append(f"shard {k}: received {r['rows']} rows, the log has {want['rows']}")
        if r["users"] != want["users"] or r["behaviours"] != want["behaviours"]:
            problems.append(f"shard {k}: the store holds {r['users']} users and {r['behaviours']} behaviours; the log's shard has "
                            f"{want['users']} users and {want['behaviours']} distinct (user, item, timestamp) behaviours")
    if len(results) != args.shards:
        problems.append(f"{len(results)} tasks reported, {args.shards} expected")
    ok = [r for r in results if not r["error"]]
    manifest = {
        "hash": "SplitMix64 finaliser of the user id, mod shards (sheaf behaviors load --shard k/n)",
        "shards": args.shards,
        "input": args.input if "://" in args.input else os.path.abspath(args.input),
        "format": fmt,
        "base_store": base,
        "dimension": base_stats["dimension"],
        "codebooks": base_stats["codebooks"],
        "rows": total_rows,
        "users": sum(r["users"] for r in ok),
        "behaviours": sum(r["behaviours"] for r in ok),
        "expected_behaviours": sum(e["behaviours"] for e in expected.values()),
        "seconds": {"session": session_seconds, "read_and_count": count_seconds, "build": build_seconds, "total": time.time() - started},
        "stores": sorted(results, key=lambda r: r["shard"]),
        "problems": problems,
    }
    with open(os.path.join(output, "shards.json.tmp"), "w") as f:
        json.dump(manifest, f, indent=2)
    os.replace(os.path.join(output, "shards.json.tmp"), os.path.join(output, "shards.json"))

    for r in sorted(ok, key=lambda r: r["shard"]):
        print(f"shard {r['shard']}: {r['users']:,} users, {r['behaviours']:,} behaviours ({r['appended']:,} appended now) in {r['store']}")
    print(f"{manifest['behaviours']:,} behaviours of {manifest['users']:,} users in {args.shards} shards "
          f"(the log: {total_rows:,} rows, {manifest['expected_behaviours']:,} distinct); "
          f"built in {build_seconds:.1f} s, {manifest['seconds']['total']:.1f} s with Spark's start")
    if problems:
        for p in problems:
            log("spark_shards: " + p)
        return 1
    print("check: every behaviour is in exactly one shard")
    return 0


def hash_ids(args) -> int:
    """--hash-ids: each id's shard as the Spark expression computes it, `id<TAB>shard` per line in input
    order (what `sheaf shard --count N --input FILE` prints), for checking the two agree."""
    from pyspark.sql import functions as F

    spark = spark_session(args.master)
    try:
        lines = spark.read.text(args.hash_ids).withColumn("n", F.monotonically_increasing_id())
        lines = lines.filter((F.trim("value") != "") & ~F.col("value").startswith("#"))
        text, bits = user_columns(F.trim(F.col("value")))
        df = lines.select("n", text.alias("u"), bits.alias("bits"), F.col("value"))
        bad = df.filter(F.col("bits").isNull()).limit(3).collect()
        if bad:
            print("spark_shards: not user ids: " + ", ".join(repr(r["value"]) for r in bad), file=sys.stderr)
            return 1
        out = df.orderBy("n").select(F.concat_ws("\t", "u", shard_column(F.col("bits"), args.shards).cast("string")))
        parts = args.hash_output + ".parts"
        out.coalesce(1).write.mode("overwrite").text(parts)
        [part] = [p for p in os.listdir(parts) if p.startswith("part-")]
        os.replace(os.path.join(parts, part), args.hash_output)
        shutil.rmtree(parts)
    finally:
        spark.stop()
    return 0


def main(argv=None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", help="the behaviour log: a CSV/TSV file with a header, or Parquet (file or directory)")
    p.add_argument("--format", choices=["csv", "tsv", "parquet"], help="default: from the name (.parquet or a directory: parquet)")
    p.add_argument("--columns", default="user,item,timestamp,label",
                   help="the log's user,item,timestamp[,label] column names (default: %(default)s)")
    p.add_argument("--base-store", help="a store with the codebook and item codes and no histories")
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--output", help="where shard-K-of-N stores and shards.json go")
    p.add_argument("--master", default=os.environ.get("SPARK_MASTER", "local[*]"),
                   help="Spark master (default: $SPARK_MASTER or local[*]; empty: spark-submit's)")
    p.add_argument("--sheaf", default=os.environ.get("SHEAF_BIN") or os.path.join(here, "..", ".build", "release", "sheaf"),
                   help="the sheaf binary, at this path on every executor (default: $SHEAF_BIN or .build/release/sheaf)")
    p.add_argument("--chunk-size", type=int, default=100_000, help="behaviours per write transaction of each load")
    p.add_argument("--hash-ids", metavar="FILE",
                   help="instead of building: write each id of FILE (one per line) and its shard, as Spark computes it, to --hash-output")
    p.add_argument("--hash-output", metavar="FILE")
    args = p.parse_args(argv)
    if args.shards < 1:
        p.error("--shards must be ≥ 1")
    if args.hash_ids:
        if not args.hash_output:
            p.error("--hash-ids needs --hash-output")
        return hash_ids(args)
    for name in ("input", "base_store", "output"):
        if not getattr(args, name):
            p.error(f"--{name.replace('_', '-')} is required")
    if not os.access(args.sheaf, os.X_OK):
        p.error(f"no sheaf binary at {args.sheaf}: build it (swift build -c release --product sheaf) or pass --sheaf")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
