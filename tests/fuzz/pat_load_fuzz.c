/*
 * pat_load_fuzz.c — libFuzzer driver for the PAT weights loader: arbitrary
 * bytes written to a file and opened with pat_model_load and
 * pat_head_load (libhdf5 underneath, then Clarity's own shape and dataset
 * checks). Weights are configuration, not user uploads, and PAT_MODEL_SHA256
 * pins them before any parsing; this driver covers the checks after the
 * file opens and libhdf5's handling of what it is given. Seeds: a valid task
 * head (96x128x1 dense layers, as pat_cli_test writes), a file with wrong
 * shapes, truncations of both, and bytes that are not HDF5.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ml/pat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/clarity-pat-fuzz-%d.h5", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return 0;
    if (size > 0 && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return 0;
    }
    fclose(f);
    struct pat_model *m = NULL;
    char err[256];
    if (pat_model_load(path, NULL, &m, err, sizeof err) == PAT_OK)
        pat_model_free(m);
    struct pat_head *h = NULL;
    if (pat_head_load(path, NULL, &h, err, sizeof err) == PAT_OK)
        pat_head_free(h);
    unlink(path);
    return 0;
}
