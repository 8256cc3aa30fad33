"""tools/study_records.py: the records that let a study outlive its run directories. Run by
tools/test (SheafIntegrationTests.ToolScriptTests), or `tools/.venv/bin/python -m pytest tools/tests`."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import study_records  # noqa: E402


@pytest.fixture
def records(tmp_path, monkeypatch):
    monkeypatch.setattr(study_records, "RECORDS", str(tmp_path / "records"))
    return tmp_path


def local_run(tmp, name, seed, core, r10, mtime):
    """A finished run directory as sheaf train leaves it (metrics.json only matters here)."""
    d = tmp / f"{name}-seed{seed}-{core}"
    d.mkdir()
    (d / "metrics.json").write_text("{}")
    os.utime(d / "metrics.json", (mtime, mtime))
    return dict(seed=seed, best_epoch=3, epochs=13, test={"recall@10": r10}, validation={"recall@10": r10 + 0.01},
                median_train_seconds=90.0, median_valid_seconds=0.5, machine={"cpu": "x", "blasCore": core},
                binaries=["results/bin/sheaf-abc"], dir=str(d))


def test_a_written_record_reads_back_with_its_evaluation(records):
    run = local_run(records, "hymirec-e200-p10", 1, "Cooperlake", 0.1145, 1_700_000_000)
    p = study_records.write("hymirec", "hymirec-e200-p10", run, evaluate={"test": {"recall@10": 0.1145}})
    assert p.endswith("hymirec/hymirec-e200-p10@1-Cooperlake.json")
    [r] = study_records.load("hymirec", "hymirec-e200-p10", 1)
    assert r["test"] == {"recall@10": 0.1145} and r["evaluate"] == {"test": {"recall@10": 0.1145}}
    assert r["dir"] is None and r["recorded"] == "2023-11-14T22:13:20Z"
    assert r["source"].endswith("metrics.json")
    # Writing the same run again changes nothing, and keeps the evaluation when none is given.
    assert study_records.write("hymirec", "hymirec-e200-p10", run) is None


def test_a_longer_name_sharing_the_prefix_is_not_read(records):
    study_records.write("hymirec", "hymirec_window-1-e200-p10", local_run(records, "w1", 1, "Cooperlake", 0.09, 1))
    assert study_records.load("hymirec", "hymirec-e200-p10", 1) == []
    assert study_records.load("hymirec", "hymirec_window-1-e200-p10", 2) == []


def test_a_local_run_replaces_the_record_of_its_core_only(records):
    older = local_run(records, "a", 1, "SkylakeX", 0.1029, 1_000)
    study_records.write("hymirec", "hymirec-e200-p10", older)
    same_core = local_run(records, "b", 1, "Cooperlake", 0.2, 3_000)
    study_records.write("hymirec", "hymirec-e200-p10", same_core)
    rerun = local_run(records, "c", 1, "Cooperlake", 0.1145, 5_000)
    versions = study_records.merged("hymirec", "hymirec-e200-p10", 1, rerun)
    assert [(study_records.core(r), r["test"]["recall@10"]) for r in versions] == [("SkylakeX", 0.1029), ("Cooperlake", 0.1145)]
    # The rerun keeps the recorded run's place (the same run on the same machine).
    assert versions[1]["recorded"] == "1970-01-01T00:50:00Z" and versions[1]["dir"] == rerun["dir"]
    # One run per seed: the first that finished.
    assert study_records.first_per_seed(versions) == [versions[0]]


def test_first_per_seed_orders_by_seed(records):
    runs = [dict(seed=3, recorded="b"), dict(seed=1, recorded="c"), dict(seed=1, recorded="a")]
    assert study_records.first_per_seed(runs) == [dict(seed=1, recorded="a"), dict(seed=3, recorded="b")]


def test_a_record_is_replaced_atomically(records):
    run = local_run(records, "a", 2, "Cooperlake", 0.1, 10)
    p = study_records.write("hymirec", "x-e200-p10", run)
    run["test"] = {"recall@10": 0.2}
    assert study_records.write("hymirec", "x-e200-p10", run) == p
    assert json.load(open(p))["test"] == {"recall@10": 0.2}
    assert not [f for f in os.listdir(os.path.dirname(p)) if f.endswith(".tmp")]
