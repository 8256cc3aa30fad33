/* Reads a Sheaf store through the C API (sheaf.h) and prints what it read, one fact per line, for
 * CAPITests to compare with the Swift API on the same store; also exercises the error paths.
 *
 *   read_store STORE USER ITEM...
 *
 * Exit status 0 when every call behaved as documented (each check prints "ok NAME" or "FAIL NAME");
 * the values it read are printed as "history ...", "embedding ...", "items ..." lines. It also writes:
 * behaviours of user 424242 ("appended ..." lines) and items 900 and 901 ("put ..." lines). */
#include <sheaf.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
#define CHECK(name, cond)                                                                      \
    do {                                                                                       \
        if (cond) printf("ok %s\n", name);                                                     \
        else { printf("FAIL %s (last error %d: %s)\n", name, sheaf_last_error(), sheaf_last_error_message()); failures++; } \
    } while (0)

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: read_store STORE USER ITEM...\n"); return 2; }
    const char *path = argv[1];
    uint64_t user = strtoull(argv[2], NULL, 10);
    int item_count = argc - 3;

    printf("version %s api %d format %d\n", sheaf_library_version(), sheaf_api_version(), sheaf_store_format_version());
    CHECK("api version matches the header", sheaf_api_version() == SHEAF_API_VERSION);

    sheaf_handle store = 0;
    CHECK("open", sheaf_open(path, SHEAF_OPEN_READ_ONLY, &store) == SHEAF_OK && store != 0);
    int64_t d = 0;
    CHECK("dimension", sheaf_dimension(store, &d) == SHEAF_OK && d > 0);
    printf("dimension %" PRId64 "\n", d);

    int64_t n = 0;
    CHECK("history length", sheaf_history_length(store, user, &n) == SHEAF_OK && n > 0);

    /* Too small: the length needed comes back, nothing is written. */
    int64_t needed = -1;
    uint64_t one_id = 12345;
    CHECK("buffer too small", sheaf_read_history(store, user, n - 1, &one_id, NULL, NULL, NULL, &needed) == SHEAF_E_BUFFER_TOO_SMALL
                                  && needed == n && one_id == 12345 && sheaf_last_error() == SHEAF_E_BUFFER_TOO_SMALL);

    uint64_t *ids = calloc((size_t)n, sizeof *ids);
    int64_t *ts = calloc((size_t)n, sizeof *ts);
    float *labels = calloc((size_t)n, sizeof *labels);
    float *emb = calloc((size_t)(n * d), sizeof *emb);
    int64_t count = 0;
    CHECK("read history", sheaf_read_history(store, user, n, ids, ts, labels, emb, &count) == SHEAF_OK && count == n);
    for (int64_t i = 0; i < count; i++) printf("history %" PRIu64 " %" PRId64 " %.9g\n", ids[i], ts[i], labels[i]);
    for (int64_t i = 0; i < count * d; i++) printf("embedding %.9g\n", emb[i]);

    /* Only the ids: the other outputs may be NULL. */
    uint64_t *ids2 = calloc((size_t)n, sizeof *ids2);
    CHECK("ids only", sheaf_read_history(store, user, n, ids2, NULL, NULL, NULL, &count) == SHEAF_OK && memcmp(ids, ids2, (size_t)n * sizeof *ids) == 0);

    /* A batch: the user, an unknown one, the user again. */
    uint64_t users[3] = {user, 987654321u, user};
    int64_t offsets[4] = {-1, -1, -1, -1};
    uint64_t *bids = calloc((size_t)(2 * n), sizeof *bids);
    float *bemb = calloc((size_t)(2 * n * d), sizeof *bemb);
    CHECK("batch", sheaf_read_histories(store, users, 3, 2 * n, offsets, bids, NULL, NULL, bemb, &count) == SHEAF_OK && count == 2 * n
                       && offsets[0] == 0 && offsets[1] == n && offsets[2] == n && offsets[3] == 2 * n
                       && memcmp(bids + n, ids, (size_t)n * sizeof *ids) == 0 && memcmp(bemb, emb, (size_t)(n * d) * sizeof *emb) == 0);

    /* Items by id. */
    if (item_count > 0) {
        uint64_t *items = calloc((size_t)item_count, sizeof *items);
        for (int i = 0; i < item_count; i++) items[i] = strtoull(argv[3 + i], NULL, 10);
        float *iemb = calloc((size_t)(item_count * d), sizeof *iemb);
        CHECK("items", sheaf_read_items(store, items, item_count, iemb) == SHEAF_OK);
        for (int64_t i = 0; i < item_count * d; i++) printf("items %.9g\n", iemb[i]);
        uint64_t unknown[2] = {items[0], 4000000000u};
        CHECK("no items", sheaf_read_items(store, NULL, 0, iemb) == SHEAF_OK);
        CHECK("missing item", sheaf_read_items(store, unknown, 2, iemb) == SHEAF_E_MISSING_ITEMS && strstr(sheaf_last_error_message(), "4000000000") != NULL);
        free(items);
        free(iemb);
    }

    /* Statistics, and a caller built against a shorter struct (only its bytes are written). */
    sheaf_statistics st;
    CHECK("statistics", sheaf_read_statistics(store, &st, sizeof st) == SHEAF_OK && st.dimension == d && st.behaviours > 0);
    printf("statistics %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\n", st.items, st.users, st.behaviours,
           st.segments, st.profiles, st.codebooks);
    int64_t first_two[3] = {-1, -1, -7};
    CHECK("statistics, shorter struct", sheaf_read_statistics(store, (sheaf_statistics *)first_two, 2 * sizeof(int64_t)) == SHEAF_OK
                                            && first_two[0] == d && first_two[1] == st.items && first_two[2] == -7);

    /* The user's profile. */
    int32_t levels[256], codes[256], counts[256];
    int64_t entries = 0, behaviours = 0;
    uint32_t model_version = 0;
    CHECK("profile", sheaf_read_profile(store, user, 256, levels, codes, counts, &entries, &model_version, &behaviours) == SHEAF_OK && entries > 0);
    printf("profile-meta %u %" PRId64 "\n", model_version, behaviours);
    for (int64_t i = 0; i < entries; i++) printf("profile %d %d %d\n", levels[i], codes[i], counts[i]);
    int64_t need = 0;
    CHECK("profile too small", sheaf_read_profile(store, user, 0, NULL, NULL, NULL, &need, NULL, NULL) == SHEAF_E_BUFFER_TOO_SMALL && need == entries);
    CHECK("no profile", sheaf_read_profile(store, 987654321u, 256, levels, codes, counts, &entries, NULL, NULL) == SHEAF_E_NOT_FOUND);

    /* Through a projection to 3 outputs: w[i] = (i % 7) / 4 - 0.75, b = (0.5, -0.5, 0.25). */
    float *w = calloc((size_t)(d * 3), sizeof *w);
    for (int64_t i = 0; i < d * 3; i++) w[i] = (float)(i % 7) / 4.0f - 0.75f;
    float b[3] = {0.5f, -0.5f, 0.25f};
    sheaf_projection proj = 0;
    CHECK("projection", sheaf_projection_create(store, w, 3, b, &proj) == SHEAF_OK && proj != 0);
    float *prow = calloc((size_t)(n * 3), sizeof *prow);
    uint64_t *pids = calloc((size_t)n, sizeof *pids);
    CHECK("projected", sheaf_read_history_projected(store, proj, user, n, pids, prow, &count) == SHEAF_OK && count == n
                           && memcmp(pids, ids, (size_t)n * sizeof *ids) == 0);
    for (int64_t i = 0; i < count * 3; i++) printf("projected %.9g\n", prow[i]);
    CHECK("projected too small", sheaf_read_history_projected(store, proj, user, n - 1, NULL, prow, &need) == SHEAF_E_BUFFER_TOO_SMALL && need == n);
    CHECK("projection without weight", sheaf_projection_create(store, NULL, 3, b, &proj) == SHEAF_E_INVALID_ARGUMENT);
    CHECK("destroy projection", sheaf_projection_destroy(proj) == SHEAF_OK);
    CHECK("destroyed projection", sheaf_read_history_projected(store, proj, user, n, NULL, prow, &count) == SHEAF_E_BAD_HANDLE);
    free(w); free(prow); free(pids);

    /* Writes: a read-only handle refuses them; a read-write one appends idempotently and puts items. */
    uint64_t wusers[4] = {424242u, 424242u, 424242u, 424242u}, witems[4] = {3, 5, 3, 7};
    int64_t wts[4] = {300, 100, 300, 200};
    float wlabels[4] = {1.5f, 2.5f, 1.5f, 0.5f};
    int64_t appended = -1;
    CHECK("append read-only", sheaf_append_behaviours(store, 4, wusers, witems, wts, wlabels, NULL, &appended) == SHEAF_E_READ_ONLY && appended == -1);
    /* One LMDB environment per file per process: a store open read-only here cannot also be opened
     * read-write; opened read-write first, read-only handles share it. */
    sheaf_handle rw = 0;
    CHECK("read-write while open read-only", sheaf_open(path, SHEAF_OPEN_READ_WRITE, &rw) == SHEAF_E_STORE && rw == 0
                                                 && strstr(sheaf_last_error_message(), "already open read-only") != NULL);
    CHECK("close read-only", sheaf_close(store) == SHEAF_OK);
    CHECK("open read-write", sheaf_open(path, SHEAF_OPEN_READ_WRITE, &rw) == SHEAF_OK && rw != 0);
    CHECK("open read-only beside it", sheaf_open(path, SHEAF_OPEN_READ_ONLY, &store) == SHEAF_OK && store != 0 && store != rw);
    CHECK("the read-only handle still refuses writes", sheaf_append_behaviours(store, 4, wusers, witems, wts, wlabels, NULL, &appended) == SHEAF_E_READ_ONLY);
    CHECK("append", sheaf_append_behaviours(rw, 4, wusers, witems, wts, wlabels, NULL, &appended) == SHEAF_OK && appended == 3);
    CHECK("append again adds nothing", sheaf_append_behaviours(rw, 4, wusers, witems, wts, wlabels, NULL, &appended) == SHEAF_OK && appended == 0);
    float bad_labels[2] = {1.0f, 0.0f / 0.0f};
    uint64_t bad_items[2] = {9, 9};
    int64_t bad_ts[2] = {400, 500};
    CHECK("append NaN label", sheaf_append_behaviours(rw, 2, wusers, bad_items, bad_ts, bad_labels, NULL, &appended) == SHEAF_E_INVALID_ARGUMENT
                                  && strstr(sheaf_last_error_message(), "row 1") != NULL);
    int64_t far_ts[1] = {INT64_MAX};
    CHECK("append timestamp out of range", sheaf_append_behaviours(rw, 1, wusers, bad_items, far_ts, NULL, NULL, &appended) == SHEAF_E_INVALID_ARGUMENT);
    CHECK("append null items", sheaf_append_behaviours(rw, 1, wusers, NULL, wts, NULL, NULL, &appended) == SHEAF_E_INVALID_ARGUMENT);
    int64_t wn = 0;
    CHECK("refused appends wrote nothing", sheaf_history_length(store, 424242u, &wn) == SHEAF_OK && wn == 3);
    uint64_t wids[3];
    int64_t wtimes[3];
    float wlab[3];
    CHECK("appended history", sheaf_read_history(store, 424242u, 3, wids, wtimes, wlab, NULL, &count) == SHEAF_OK && count == 3);
    for (int64_t i = 0; i < count; i++) printf("appended %" PRIu64 " %" PRId64 " %.9g\n", wids[i], wtimes[i], wlab[i]);

    float *put = calloc((size_t)(2 * d), sizeof *put);
    for (int64_t i = 0; i < 2 * d; i++) put[i] = (float)(i % 5) - 1.5f;
    uint64_t put_ids[2] = {900, 901};
    CHECK("put items read-only", sheaf_put_items(store, 2, put_ids, put) == SHEAF_E_READ_ONLY);
    CHECK("put items", sheaf_put_items(rw, 2, put_ids, put) == SHEAF_OK);
    float *got = calloc((size_t)(2 * d), sizeof *got);
    CHECK("read put items", sheaf_read_items(store, put_ids, 2, got) == SHEAF_OK);
    for (int64_t i = 0; i < 2 * d; i++) printf("put %.9g\n", got[i]);
    uint64_t twice[2] = {902, 902};
    CHECK("put repeated id", sheaf_put_items(rw, 2, twice, put) == SHEAF_E_INVALID_ARGUMENT && strstr(sheaf_last_error_message(), "twice") != NULL);
    put[d + 1] = 1.0f / 0.0f;
    uint64_t fresh[2] = {903, 904};
    CHECK("put infinite value", sheaf_put_items(rw, 2, fresh, put) == SHEAF_E_INVALID_ARGUMENT && strstr(sheaf_last_error_message(), "row 1") != NULL);
    CHECK("refused puts wrote nothing", sheaf_read_items(store, fresh, 1, got) == SHEAF_E_MISSING_ITEMS);
    CHECK("close read-write", sheaf_close(rw) == SHEAF_OK);
    free(put); free(got);

    /* Bad input: every one an error code, none a crash. */
    CHECK("unknown user", sheaf_history_length(store, 987654321u, &n) == SHEAF_E_NOT_FOUND);
    CHECK("unknown user read", sheaf_read_history(store, 987654321u, 10, ids, NULL, NULL, NULL, &count) == SHEAF_E_NOT_FOUND);
    CHECK("null count", sheaf_read_history(store, user, n, ids, NULL, NULL, NULL, NULL) == SHEAF_E_INVALID_ARGUMENT);
    CHECK("null out", sheaf_dimension(store, NULL) == SHEAF_E_INVALID_ARGUMENT);
    CHECK("negative capacity", sheaf_read_history(store, user, -1, ids, NULL, NULL, NULL, &count) == SHEAF_E_INVALID_ARGUMENT);
    CHECK("capacity past addressing", sheaf_read_history(store, user, INT64_MAX, ids, NULL, NULL, emb, &count) == SHEAF_E_INVALID_ARGUMENT);
    CHECK("null users", sheaf_read_histories(store, NULL, 2, 10, offsets, NULL, NULL, NULL, NULL, &count) == SHEAF_E_INVALID_ARGUMENT);
    CHECK("null ids", sheaf_read_items(store, NULL, 2, emb) == SHEAF_E_INVALID_ARGUMENT);
    CHECK("bad flags", sheaf_open(path, 7, &store) == SHEAF_E_INVALID_ARGUMENT);
    sheaf_handle missing = 0;
    CHECK("missing store", sheaf_open("/nonexistent/sheaf-store", SHEAF_OPEN_READ_ONLY, &missing) == SHEAF_E_STORE && missing == 0
                               && strlen(sheaf_last_error_message()) > 0);
    printf("message %s\n", sheaf_last_error_message());
    CHECK("made-up handle", sheaf_dimension(424242, &d) == SHEAF_E_BAD_HANDLE);
    CHECK("close", sheaf_close(store) == SHEAF_OK);
    CHECK("closed handle", sheaf_dimension(store, &d) == SHEAF_E_BAD_HANDLE);
    CHECK("close twice", sheaf_close(store) == SHEAF_E_BAD_HANDLE);

    free(ids); free(ts); free(labels); free(emb); free(ids2); free(bids); free(bemb);
    printf("failures %d\n", failures);
    return failures == 0 ? 0 : 1;
}
