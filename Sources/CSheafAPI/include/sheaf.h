/*
 * sheaf.h — Sheaf's C API: read a Sheaf store (histories, item embeddings) from any language, and
 * load behaviours and items into it.
 *
 * Link with libSheaf.so (built by tools/build-clib, which links the Swift runtime statically):
 *
 *     cc app.c -I Sources/CSheafAPI/include -L .build-clib/release -lSheaf -Wl,-rpath,'$ORIGIN' -o app
 *
 * Conventions
 *   - Every call returns an int: SHEAF_OK (0) or an error code (below), and
 *     sheaf_last_error_message() then describes the error for this thread. On error the outputs are
 *     left as they were, except after SHEAF_E_MISSING_ITEMS and SHEAF_E_STORE, when the embedding
 *     buffers may hold part of the rows.
 *   - No call aborts the process on bad input: a null pointer, a closed or unknown handle, a buffer
 *     too small, an unknown user, a damaged record all return an error code.
 *   - Handles are integers, never reused within a process: a closed handle is recognised as such.
 *     A handle may be used from several threads at once (every read is its own LMDB read
 *     transaction); close it once no call on it is running.
 *   - Sizes are counts of elements (behaviours, items, floats), int64_t.
 *   - Embeddings are float32, row-major, D floats per row (sheaf_dimension).
 *
 * Versions: SHEAF_API_VERSION changes when a declaration here changes incompatibly; calls are only
 * ever added. sheaf_store_format_version() is the store schema this library reads (older stores
 * need `sheaf migrate`).
 */
#ifndef SHEAF_H
#define SHEAF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHEAF_API_VERSION 1

/* Error codes. */
#define SHEAF_OK 0
#define SHEAF_E_INVALID_ARGUMENT 1  /* a null pointer, a negative count, unknown flags */
#define SHEAF_E_BAD_HANDLE 2        /* not a handle sheaf_open returned, or already closed */
#define SHEAF_E_NOT_FOUND 3         /* the user has no history (or no profile) */
#define SHEAF_E_BUFFER_TOO_SMALL 4  /* *required holds what is needed */
#define SHEAF_E_MISSING_ITEMS 5     /* an item has no code; the message lists up to 10 */
#define SHEAF_E_STORE 6             /* the store refused: missing, not a store, needs migration, damaged, full, ... */
#define SHEAF_E_READ_ONLY 7         /* a write on a handle opened SHEAF_OPEN_READ_ONLY */

/* Open flags. */
#define SHEAF_OPEN_READ_ONLY 0
#define SHEAF_OPEN_READ_WRITE 1     /* take the writer's lock file (loaders); reads work the same */

typedef uint64_t sheaf_handle;     /* 0 is never a valid handle */

/* The library's version string ("MAJOR.MINOR.PATCH"), static storage. */
const char *sheaf_library_version(void);
/* SHEAF_API_VERSION of the library (compare with the header's). */
int sheaf_api_version(void);
/* The store schema version this library reads. */
int sheaf_store_format_version(void);

/* The code of the last failed call on this thread (SHEAF_OK if none failed yet), and its message:
 * UTF-8, valid until the next failing call on this thread. */
int sheaf_last_error(void);
const char *sheaf_last_error_message(void);

/* Opens the store at `path` (flags: SHEAF_OPEN_READ_ONLY or SHEAF_OPEN_READ_WRITE); an existing
 * store only: nothing is created. */
int sheaf_open(const char *path, int flags, sheaf_handle *out);
/* Closes a handle. Closing one twice returns SHEAF_E_BAD_HANDLE. */
int sheaf_close(sheaf_handle store);

/* The embedding dimension D. */
int sheaf_dimension(sheaf_handle store, int64_t *out);

/* The number of behaviours in `user`'s history (SHEAF_E_NOT_FOUND: no history). */
int sheaf_history_length(sheaf_handle store, uint64_t user, int64_t *out);

/* Reads `user`'s whole history in time order, in one read transaction. `capacity` is how many
 * behaviours each non-null output holds: item_ids, timestamps, labels (capacity values each) and
 * embeddings (capacity × D floats, each behaviour's item embedding decoded from its code). Any
 * output may be NULL when not wanted. On success *count is the number of behaviours written.
 * SHEAF_E_BUFFER_TOO_SMALL: *count holds the length needed, nothing is written.
 * SHEAF_E_MISSING_ITEMS: a behaviour's item has no code and embeddings were asked for. */
int sheaf_read_history(sheaf_handle store, uint64_t user, int64_t capacity, uint64_t *item_ids, int64_t *timestamps,
                       float *labels, float *embeddings, int64_t *count);

/* Reads the histories of `user_count` users in one read transaction, behaviours concatenated in
 * the order of `users`: user i's rows are offsets[i] ..< offsets[i + 1] (offsets holds
 * user_count + 1 values; a user without a history gets an empty range). Outputs as in
 * sheaf_read_history, sized for `capacity` behaviours in all. SHEAF_E_BUFFER_TOO_SMALL: *count
 * holds the total needed. */
