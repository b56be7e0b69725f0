/*
 * analyze.h — `clarity analyze`: the analysis library on a researcher's file.
 *
 *   clarity analyze FILE [--format json|text] [--window DURATION]
 *                        [--scorer cole-kripke|cole-kripke-actigraph|sadeh]
 *                        [--no-webster] [--bin MINUTES] [--epoch SECONDS]
 *                        [--input counts|steps] [--nonwear choi|off]
 *                        [--epochs FILE] [--actogram FILE]
 *                        [--conventions clarity|pyactigraphy]
 *   clarity analyze FOLDER [same options but --epochs/--actogram]
 *
 * A FOLDER gives one CSV summary row per .awd/.csv recording in it (sorted
 * by name; a malformed file gets a row with its error), with a progress
 * line per file on stderr.
 *
 * FILE is a CSV of `timestamp,value` rows (RFC 3339 with or without offset —
 * without one the time is the local wall clock — one row per epoch, optional
 * header row, `#` comments) or an Actiwatch .AWD file (7 header lines: name,
 * start date dd-Mon-yyyy, start time HH:MM[:SS], epoch code, age, serial, sex;
 * then one count per line, optionally followed by `,M` markers). Epochs are
 * brought to one minute (shorter epochs summed, longer ones spread evenly;
 * the recording's own epochs are kept too, for --conventions pyactigraphy:
 * a CSV's epoch is --epoch, else its rows' smallest step dividing a minute),
 * the last DURATION (e.g. 7d, 36h; default: everything up to 400 days) is
 * analysed and the full report printed.
 *
 * Exit status: 0 ok, 1 failure (unreadable or malformed file), 2 usage error.
 * The parsing functions are exported for the unit tests.
 */
#ifndef CLARITY_CLI_ANALYZE_H
#define CLARITY_CLI_ANALYZE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ANALYZE_MAX_FILE_BYTES (512u * 1024u * 1024u)
#define ANALYZE_MAX_ROWS (60u * 24u * 400u * 4u) /* 400 days of 15-s epochs */

/*
 * A minute series read from a file, and the same span at the recording's
 * own epoch (pyActigraphy's conventions work per epoch): one allocation,
 * the caller frees `values` with free() (epoch_values points into it).
 */
struct analyze_series {
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
int analyze_csv_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct analyze_series *out,
                      char *err, size_t errlen);

/* Parse an Actiwatch .AWD file; epoch_s 0 = from the header's epoch code. */
int analyze_awd_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct analyze_series *out,
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
int analyze_rpx_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct analyze_series *out,
                      char *err, size_t errlen);
int analyze_atr_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct analyze_series *out,
                      char *err, size_t errlen);
int analyze_mtn_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct analyze_series *out,
                      char *err, size_t errlen);
int analyze_actilife_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min,
                           struct analyze_series *out, char *err, size_t errlen);
int analyze_agd_read(const char *path, unsigned epoch_s, size_t window_min, struct analyze_series *out, char *err,
                     size_t errlen);

enum analyze_format {
    ANALYZE_FMT_CSV = 0,
    ANALYZE_FMT_AWD,
    ANALYZE_FMT_RPX,
    ANALYZE_FMT_ATR,
    ANALYZE_FMT_MTN,
    ANALYZE_FMT_ACTILIFE,
    ANALYZE_FMT_AGD,
};

/* The reader for a file: by extension (.awd, .agd, .mtn), then by its
 * first 512 bytes (Actiware, Condor, ActiLife, MotionWatch); else CSV. */
enum analyze_format analyze_format_detect(const char *name, const char *text, size_t len);

/* Parse a duration "7d", "36h", "90m" into minutes; -1 when malformed. */
int analyze_duration_parse(const char *s, size_t *minutes);

struct analysis_report;

/*
 * Per-epoch CSV (--epochs): "time,value,wear,sleep", one row per minute of
 * the analysed series: local time, the value (empty when missing), wear (1
 * worn, 0 masked as non-wear, empty without data) and sleep (1 sleep or
 * estimated rest, 0 wake, empty unknown). Returns 0 or -1 on a write error.
 */
int analyze_epochs_write(FILE *f, int64_t start_local_min, const double *values, size_t n,
                         const struct analysis_report *r);

/*
 * Double-plotted actogram as SVG (--actogram), drawn by Clarity: one row per
 * local day starting at midnight, each row showing that day and the next
 * (48 h); bars are 5-minute mean activity scaled to the largest, sleep/rest
 * shaded blue and non-wear grey. Returns 0 or -1.
 */
int analyze_actogram_write(FILE *f, int64_t start_local_min, const double *values, size_t n,
                           const struct analysis_report *r);

/* The subcommand; argv[0] is "analyze". */
int cli_analyze(int argc, char **argv);

#endif
