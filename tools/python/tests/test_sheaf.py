"""Tests of the Python package (tools/python/sheaf) on a store the Swift integration test
(CAPITests.pythonPackageReadsWhatSwiftReads) makes: $SHEAF_TEST_STORE, with what the Swift API read
from it in $SHEAF_TEST_EXPECTED (JSON). Run: tools/test (or that test alone), never on their own
without those two variables (then they are skipped)."""
import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import sheaf

STORE = os.environ.get("SHEAF_TEST_STORE")
EXPECTED = os.environ.get("SHEAF_TEST_EXPECTED")
pytestmark = pytest.mark.skipif(not (STORE and EXPECTED), reason="needs SHEAF_TEST_STORE and SHEAF_TEST_EXPECTED (run through tools/test)")


@pytest.fixture(scope="module")
def expected():
    with open(EXPECTED) as f:
        return json.load(f)


@pytest.fixture
def store():
    with sheaf.Store(STORE) as s:
        yield s


def test_versions(expected):
    version, api, fmt = sheaf.versions()
    assert api == sheaf.API_VERSION
    assert fmt == expected["format"]
    assert version.count(".") == 2


def test_history_matches_swift(store, expected):
    h = store.history(expected["user"])
    assert store.dimension == expected["dimension"]
    assert h.items.dtype == np.uint64 and h.timestamps.dtype == np.int64 and h.labels.dtype == np.float32
    assert h.embeddings.dtype == np.float32 and h.embeddings.shape == (len(expected["items"]), expected["dimension"])
    assert h.embeddings.flags["C_CONTIGUOUS"]
    assert h.items.tolist() == expected["items"]
    assert h.timestamps.tolist() == expected["timestamps"]
    assert h.labels.tolist() == expected["labels"]
    assert np.array_equal(h.embeddings, np.asarray(expected["embeddings"], np.float32).reshape(h.embeddings.shape))
    assert store.history_length(expected["user"]) == len(expected["items"])


def test_history_into_reused_buffers(store, expected):
    out = store.buffers(100)
    h = store.history(expected["user"], out=out)
    assert np.shares_memory(h.embeddings, out.embeddings) and np.shares_memory(h.items, out.items)
    assert h.items.tolist() == expected["items"]
    assert np.array_equal(h.embeddings, np.asarray(expected["embeddings"], np.float32).reshape(h.embeddings.shape))
    small = store.buffers(3)  # too small: new arrays, the same values
    h2 = store.history(expected["user"], out=small)
    assert not np.shares_memory(h2.embeddings, small.embeddings) and h2.items.tolist() == expected["items"]


def test_history_without_embeddings(store, expected):
    h = store.history(expected["user"], embeddings=False)
    assert h.items.tolist() == expected["items"]
    assert h.embeddings.shape == (len(expected["items"]), 0)


def test_batch(store, expected):
    u = expected["user"]
    b = store.histories([u, 987654321, expected["other_user"], u])
    n, m = len(expected["items"]), expected["other_length"]
    assert b.offsets.tolist() == [0, n, n, n + m, 2 * n + m]
    assert b.items[:n].tolist() == expected["items"] and b.items[n + m:].tolist() == expected["items"]
    assert np.array_equal(b.embeddings[:n], store.history(u).embeddings)
    empty = store.histories([987654321])
    assert empty.offsets.tolist() == [0, 0] and empty.embeddings.shape == (0, store.dimension)


def test_items(store, expected):
    rows = store.items(expected["item_ids"])
    assert rows.shape == (len(expected["item_ids"]), expected["dimension"])
    assert np.array_equal(rows, np.asarray(expected["item_embeddings"], np.float32).reshape(rows.shape))
    with pytest.raises(sheaf.MissingItems) as e:
        store.items([expected["item_ids"][0], 4000000000])
    assert e.value.code == sheaf.MISSING_ITEMS and "4000000000" in str(e.value)


def test_stats(store, expected):
    st = store.stats()
    for key, value in expected["stats"].items():
        assert st[key] == value, key


def test_profile(store, expected):
    p = store.profile(expected["user"])
    assert p.model_version == expected["profile_version"] and p.behaviours == expected["profile_behaviours"]
    assert [list(x) for x in zip(p.levels.tolist(), p.codes.tolist(), p.counts.tolist())] == expected["profile"]
    with pytest.raises(sheaf.NotFound):
        store.profile(expected["other_user"])


def test_projected_history(store, expected):
    w = np.asarray(expected["projection_weight"], np.float32).reshape(expected["dimension"], -1)
    items, rows = store.projection(w, expected["projection_bias"]).history(expected["user"])
    assert items.tolist() == expected["items"]
    assert np.array_equal(rows, np.asarray(expected["projected"], np.float32).reshape(rows.shape))
    with pytest.raises(sheaf.InvalidArgument):
        store.projection(np.zeros((3, 2), np.float32))


