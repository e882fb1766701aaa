/*
 * fuzz_st_log_replay.c - feeds arbitrary bytes to the metrics log replay (st__metrics_replay),
 * the one decoder that reads what a crash may have left behind, then reads the head back
 * through st_select. A record must be applied or refused (WF_E_CORRUPT), never crash or read
 * outside its bytes. The store lives in a temporary directory and is recreated every 256
 * inputs so that the head stays small.
 */
#include "st_internal.h"

#include "wf_log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static st_store_t *store;
static unsigned calls;

static void remove_store(void)
{
    st_store_close(store);
    store = NULL;
    if (dir[0] == '\0') {
        return;
    }
    static const char *const files[] = {"weft.db", "weft.db-wal", "weft.db-shm"};
    char path[128];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    dir[0] = '\0';
}

static void fresh_store(void)
{
    remove_store();
    snprintf(dir, sizeof(dir), "/tmp/fuzz_st_log_replay.XXXXXX");
    if (mkdtemp(dir) == NULL) {
        abort();
    }
    st_options_t o;
    st_options_default(&o);
    o.dir = dir;
    if (st_store_open(&o, &store) != 0) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (store == NULL) {
        wf_log_set_level(WF_ERROR);
        atexit(remove_store);
    }
    if (store == NULL || calls++ % 256 == 0) {
        fresh_store();
    }
    st__metrics_replay(store, (int64_t)calls, data, size);
    st_matcher_t *m = NULL;
    if (st_matcher_new(ST_MATCH_RE, WF_STR_LIT("__name__"), WF_STR_LIT(".+"), &m, NULL, 0) != 0) {
        abort();
    }
    const st_matcher_t *ms[1] = {m};
    st_series_set_t *set = NULL;
    if (st_select(store, ms, 1, INT64_MIN, INT64_MAX, &set) == 0) {
        for (size_t i = 0; i < st_series_set_len(set) && i < 8; i++) {
            const int64_t *ts;
            const double *v;
            size_t n;
            if (st_series_set_samples(set, i, &ts, &v, &n) == 0) {
                for (size_t j = 1; j < n; j++) {
                    if (ts[j] <= ts[j - 1]) {
                        abort(); /* the head must stay strictly ordered */
                    }
                }
            }
        }
    }
    st_series_set_free(set);
    st_matcher_free(m);
    return 0;
}
