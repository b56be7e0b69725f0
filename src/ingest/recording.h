/*
 * recording.h — research actigraphy recordings: readers and their epochs as
 * samples (issue #20; the readers came from `clarity analyze`, issue #18).
 *
 * Every reader takes the file's bytes (not NUL-terminated; the ActiGraph
 * .agd reader takes a path, since the file is a SQLite database) and gives
 * a minute series plus the same span at the recording's own epoch. Times in
 * a recording are its local wall clock: the series are numbered in local
 * minutes/seconds (analysis/series.h numbering), and a UTC offset is only
 * needed to store the epochs as samples (recording_samples_next).
 *
 * Used by `clarity analyze` (cli/analyze.c) and the recording upload
 * (api/recordings.c), so both read a file the same way. Pure parsing: no
 * I/O except recording_agd_read, which opens the file read-only.
 */
#ifndef CLARITY_INGEST_RECORDING_H
#define CLARITY_INGEST_RECORDING_H

#include <stddef.h>
#include <stdint.h>

#include "core/metric_types.h"
#include "ingest/upload.h"

#define RECORDING_MAX_FILE_BYTES (512u * 1024u * 1024u)
#define RECORDING_MAX_ROWS (60u * 24u * 400u * 4u) /* 400 days of 15-s epochs */

/*
 * A minute series read from a file, and the same span at the recording's
 * own epoch (pyActigraphy's conventions work per epoch): one allocation,
 * the caller frees `values` with free() (epoch_values points into it).
 */
struct recording_series {
    double *values; /* n minutes, NaN = no data */
    size_t n;
    int64_t start_local_min; /* local minute of values[0] (series.h numbering) */
    size_t rows;             /* data rows read */
    double *epoch_values;    /* epoch_n epochs of epoch_s seconds, NaN = no data */
    size_t epoch_n;
    unsigned epoch_s;
    int64_t start_local_s; /* local second of epoch_values[0] (start_local_min * 60 numbering) */
};

/*
 * Parse CSV text (len bytes, need not be NUL-terminated). epoch_s is the
 * epoch length for spreading rows longer than a minute (0 = 60). window_min
 * (0 = all) keeps only the last window_min minutes. Returns 0, or -1 with a
 * one-line message in err (naming the line) and *out untouched.
 */
int recording_csv_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct recording_series *out,
                        char *err, size_t errlen);

/* Parse an Actiwatch .AWD file; epoch_s 0 = from the header's epoch code. */
int recording_awd_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct recording_series *out,
                        char *err, size_t errlen);

/*
 * Research formats (issue #18). Each returns 0, or -1 with a one-line
 * message naming the line (or item) and the reason. epoch_s 0 = the file's
 * own epoch; window_min as above. Times are the recording's local clock.
 *  - Philips Respironics Actiware CSV export (the .RPX/CSV export, English
 *    UK/US, French, German): the epoch-by-epoch section's Date, Time and
 *    Activity columns; "NaN"/"NAN"/"kZ" are missing; decimal commas; the
 *    date order is decided from the data (a part above 12, else the first
 *    change of date being one day; default day-first).
 *  - Condor ActTrust (.txt report): the PIM column, DD/MM/YYYY HH:MM:SS.
 *  - CamNtech MotionWatch (.mtn XML): =StartTime and the motion channel.
 *  - ActiLife CSV: the 10-line ActiGraph header (Start Time, Start Date in
 *    the header's "date format", Epoch Period), then Axis1 (the first
 *    column, or the one named Axis1).
 *  - ActiGraph .agd (SQLite): settings.epochlength, data.dataTimestamp
 *    (.NET ticks, local) and axis1.
 */
int recording_rpx_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct recording_series *out,
                        char *err, size_t errlen);
int recording_atr_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct recording_series *out,
                        char *err, size_t errlen);
int recording_mtn_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct recording_series *out,
                        char *err, size_t errlen);
int recording_actilife_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min,
                             struct recording_series *out, char *err, size_t errlen);
int recording_agd_read(const char *path, unsigned epoch_s, size_t window_min, struct recording_series *out, char *err,
                       size_t errlen);

enum recording_format {
    RECORDING_FMT_CSV = 0,
    RECORDING_FMT_AWD,
    RECORDING_FMT_RPX,
    RECORDING_FMT_ATR,
    RECORDING_FMT_MTN,
    RECORDING_FMT_ACTILIFE,
    RECORDING_FMT_AGD,
};

/* The reader for a file: by extension (.awd, .agd, .mtn), then by its
 * first 512 bytes (Actiware, Condor, ActiLife, MotionWatch); else CSV. */
enum recording_format recording_format_detect(const char *name, const char *text, size_t len);

/* Short name of a format ("csv", "awd", "actiware", "acttrust",
 * "motionwatch", "actilife", "agd") and a label for people. */
const char *recording_format_name(enum recording_format f);
const char *recording_format_label(enum recording_format f);

/* The canonical metric type of a recording's epochs: activity counts of
 * one epoch (unit "count"), as the device recorded them. */
#define RECORDING_METRIC_TYPE HK_T_ACTIVITY_COUNT

/* Epochs converted per call of recording_samples_next (bounded memory:
 * a store_sample is ~600 bytes, and a year of 15-s epochs is 2.1 million). */
#define RECORDING_SAMPLE_BATCH 5000u

struct recording_sample_opts {
    const char *user_id;   /* owner of the samples (required) */
    const char *source;    /* the samples' source (required): the format's label */
    int32_t tz_offset_min; /* the recording clock's UTC offset, -1080..1080 */
};

/*
 * The next epochs of s as samples, into out (appended; the caller frees
 * or reuses it): each epoch with a value from *next on becomes one
 * RECORDING_METRIC_TYPE sample [start, start + epoch) in UTC (local time
 * minus tz_offset_min), value the count, payload {"tz_offset_min", "epoch_s"},
 * and a content key as dedup key (apple_export_content_key of the type,
 * times, value, unit and source), so uploading the same recording again
 * stores nothing new. Without an epoch series (recording_series.epoch_n 0:
 * rows too sparse for their epoch) the minute series is used, at 60 s.
 * Stops after max samples or at the end; *next is where to continue
 * (recording_samples_total when done). 0, INGEST_EINVAL or INGEST_ENOMEM.
 */
int recording_samples_next(const struct recording_series *s, const struct recording_sample_opts *o, size_t *next,
                           size_t max, struct upload_samples *out);

/* The number of slots recording_samples_next walks (epochs or minutes). */
size_t recording_samples_total(const struct recording_series *s);

/* How many samples recording_samples_next makes in all (slots with a value). */
size_t recording_samples_count(const struct recording_series *s);

#endif