int sheaf_read_histories(sheaf_handle store, const uint64_t *users, int64_t user_count, int64_t capacity, int64_t *offsets,
                         uint64_t *item_ids, int64_t *timestamps, float *labels, float *embeddings, int64_t *count);

/* The embeddings of `count` items (decoded from their codes) into `embeddings` (count × D floats).
 * SHEAF_E_MISSING_ITEMS when an item has no code (nothing is guaranteed written then). */
int sheaf_read_items(sheaf_handle store, const uint64_t *ids, int64_t count, float *embeddings);

/* What the store holds (a scan of every record, as `sheaf stats`: not for the request path).
 * Fields are only ever appended: pass sizeof your struct, and only that many bytes are written. */
typedef struct sheaf_statistics {
    int64_t dimension;
    int64_t items;                  /* items with a code */
    int64_t titles;
    int64_t users;                  /* users with a history */
    int64_t behaviours;
    int64_t segments;               /* history segments */
    int64_t history_bytes;          /* stored bytes of all histories */
    int64_t max_history_bytes;
    int64_t max_history_behaviours;
    int64_t profiles;
    int64_t profile_bytes;
    int64_t codebooks;
} sheaf_statistics;
int sheaf_read_statistics(sheaf_handle store, sheaf_statistics *out, size_t size);

/* A user's CHIME profile (`sheaf profiles build`): the histogram of the ICM codes of all their
 * interest representations, as `*count` entries (levels[i], codes[i], counts[i]), level by level,
 * codes ascending; `capacity` entries fit in each array. *model_version is the CHIME model's version
 * tag and *behaviours how many behaviours the profile summarises (either may be NULL).
 * SHEAF_E_NOT_FOUND: no profile; SHEAF_E_BUFFER_TOO_SMALL: *count holds the entries needed. */
int sheaf_read_profile(sheaf_handle store, uint64_t user, int64_t capacity, int32_t *levels, int32_t *codes, int32_t *counts,
                       int64_t *count, uint32_t *model_version, int64_t *behaviours);

/* Projected reads: a model's first layer y = x · W + b applied to a history without forming the
 * D-wide rows (tables C_l · W per codebook, built on first use and cached with the store).
 * `weight` is D × output_width floats, row-major; `bias` output_width floats or NULL. Both are copied. */
typedef uint64_t sheaf_projection; /* 0 is never valid */
int sheaf_projection_create(sheaf_handle store, const float *weight, int64_t output_width, const float *bias, sheaf_projection *out);
int sheaf_projection_destroy(sheaf_projection projection);
/* `user`'s history through the projection: *count rows of output_width floats into `rows`
 * (capacity rows fit), and optionally the item ids. SHEAF_E_BUFFER_TOO_SMALL: *count holds the
 * length needed. */
int sheaf_read_history_projected(sheaf_handle store, sheaf_projection projection, uint64_t user, int64_t capacity,
                                 uint64_t *item_ids, float *rows, int64_t *count);

/* Writes (loaders): a handle opened SHEAF_OPEN_READ_WRITE. Each call is one LMDB write transaction,
 * so it is stored whole or not at all: on any error nothing of the call was written. Writers are
 * serialised (LMDB has one writer at a time); readers are never blocked. SHEAF_E_READ_ONLY on a
 * read-only handle. */

/* Appends `count` behaviours: row i is users[i] did items[i] at timestamps[i] with label labels[i]
 * (labels may be NULL: 0) and actions[i] (may be NULL: 0). Idempotent per (user, timestamp, item): a
 * behaviour already stored, or repeated in the batch, is skipped, so a failed or repeated batch is
 * finished by sending it again; *appended (may be NULL) is how many were new. Rows need not be in
 * time order; a behaviour older than a user's latest stored one is merged into place. Behaviours of
 * items without a code are stored (they read as SHEAF_E_MISSING_ITEMS until the item is put).
 * SHEAF_E_INVALID_ARGUMENT: a timestamp outside -2^62 … 2^62 - 1, a NaN or infinite label. */
int sheaf_append_behaviours(sheaf_handle store, int64_t count, const uint64_t *users, const uint64_t *items,
                            const int64_t *timestamps, const float *labels, const uint16_t *actions, int64_t *appended);

/* Encodes `count` item embeddings (count × D floats, row-major) with the store's active codebook, on
 * the calling thread, and stores their codes, replacing earlier codes of the same ids. Behaviours
 * already stored keep the code they were appended with (see the README, "Stale inline codes").
 * SHEAF_E_INVALID_ARGUMENT: an id repeated in the batch, a NaN or infinite value, a zero row under a
 * cosine codebook. SHEAF_E_STORE: the store has no codebook yet (`sheaf codebook train`). */
int sheaf_put_items(sheaf_handle store, int64_t count, const uint64_t *ids, const float *embeddings);

#ifdef __cplusplus
}
#endif

#endif /* SHEAF_H */
