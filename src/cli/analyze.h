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
 * The readers are the library's (ingest/recording.h).
 */
#ifndef CLARITY_CLI_ANALYZE_H
#define CLARITY_CLI_ANALYZE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ingest/recording.h"

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
