"""Sheaf from Python: read a Sheaf store's histories and item embeddings into numpy, through libSheaf.so
(the C API of Sources/CSheafAPI/include/sheaf.h) with ctypes. No compilation beyond the Swift build:

    lib=$(tools/build-clib)                       # .build-clib/release/libSheaf.so
    PYTHONPATH=tools/python python3 -c 'import sheaf; print(sheaf.Store("data/demo-store").history(196).items)'

    import sheaf
    with sheaf.Store("data/demo-store") as store:
        h = store.history(196)          # h.items (uint64), h.timestamps (int64), h.labels (float32),
                                        # h.embeddings: (n, D) float32, decoded straight into the array
        b = store.histories([196, 7])   # concatenated; b.offsets[i]:b.offsets[i + 1] are user i's rows
        e = store.items([1, 2, 3])      # (3, D) float32

The library is found through $SHEAF_LIBRARY, else <repository>/.build-clib/release/libSheaf.so. Errors
are `sheaf.SheafError` (subclasses per code) carrying the library's message. Every read is one LMDB
read transaction in the library, and ctypes releases the GIL for the call, so reads from several
Python threads run in parallel.
"""
import ctypes
import os
from typing import NamedTuple, Sequence

import numpy as np

__all__ = ["Store", "History", "Histories", "SheafError", "BadHandle", "NotFound", "MissingItems", "StoreError", "ReadOnly", "library"]

OK, INVALID_ARGUMENT, BAD_HANDLE, NOT_FOUND, BUFFER_TOO_SMALL, MISSING_ITEMS, STORE, READ_ONLY = range(8)
API_VERSION = 1


