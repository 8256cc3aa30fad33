/* Reads a Sheaf store through the C API (sheaf.h) and prints what it read, one fact per line, for
 * CAPITests to compare with the Swift API on the same store; also exercises the error paths.
 *
 *   read_store STORE USER ITEM...
 *
 * Exit status 0 when every call behaved as documented (each check prints "ok NAME" or "FAIL NAME");
 * the values it read are printed as "history ...", "embedding ...", "items ..." lines. */
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
