/* benchfile.h: reading a body file whole, for the bench tools (hb-pace, hb-normbench). */
#ifndef HB_BENCHFILE_H
#define HB_BENCHFILE_H

#include <stdio.h>
#include <stdlib.h>

/* The file's bytes (malloc'd, NUL-terminated; the caller frees them) and their count in *len,
 * or NULL. */
static inline char *bench_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (data = malloc((size_t)n + 1)) != NULL && fread(data, 1, (size_t)n, f) == (size_t)n) {
        data[n] = '\0';
        *len = (size_t)n;
    } else {
        free(data);
        data = NULL;
    }
    fclose(f);
    return data;
}

#endif