def test_bad_input(expected):
    with pytest.raises(sheaf.StoreError) as e:
        sheaf.Store("/nonexistent/sheaf-store")
    assert "no Sheaf store at /nonexistent/sheaf-store" in str(e.value)
    s = sheaf.Store(STORE)
    with pytest.raises(sheaf.NotFound):
        s.history(987654321)
    with pytest.raises(sheaf.NotFound):
        s.history_length(987654321)
    s.close()
    s.close()  # a second close does nothing
    with pytest.raises(sheaf.BadHandle):
        s.history(expected["user"])
    with pytest.raises(sheaf.BadHandle):
        s.items([1])


def test_concurrent_reads_from_threads(store, expected):
    want = np.asarray(expected["embeddings"], np.float32).reshape(len(expected["items"]), expected["dimension"])

    def read(i):
        h = store.history(expected["user"])
        return h.items.tolist() == expected["items"] and np.array_equal(h.embeddings, want)

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(read, range(200)))


@pytest.fixture
def copy(tmp_path):
    """A copy of the test store to write to."""
    import shutil
    path = tmp_path / "store"
    path.mkdir()
    shutil.copyfile(os.path.join(STORE, "data.mdb"), path / "data.mdb")
    return str(path)


def test_append_is_idempotent_and_all_or_nothing(copy):
    with sheaf.Store(copy, read_write=True) as s:
        # Out of time order, with a repeat: three new behaviours, stored in time order.
        assert s.append([777, 777, 777, 777], [3, 5, 3, 7], [300, 100, 300, 200], labels=[1.5, 2.5, 1.5, 0.5]) == 3
        assert s.append([777, 777, 777, 777], [3, 5, 3, 7], [300, 100, 300, 200], labels=[1.5, 2.5, 1.5, 0.5]) == 0
        h = s.history(777, embeddings=False)
        assert h.items.tolist() == [5, 7, 3] and h.timestamps.tolist() == [100, 200, 300] and h.labels.tolist() == [2.5, 0.5, 1.5]
        before = s.stats()["behaviours"]
        with pytest.raises(sheaf.InvalidArgument) as e:
            s.append([778, 778], [1, 2], [1, 2], labels=[0.0, float("nan")])
        assert "row 1" in str(e.value)
        with pytest.raises(sheaf.InvalidArgument):
            s.append([778], [1], [2**62])
        with pytest.raises(sheaf.InvalidArgument):
            s.append([778, 779], [1], [1, 2])
        assert s.stats()["behaviours"] == before
        with pytest.raises(sheaf.NotFound):
            s.history(778)


def test_put_items(copy):
    with sheaf.Store(copy, read_write=True) as s:
        rng = np.random.default_rng(3)
        rows = rng.standard_normal((2, s.dimension)).astype(np.float32)
        s.put_items([5000, 5001], rows)
        got = s.items([5000, 5001])
        assert got.shape == rows.shape and np.all(np.isfinite(got))
        # Coded: close to the rows' directions, not equal to them.
        cos = (got * rows).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(rows, axis=1)
        assert np.all(cos > 0.3), cos
        with pytest.raises(sheaf.InvalidArgument) as e:
            s.put_items([6000, 6000], rows)
        assert "twice" in str(e.value)
        bad = rows.copy()
        bad[1, 0] = np.inf
        with pytest.raises(sheaf.InvalidArgument):
            s.put_items([6001, 6002], bad)
        with pytest.raises(sheaf.MissingItems):
            s.items([6001])
        with pytest.raises(sheaf.InvalidArgument):
            s.put_items([6003], rows)  # 1 id, 2 rows


def test_read_only_handles_and_sharing(copy):
    with sheaf.Store(copy) as reader:
        with pytest.raises(sheaf.ReadOnly):
            reader.append([1], [1], [1])
        with pytest.raises(sheaf.ReadOnly):
            reader.put_items([1], np.ones((1, reader.dimension), np.float32))
        # Open read-only in this process: not also read-write (one LMDB environment per file).
        with pytest.raises(sheaf.StoreError) as e:
            sheaf.Store(copy, read_write=True)
        assert "already open read-only" in str(e.value)
    # Read-write first: read-only Stores share it, and see its writes at once.
    with sheaf.Store(copy, read_write=True) as writer, sheaf.Store(copy) as reader:
        writer.append([881], [2], [10])
        assert reader.history(881, embeddings=False).items.tolist() == [2]
        with pytest.raises(sheaf.ReadOnly):
            reader.append([881], [3], [11])
