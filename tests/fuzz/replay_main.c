/*
 * replay_main.c - a stand-in for libFuzzer's driver in builds without it (gcc, release): feeds
 * every file of the corpus directories given on the command line to LLVMFuzzerTestOneInput,
 * then a fixed number of pseudo-random inputs and random mutations of the corpus files. It
 * finds crashes only by luck; the libFuzzer build (WEFT_FUZZ=ON) is the real search.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t run_file(const char *path, uint8_t *mut)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return 0;
    }
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    for (int round = 0; round < 200 && n > 0; round++) {
        memcpy(mut, buf, n);
        size_t flips = 1 + next_rand() % 8;
        for (size_t i = 0; i < flips; i++) {
            mut[next_rand() % n] = (uint8_t)next_rand();
        }
        size_t len = (round % 4 == 0) ? next_rand() % (n + 1) : n;
        LLVMFuzzerTestOneInput(mut, len);
    }
    return 1;
}

int main(int argc, char **argv)
{
    static uint8_t mut[1 << 20];
    size_t files = 0;
    for (int a = 1; a < argc; a++) {
        DIR *d = opendir(argv[a]);
        if (d == NULL) {
            files += run_file(argv[a], mut);
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') {
                continue;
            }
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[a], e->d_name);
            files += run_file(path, mut);
        }
        closedir(d);
    }
    for (int i = 0; i < 5000; i++) {
        size_t len = next_rand() % 512;
        for (size_t j = 0; j < len; j++) {
            mut[j] = (uint8_t)next_rand();
        }
        LLVMFuzzerTestOneInput(mut, len);
    }
    printf("replayed %zu corpus files with mutations, and 5000 random inputs\n", files);
    return 0;
}