class SheafError(Exception):
    """A call of the library failed: `code` (sheaf.h's SHEAF_E_*) and the library's message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidArgument(SheafError, ValueError):
    pass


class BadHandle(SheafError):
    pass


class NotFound(SheafError, KeyError):
    def __str__(self):
        return self.message


class MissingItems(SheafError, KeyError):
    def __str__(self):
        return self.message


class StoreError(SheafError):
    pass


class ReadOnly(SheafError):
    """A write through a store opened without read_write=True."""


_ERRORS = {INVALID_ARGUMENT: InvalidArgument, BAD_HANDLE: BadHandle, NOT_FOUND: NotFound, MISSING_ITEMS: MissingItems, STORE: StoreError,
           READ_ONLY: ReadOnly}

_lib = None

_STAT_FIELDS = ["dimension", "items", "titles", "users", "behaviours", "segments", "history_bytes", "max_history_bytes",
                "max_history_behaviours", "profiles", "profile_bytes", "codebooks"]


class _Statistics(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in _STAT_FIELDS]


def library():
    """The loaded libSheaf (ctypes.CDLL), loaded on first use."""
    global _lib
    if _lib is not None:
        return _lib
    path = os.environ.get("SHEAF_LIBRARY") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".build-clib", "release", "libSheaf.so")
    if not os.path.exists(path):
        raise OSError(f"libSheaf.so not found at {path}: run tools/build-clib, or set SHEAF_LIBRARY")
    lib = ctypes.CDLL(path)
    u64, i64, i32, f32 = ctypes.c_uint64, ctypes.c_int64, ctypes.c_int, ctypes.c_float
    p = ctypes.POINTER
    lib.sheaf_library_version.restype = ctypes.c_char_p
    lib.sheaf_api_version.restype = i32
    lib.sheaf_store_format_version.restype = i32
    lib.sheaf_last_error.restype = i32
    lib.sheaf_last_error_message.restype = ctypes.c_char_p
    signatures = {
        "sheaf_open": [ctypes.c_char_p, i32, p(u64)],
        "sheaf_close": [u64],
        "sheaf_dimension": [u64, p(i64)],
        "sheaf_history_length": [u64, u64, p(i64)],
        "sheaf_read_history": [u64, u64, i64, p(u64), p(i64), p(f32), p(f32), p(i64)],
        "sheaf_read_histories": [u64, p(u64), i64, i64, p(i64), p(u64), p(i64), p(f32), p(f32), p(i64)],
        "sheaf_read_items": [u64, p(u64), i64, p(f32)],
        "sheaf_read_statistics": [u64, p(_Statistics), ctypes.c_size_t],
        "sheaf_read_profile": [u64, u64, i64, p(ctypes.c_int32), p(ctypes.c_int32), p(ctypes.c_int32), p(i64), p(ctypes.c_uint32), p(i64)],
        "sheaf_projection_create": [u64, p(f32), i64, p(f32), p(u64)],
        "sheaf_projection_destroy": [u64],
        "sheaf_read_history_projected": [u64, u64, u64, i64, p(u64), p(f32), p(i64)],
        "sheaf_append_behaviours": [u64, i64, p(u64), p(u64), p(i64), p(f32), p(ctypes.c_uint16), p(i64)],
        "sheaf_put_items": [u64, i64, p(u64), p(f32)],
    }
    for name, args in signatures.items():
        f = getattr(lib, name)
        f.argtypes = args
        f.restype = i32
    if lib.sheaf_api_version() != API_VERSION:
        raise OSError(f"{path} implements C API {lib.sheaf_api_version()}, this package expects {API_VERSION}")
    _lib = lib
    return lib


def _check(code):
    if code != OK:
        message = library().sheaf_last_error_message().decode("utf-8", "replace")
        raise _ERRORS.get(code, SheafError)(code, message)


def _ptr(a, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


class History(NamedTuple):
    """One user's behaviours in time order, and their items' decoded embeddings (n × D)."""
    items: np.ndarray
    timestamps: np.ndarray
    labels: np.ndarray
    embeddings: np.ndarray


class Histories(NamedTuple):
    """Several users' histories concatenated: user i's rows are offsets[i]:offsets[i + 1]."""
    offsets: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    labels: np.ndarray
    embeddings: np.ndarray


class Store:
    """A Sheaf store opened read-only, or with `read_write=True` for loaders (`append`, `put_items`).

    A process opens each store's file once underneath (LMDB allows one environment per file per
    process): several Store objects on one store share it, and a store already open read-only in
    this process cannot also be opened read-write (StoreError) — open it read-write first."""

    def __init__(self, path, read_write=False):
        lib = library()
        handle = ctypes.c_uint64(0)
        _check(lib.sheaf_open(os.fsencode(path), 1 if read_write else 0, ctypes.byref(handle)))
        self._handle = handle.value
        d = ctypes.c_int64(0)
        _check(lib.sheaf_dimension(self._handle, ctypes.byref(d)))
        self.dimension = d.value
        self.path = path

    def close(self):
        """Closes the store; later calls raise BadHandle. Closing twice does nothing."""
        if self._handle:
            handle, self._handle = self._handle, 0
            _check(library().sheaf_close(handle))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _live(self):
        if not self._handle:
            raise BadHandle(BAD_HANDLE, "the store is closed")
        return self._handle

    def history_length(self, user):
        """The number of behaviours in the user's history (NotFound: none)."""
        n = ctypes.c_int64(0)
        _check(library().sheaf_history_length(self._live(), int(user), ctypes.byref(n)))
        return n.value

    def buffers(self, capacity):
        """Arrays for `history(user, out=...)`: a History of capacity ids, timestamps, labels and a
        (capacity, D) float32 matrix, to read many histories into the same memory."""
        return History(np.empty(capacity, np.uint64), np.empty(capacity, np.int64), np.empty(capacity, np.float32),
                       np.empty((capacity, self.dimension), np.float32))

    def history(self, user, embeddings=True, out=None):
        """The user's whole history; with `embeddings=False`, the embeddings array is empty (n × 0).

        With `out` (from `buffers(capacity)`), the history is read into those arrays and the result
        holds views of their first n rows (valid until the next read into them), which saves
        allocating and first-touching new memory per call; a longer history gets new arrays."""
        lib, h = library(), self._live()
        # With buffers, read straight into them (a longer history reports its length and gets new
        # arrays); without, ask the length first.
        capacity = len(out.items) if out is not None else self.history_length(user)
        while True:
            if out is not None and len(out.items) >= capacity and out.embeddings.shape[1] == self.dimension:
                items, timestamps, labels, rows = out
                capacity = len(items)
                if not embeddings:
                    rows = rows[:, :0]
            else:
                items, timestamps, labels = np.empty(capacity, np.uint64), np.empty(capacity, np.int64), np.empty(capacity, np.float32)
                rows = np.empty((capacity, self.dimension if embeddings else 0), np.float32)
            count = ctypes.c_int64(0)
            code = lib.sheaf_read_history(h, int(user), capacity, _ptr(items, ctypes.c_uint64), _ptr(timestamps, ctypes.c_int64),
                                          _ptr(labels, ctypes.c_float), _ptr(rows, ctypes.c_float) if embeddings else None, ctypes.byref(count))
            if code == BUFFER_TOO_SMALL:  # the history grew since its length was read (a writer appended)
                capacity = count.value
                continue
            _check(code)
            n = count.value
            return History(items[:n], timestamps[:n], labels[:n], rows[:n])

    def histories(self, users: Sequence[int], embeddings=True):
        """Several users' histories in one read transaction (a user without a history gets no rows)."""
        lib, h = library(), self._live()
        ids = np.ascontiguousarray(np.asarray(users, dtype=np.uint64))
        offsets = np.empty(len(ids) + 1, np.int64)
        capacity, count = 0, ctypes.c_int64(0)
        code = lib.sheaf_read_histories(h, _ptr(ids, ctypes.c_uint64), len(ids), 0, _ptr(offsets, ctypes.c_int64),
                                        None, None, None, None, ctypes.byref(count))
        if code == BUFFER_TOO_SMALL:
            capacity = count.value
        else:
            _check(code)
        while True:
            items, timestamps, labels = np.empty(capacity, np.uint64), np.empty(capacity, np.int64), np.empty(capacity, np.float32)
            rows = np.empty((capacity, self.dimension if embeddings else 0), np.float32)
            code = lib.sheaf_read_histories(h, _ptr(ids, ctypes.c_uint64), len(ids), capacity, _ptr(offsets, ctypes.c_int64),
                                            _ptr(items, ctypes.c_uint64), _ptr(timestamps, ctypes.c_int64), _ptr(labels, ctypes.c_float),
                                            _ptr(rows, ctypes.c_float) if embeddings else None, ctypes.byref(count))
            if code == BUFFER_TOO_SMALL:
                capacity = count.value
                continue
            _check(code)
            n = count.value
            return Histories(offsets.copy(), items[:n], timestamps[:n], labels[:n], rows[:n])

    def items(self, ids: Sequence[int]):
        """The items' embeddings decoded from their codes, (len(ids), D) float32 (MissingItems: an item has no code)."""
        arr = np.ascontiguousarray(np.asarray(ids, dtype=np.uint64))
        rows = np.empty((len(arr), self.dimension), np.float32)
        _check(library().sheaf_read_items(self._live(), _ptr(arr, ctypes.c_uint64), len(arr), _ptr(rows, ctypes.c_float)))
        return rows

    def stats(self):
        """What the store holds, as a dict (items, users, behaviours, segments, history_bytes, ...):
        a scan of every record, as `sheaf stats`, not for the request path."""
        st = _Statistics()
        _check(library().sheaf_read_statistics(self._live(), ctypes.byref(st), ctypes.sizeof(st)))
        return {name: getattr(st, name) for name in _STAT_FIELDS}

    def profile(self, user):
        """The user's CHIME profile: a Profile of levels, codes and counts (int32 arrays, level by
        level, codes ascending), the model version and the behaviours it summarises (NotFound: none)."""
        lib, h = library(), self._live()
        capacity, count = 256, ctypes.c_int64(0)
        version, behaviours = ctypes.c_uint32(0), ctypes.c_int64(0)
        while True:
            levels, codes, counts = (np.empty(capacity, np.int32) for _ in range(3))
            P = ctypes.POINTER(ctypes.c_int32)
            code = lib.sheaf_read_profile(h, int(user), capacity, levels.ctypes.data_as(P), codes.ctypes.data_as(P), counts.ctypes.data_as(P),
                                          ctypes.byref(count), ctypes.byref(version), ctypes.byref(behaviours))
            if code == BUFFER_TOO_SMALL:
                capacity = count.value
                continue
            _check(code)
            n = count.value
            return Profile(levels[:n], codes[:n], counts[:n], version.value, behaviours.value)

    def append(self, users, items, timestamps, labels=None, actions=None):
        """Appends behaviours (row i: users[i] did items[i] at timestamps[i], with labels[i] and
        actions[i], default 0) in one write transaction: all of them or, on an error, none. Idempotent
        per (user, timestamp, item), so a batch sent twice adds nothing the second time. Returns how
        many behaviours were new. ReadOnly without read_write=True; InvalidArgument for a timestamp
        outside ±2^62 or a NaN/infinite label, naming the row."""
        u = np.ascontiguousarray(np.asarray(users, dtype=np.uint64))
        n = len(u)
        i = np.ascontiguousarray(np.asarray(items, dtype=np.uint64))
        t = np.ascontiguousarray(np.asarray(timestamps, dtype=np.int64))
        lab = None if labels is None else np.ascontiguousarray(np.asarray(labels, dtype=np.float32))
        act = None if actions is None else np.ascontiguousarray(np.asarray(actions, dtype=np.uint16))
        for name, a in (("items", i), ("timestamps", t), ("labels", lab), ("actions", act)):
            if a is not None and a.shape != (n,):
                raise InvalidArgument(INVALID_ARGUMENT, f"{name} must have shape ({n},) like users, got {a.shape}")
        appended = ctypes.c_int64(0)
        _check(library().sheaf_append_behaviours(
            self._live(), n, _ptr(u, ctypes.c_uint64), _ptr(i, ctypes.c_uint64), _ptr(t, ctypes.c_int64),
            None if lab is None else _ptr(lab, ctypes.c_float), None if act is None else _ptr(act, ctypes.c_uint16),
            ctypes.byref(appended)))
        return appended.value

    def put_items(self, ids, embeddings):
        """Encodes item embeddings ((n, D) float32) with the store's active codebook and stores their
        codes under `ids`, replacing earlier codes, in one write transaction. ReadOnly without
        read_write=True; InvalidArgument for a repeated id or a NaN/infinite value (naming the row)."""
        a = np.ascontiguousarray(np.asarray(ids, dtype=np.uint64))
        e = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
        if e.shape != (len(a), self.dimension):
            raise InvalidArgument(INVALID_ARGUMENT, f"embeddings must have shape ({len(a)}, {self.dimension}), got {e.shape}")
        _check(library().sheaf_put_items(self._live(), len(a), _ptr(a, ctypes.c_uint64), _ptr(e, ctypes.c_float)))

    def projection(self, weight, bias=None):
        """A model's first layer y = x · W + b (W: D × H float32, b: H or None) for projected reads:
        `p.history(user)` gives the (n, H) inputs straight from the codes (see the README)."""
        return Projection(self, weight, bias)

    def __repr__(self):
        return f"sheaf.Store({self.path!r}, dimension={self.dimension})"


class Profile(NamedTuple):
    """A CHIME profile: entries (levels[i], codes[i], counts[i])."""
    levels: np.ndarray
    codes: np.ndarray
    counts: np.ndarray
    model_version: int
    behaviours: int


class Projection:
    """A linear layer registered with the library (weights copied); `history(user)` -> (items, rows)."""

    def __init__(self, store, weight, bias=None):
        w = np.ascontiguousarray(np.asarray(weight, dtype=np.float32))
        if w.ndim != 2 or w.shape[0] != store.dimension:
            raise InvalidArgument(INVALID_ARGUMENT, f"weight must be ({store.dimension}, H), got {w.shape}")
        b = None if bias is None else np.ascontiguousarray(np.asarray(bias, dtype=np.float32))
        if b is not None and b.shape != (w.shape[1],):
            raise InvalidArgument(INVALID_ARGUMENT, f"bias must be ({w.shape[1]},), got {b.shape}")
        handle = ctypes.c_uint64(0)
        f32 = ctypes.POINTER(ctypes.c_float)
        _check(library().sheaf_projection_create(store._live(), w.ctypes.data_as(f32), w.shape[1],
                                                 None if b is None else b.ctypes.data_as(f32), ctypes.byref(handle)))
        self._handle, self.store, self.width = handle.value, store, w.shape[1]

    def history(self, user):
        """(items uint64, rows (n, H) float32): the user's history through the layer."""
        lib, capacity = library(), self.store.history_length(user)
        while True:
            items, rows, count = np.empty(capacity, np.uint64), np.empty((capacity, self.width), np.float32), ctypes.c_int64(0)
            code = lib.sheaf_read_history_projected(self.store._live(), self._handle, int(user), capacity, _ptr(items, ctypes.c_uint64),
                                                    _ptr(rows, ctypes.c_float), ctypes.byref(count))
            if code == BUFFER_TOO_SMALL:
                capacity = count.value
                continue
            _check(code)
            return items[:count.value], rows[:count.value]

    def __del__(self):
        if getattr(self, "_handle", 0):
            library().sheaf_projection_destroy(self._handle)
            self._handle = 0


def versions():
    """(library version, C API version, store format version)."""
    lib = library()
    return lib.sheaf_library_version().decode(), lib.sheaf_api_version(), lib.sheaf_store_format_version()
