/*
 * analyze_test.c — file parsing for `clarity analyze` (the readers in src/ingest/recording.c):
 * CSV and Actiwatch AWD to minute series, epochs, windows, errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "analysis/analysis.h"
#include "cli/analyze.h"

#include <stdio.h>
#include <sqlite3.h>
#include <unistd.h>

/* 2026-01-10T00:00 local as a local minute: 20463 days * 1440. */
#define JAN10 (20463LL * 1440)

static void test_csv_offsets_and_header(void **st)
{
    (void)st;
    /* header row, RFC 3339 with offset (local = wall clock of the offset),
     * CRLF, a comment and a missing value */
    const char *csv = "timestamp,count\r\n"
                      "2026-01-10T10:00:00+01:00,5\r\n"
                      "# comment\n"
                      "2026-01-10T10:01:00+01:00,NA\n"
                      "2026-01-10T09:02:00Z,7\n";
    struct recording_series s;
    char err[128] = "";
    assert_int_equal(recording_csv_parse(csv, strlen(csv), 0, 0, &s, err, sizeof(err)), 0);
    /* 09:02Z is 09:02 local (offset 0): before 10:00 local, so it starts */
    assert_int_equal(s.start_local_min, JAN10 + 9 * 60 + 2);
    assert_int_equal(s.n, 60); /* 09:02 .. 10:01 inclusive */
    assert_true(s.values[0] == 7);
    assert_true(s.values[58] == 5);
    assert_true(isnan(s.values[59]));
    assert_int_equal(s.rows, 3);
    free(s.values);
}

/* Naive timestamps are local; 30-s epochs add up per minute; --window keeps
 * the last minutes. */
static void test_csv_naive_subminute_window(void **st)
{
    (void)st;
    const char *csv = "2026-01-10 23:59:00,1\n2026-01-10 23:59:30,2\n"
                      "2026-01-11 00:00:00,4\n2026-01-11 00:00:30,8\n2026-01-11 00:01:00,16\n";
    struct recording_series s;
    char err[128];
    assert_int_equal(recording_csv_parse(csv, strlen(csv), 30, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, 3);
    assert_true(s.values[0] == 3 && s.values[1] == 12 && s.values[2] == 16);
    free(s.values);
    assert_int_equal(recording_csv_parse(csv, strlen(csv), 30, 2, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.start_local_min, JAN10 + 1440);
    free(s.values);

    /* without --epoch the rows' step (30 s) is the epoch series' epoch; the
     * minute series is the same */
    assert_int_equal(recording_csv_parse(csv, strlen(csv), 0, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, 3);
    assert_true(s.values[0] == 3 && s.values[1] == 12 && s.values[2] == 16);
    assert_int_equal(s.epoch_s, 30);
    assert_int_equal(s.epoch_n, 5);
    assert_int_equal(s.start_local_s, (JAN10 + 1439) * 60);
    assert_true(s.epoch_values[1] == 2 && s.epoch_values[4] == 16);
    free(s.values);

    /* a 1-s step then a month's gap: the epoch series would exceed the row
     * bound, so there is none (the minute series stands) */
    const char *sparse = "2026-01-10 00:00:00,1\n2026-01-10 00:00:01,2\n2026-02-09 00:00:00,4\n";
    assert_int_equal(recording_csv_parse(sparse, strlen(sparse), 0, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, 30 * 1440 + 1);
    assert_int_equal(s.epoch_s, 1);
    assert_int_equal(s.epoch_n, 0);
    assert_null(s.epoch_values);
    free(s.values);
}

/* Errors name the line; empty input has no rows; bad epochs are refused. */
static void test_csv_errors(void **st)
{
    (void)st;
    struct recording_series s;
    char err[128];
    const char *bad = "2026-01-10T00:00:00Z,1\n2026-02-30T00:00:00Z,2\n";
    assert_int_equal(recording_csv_parse(bad, strlen(bad), 0, 0, &s, err, sizeof(err)), -1);
    assert_string_equal(err, "line 2: expected `timestamp,value`");
    assert_int_equal(recording_csv_parse("", 0, 0, 0, &s, err, sizeof(err)), -1);
    assert_string_equal(err, "no data rows");
    const char *inf = "2026-01-10T00:00:00Z,1e999\n";
    assert_int_equal(recording_csv_parse(inf, strlen(inf), 0, 0, &s, err, sizeof(err)), -1);
    assert_int_equal(recording_csv_parse(bad, 10, 7, 0, &s, err, sizeof(err)), -1);
    /* two rows 500 days apart exceed the 400-day cap without a window */
    const char *far = "2026-01-10T00:00:00Z,1\n2027-05-25T00:00:00Z,1\n";
    assert_int_equal(recording_csv_parse(far, strlen(far), 0, 0, &s, err, sizeof(err)), -1);
    assert_int_equal(recording_csv_parse(far, strlen(far), 0, 1440, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, 1440);
    free(s.values);
}

/* AWD: 7 header lines, epoch code 2 = 30 s, markers ignored; counts of two
 * epochs add to one minute. Start 10-Jan-2026 22:00. */
static void test_awd(void **st)
{
    (void)st;
    const char *awd = "subject\n10-Jan-2026\n22:00\n2\n40\nSN123\nF\n"
                      "1\n2 , M\n3\n4\n5\n";
    struct recording_series s;
    char err[128];
    assert_int_equal(recording_awd_parse(awd, strlen(awd), 0, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.start_local_min, JAN10 + 22 * 60);
    assert_int_equal(s.n, 3);
    assert_true(s.values[0] == 3 && s.values[1] == 7 && s.values[2] == 5);
    free(s.values);

    /* the same span at the recording's own epoch, for pyActigraphy's
     * conventions: three 30-s epochs kept as they are */
    assert_int_equal(recording_awd_parse(awd, strlen(awd), 0, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.epoch_s, 30);
    assert_int_equal(s.epoch_n, 5);
    assert_int_equal(s.start_local_s, (JAN10 + 22 * 60) * 60);
    assert_true(s.epoch_values[0] == 1 && s.epoch_values[1] == 2 && s.epoch_values[4] == 5);
    free(s.values);
    /* a window keeps the epochs from the window's first minute */
    assert_int_equal(recording_awd_parse(awd, strlen(awd), 0, 2, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.epoch_n, 3);
    assert_int_equal(s.start_local_s, (JAN10 + 22 * 60 + 1) * 60);
    assert_true(s.epoch_values[0] == 3 && s.epoch_values[2] == 5);
    free(s.values);

    /* 2-minute epochs (code 8): each count is spread over two minutes */
    const char *awd2 = "s\n10-Jan-2026\n22:00\n8\n40\nSN\nF\n10\n20\n";
    assert_int_equal(recording_awd_parse(awd2, strlen(awd2), 0, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, 4);
    assert_true(s.values[0] == 5 && s.values[1] == 5 && s.values[3] == 10);
    assert_int_equal(s.epoch_s, 120);
    assert_int_equal(s.epoch_n, 2);
    assert_true(s.epoch_values[0] == 10 && s.epoch_values[1] == 20);
    free(s.values);

    const char *short_hdr = "s\n10-Jan-2026\n";
    assert_int_equal(recording_awd_parse(short_hdr, strlen(short_hdr), 0, 0, &s, err, sizeof(err)), -1);
    const char *bad_date = "s\n31-Feb-2026\n22:00\n4\n1\n1\nF\n1\n";
    assert_int_equal(recording_awd_parse(bad_date, strlen(bad_date), 0, 0, &s, err, sizeof(err)), -1);
    const char *bad_code = "s\n10-Jan-2026\n22:00\n99\n1\n1\nF\n1\n";
    assert_int_equal(recording_awd_parse(bad_code, strlen(bad_code), 0, 0, &s, err, sizeof(err)), -1);
    assert_int_equal(recording_awd_parse(bad_code, strlen(bad_code), 60, 0, &s, err, sizeof(err)), 0);
    free(s.values);
    const char *bad_count = "s\n10-Jan-2026\n22:00\n4\n1\n1\nF\n1\nx\n";
    assert_int_equal(recording_awd_parse(bad_count, strlen(bad_count), 0, 0, &s, err, sizeof(err)), -1);
    assert_string_equal(err, "AWD line 9: expected a count");

    /* The marker written as "71 M" (6 of pyActigraphy's 9 example
     * recordings) is a count of 71 with a marker, not a malformed line. */
    const char *space_marker = "s\n10-Jan-2026\n22:00\n4\n1\n1\nF\n10\n71 M\n5\n";
    assert_int_equal(recording_awd_parse(space_marker, strlen(space_marker), 0, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, 3);
    assert_true(s.values[0] == 10 && s.values[1] == 71 && s.values[2] == 5);
    free(s.values);
    /* a number after the space is still an error, with the line */
    const char *two_numbers = "s\n10-Jan-2026\n22:00\n4\n1\n1\nF\n10\n71 5\n";
    assert_int_equal(recording_awd_parse(two_numbers, strlen(two_numbers), 0, 0, &s, err, sizeof(err)), -1);
    assert_string_equal(err, "AWD line 9: expected a count");
}

static void test_duration(void **st)
{
    (void)st;
    size_t m;
    assert_int_equal(analyze_duration_parse("7d", &m), 0);
    assert_int_equal(m, 10080);
    assert_int_equal(analyze_duration_parse("36h", &m), 0);
    assert_int_equal(m, 2160);
    assert_int_equal(analyze_duration_parse("90m", &m), 0);
    assert_int_equal(m, 90);
    assert_int_equal(analyze_duration_parse("7", &m), -1);
    assert_int_equal(analyze_duration_parse("0d", &m), -1);
    assert_int_equal(analyze_duration_parse("-1d", &m), -1);
    assert_int_equal(analyze_duration_parse("401d", &m), -1);
    assert_int_equal(analyze_duration_parse("7dd", &m), -1);
}

/* The command: usage errors exit 2, unreadable files 1. */
static void test_command_exit_codes(void **st)
{
    (void)st;
    char *a1[] = {"analyze", "--bogus", NULL};
    assert_int_equal(cli_analyze(2, a1), 2);
    char *a2[] = {"analyze", NULL};
    assert_int_equal(cli_analyze(1, a2), 2);
    char *a3[] = {"analyze", "x.csv", "--bin", "7", NULL};
    assert_int_equal(cli_analyze(4, a3), 2);
    char *a4[] = {"analyze", "/nonexistent/clarity.csv", NULL};
    assert_int_equal(cli_analyze(2, a4), 1);
}

/* --epochs and --actogram on a hand-made two days: counts 100 by day
 * (07:00-23:00), 5 at night, and 2 hours of exact zeros from 12:00 on day 2
 * (Choi non-wear: >= 90 zero minutes). Start 10-Jan-2026 12:00. */
static void test_epochs_and_actogram(void **st)
{
    (void)st;
    enum { N = 2 * 1440 };
    static double v[N];
    for (size_t i = 0; i < N; i++) {
        size_t clock = (720 + i) % 1440;
        v[i] = (clock >= 420 && clock < 1380) ? 100.0 : 5.0;
    }
    for (size_t i = 1440; i < 1560; i++)
        v[i] = 0.0;
    v[5] = NAN;
    struct analysis_input in = {v, N, 720, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL};
    struct analysis_params p = analysis_params_default();
    size_t wsz = analysis_workspace_size(N, 60);
    void *ws = malloc(wsz);
    struct analysis_report r;
    assert_int_equal(analysis_report_run(&in, &p, ws, wsz, &r), 0);

    char buf[256];
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(analyze_epochs_write(f, JAN10 + 720, v, N, &r), 0);
    rewind(f);
    assert_non_null(fgets(buf, sizeof(buf), f));
    assert_string_equal(buf, "time,value,wear,sleep\n");
    assert_non_null(fgets(buf, sizeof(buf), f));
    assert_string_equal(buf, "2026-01-10T12:00,100,1,0\n");
    int line = 1;
    while (fgets(buf, sizeof(buf), f)) {
        line++;
        if (line == 6)
            assert_string_equal(buf, "2026-01-10T12:05,,,\n"); /* missing minute */
        if (line == 1 + 12 * 60)                               /* 00:00: asleep at night */
            assert_string_equal(buf, "2026-01-11T00:00,5,1,1\n");
        if (line == 1441) /* 12:00 day 2: zeros, non-wear */
            assert_string_equal(buf, "2026-01-11T12:00,0,0,\n");
    }
    assert_int_equal(line, N);
    fclose(f);

    f = tmpfile();
    assert_int_equal(analyze_actogram_write(f, JAN10 + 720, v, N, &r), 0);
    long size = ftell(f);
    rewind(f);
    static char svg[1 << 20];
    assert_true(size > 0 && size < (long)sizeof(svg));
    size_t got = fread(svg, 1, (size_t)size, f);
    svg[got] = '\0';
    fclose(f);
    assert_int_equal(strncmp(svg, "<svg ", 5), 0);
    assert_non_null(strstr(svg, "</svg>\n"));
    /* three calendar days (10, 11, 12 Jan) are three rows, each 48 h wide */
    assert_non_null(strstr(svg, ">2026-01-10<"));
    assert_non_null(strstr(svg, ">2026-01-12<"));
    assert_non_null(strstr(svg, "fill=\"#cfe0f7\"")); /* sleep shading */
    assert_non_null(strstr(svg, "fill=\"#d9d9d9\"")); /* non-wear shading */
    assert_int_equal(analyze_actogram_write(NULL, JAN10, v, N, &r), -1);
    free(ws);
}

/* Folder mode: every recording gets a row; a malformed one fails the run
 * (exit 1) without stopping the others; --epochs refuses a folder. */
static void test_folder_mode(void **st)
{
    (void)st;
    char dir[] = "/tmp/clarity-analyze-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/a.csv", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("timestamp,value\n", f);
    for (int m = 0; m < 2 * 1440; m++)
        fprintf(f, "2026-01-%02dT%02d:%02d,%d\n", 10 + m / 1440, m / 60 % 24, m % 60, (m / 60 % 24) >= 7 ? 90 : 3);
    fclose(f);
    char *a1[] = {"analyze", dir, NULL};
    assert_int_equal(cli_analyze(2, a1), 0);
    snprintf(path, sizeof(path), "%s/b.awd", dir);
    f = fopen(path, "w");
    fputs("s\n10-Jan-2026\n22:00\n4\n1\n1\nF\n1\nx\n", f);
    fclose(f);
    assert_int_equal(cli_analyze(2, a1), 1);
    char *a2[] = {"analyze", dir, "--epochs", "/tmp/x.csv", NULL};
    assert_int_equal(cli_analyze(4, a2), 2);
    unlink(path);
    snprintf(path, sizeof(path), "%s/a.csv", dir);
    unlink(path);
    rmdir(dir);
}

/* Philips Actiware exports in three locales. English US (month first, 30-s
 * epochs: two epochs add to a minute), the marker section header (no
 * Activity column) skipped; French (day first decided by 13/03), "NAN"
 * missing; German dd.mm.yyyy with "kZ" and a quoted decimal comma in
 * another column. 11 March 2024 = day 19793. */
#define MAR11 (19793LL * 1440)
static void test_rpx_locales(void **st)
{
    (void)st;
    struct recording_series s;
    char err[160];
    const char *eng = "\xef\xbb\xbf\"Actiware Export File  (Version 05.00 )\"\r\n"
                      "\"Epoch Length:\",\"30\",\"seconds\",\"\"\r\n"
                      "\"Line\",\"Date\",\"Time\",\"Marker\",\"Interval Status\",\r\n"
                      "\"Line\",\"Date\",\"Time\",\"Activity\",\"Marker\",\"White Light\",\r\n\r\n"
                      "\"1\",\"03/11/2024\",\"23:59:00\",\"10\",\"0\",\"1.5\",\r\n"
                      "\"2\",\"03/11/2024\",\"23:59:30\",\"5\",\"0\",\"1.5\",\r\n"
                      "\"3\",\"03/12/2024\",\"00:00:00\",\"NaN\",\"0\",\"1.5\",\r\n"
                      "\"4\",\"03/12/2024\",\"00:00:30\",\"7\",\"0\",\"1.5\",\r\n";
    assert_int_equal(recording_rpx_parse(eng, strlen(eng), 0, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.start_local_min, MAR11 + 23 * 60 + 59);
    assert_int_equal(s.n, 2);
    assert_true(s.values[0] == 15 && s.values[1] == 7);
    free(s.values);

    const char *fr = "\"Fichier d'exportation Actiware (Version 05.00)\"\n"
                     "\"Longueur de la p\xc3\xa9riode :\",\"60\",\"secondes\",\"(1 minute)\"\n"
                     "\"Ligne\",\"Secondes\",\"Date\",\"Heure\",\"Activit\xc3\xa9\",\"Marqueur\",\n"
                     "\"1\",\"0\",\"12/03/2024\",\"23:59:00\",\"4\",\"0\",\n"
                     "\"2\",\"60\",\"13/03/2024\",\"00:00:00\",\"NAN\",\"0\",\n";
    assert_int_equal(recording_rpx_parse(fr, strlen(fr), 0, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.start_local_min, MAR11 + 1440 + 23 * 60 + 59);
    assert_int_equal(s.n, 2);
    assert_true(s.values[0] == 4 && isnan(s.values[1]));
    free(s.values);

    const char *ger = "\"Actiware-Exportdatei (Version 05.00 )\"\n"
                      "\"Epochenl\xc3\xa4nge:\",\"60\",\"Sekunden\"\n"
                      "\"Zeile\",\"Datum\",\"Zeit\",\"Status\",\"Aktivit\xc3\xa4t\",\"Markierung\",\"Wei\xc3\x9f\"\n"
                      "1,11.03.2024,12:00:00,0,307,0,\"184,13\"\n"
                      "2,11.03.2024,12:01:00,0,kZ,0,\"2,35E+02\"\n";
    assert_int_equal(recording_rpx_parse(ger, strlen(ger), 0, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.start_local_min, MAR11 + 720);
    assert_true(s.values[0] == 307 && isnan(s.values[1]));
    free(s.values);

    /* errors name the line and the reason */
    const char *nodata = "\"Actiware Export File\"\n\"Line\",\"Date\",\"Time\",\"Marker\",\n";
    assert_int_equal(recording_rpx_parse(nodata, strlen(nodata), 0, 0, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no epoch-by-epoch data"));
    const char *baddate = "\"Line\",\"Date\",\"Time\",\"Activity\",\n\"1\",\"2024-03-11\",\"12:00:00\",\"3\",\n";
    assert_int_equal(recording_rpx_parse(baddate, strlen(baddate), 0, 0, &s, err, sizeof(err)), -1);
    assert_string_equal(err, "RPX line 2: expected a date like 04/07/2015 or 19.09.2019");
    const char *badval = "\"Line\",\"Date\",\"Time\",\"Activity\",\n\"1\",\"11/03/2024\",\"12:00:00\",\"x3\",\n";
    assert_int_equal(recording_rpx_parse(badval, strlen(badval), 0, 0, &s, err, sizeof(err)), -1);
    assert_string_equal(err, "RPX line 2: expected an activity count");
    const char *short_row = "\"Line\",\"Date\",\"Time\",\"Activity\",\n\"1\",\"11/03/2024\"\n";
    assert_int_equal(recording_rpx_parse(short_row, strlen(short_row), 0, 0, &s, err, sizeof(err)), -1);
    assert_string_equal(err, "RPX line 2: expected 4 columns, got 2");
}

/* Condor ActTrust: PIM column, day-first dates; MotionWatch: StartTime +
 * the motion channel (30-s epochs add per minute); ActiLife CSV: header
 * start and epoch, Axis1 column; each with an error case. */
static void test_acttrust_mtn_actilife(void **st)
{
    (void)st;
    struct recording_series s;
    char err[160];
    const char *atr = "+-------------+ Condor Instruments Report +-------------+\n"
                      "INTERVAL : 60\n+------+\n"
                      "DATE/TIME;MS;EVENT;PIM;PIMn\n"
                      "13/03/2024 08:00:00;0;0;1851;30.85\n"
                      "13/03/2024 08:01:00;0;0;8;0.13\n";
    assert_int_equal(recording_atr_parse(atr, strlen(atr), 0, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.start_local_min, MAR11 + 2 * 1440 + 480);
    assert_true(s.n == 2 && s.values[0] == 1851 && s.values[1] == 8);
    free(s.values);
    const char *atr_bad = "Condor Instruments\nDATE/TIME;PIM\n13/03/2024;5\n";
    assert_int_equal(recording_atr_parse(atr_bad, strlen(atr_bad), 0, 0, &s, err, sizeof(err)), -1);
    assert_string_equal(err, "ATR line 3: expected 'DD/MM/YYYY HH:MM:SS;...' with a PIM column");
    const char *atr_nopim = "Condor Instruments\nDATE/TIME;ZCM\n";
    assert_int_equal(recording_atr_parse(atr_nopim, strlen(atr_nopim), 0, 0, &s, err, sizeof(err)), -1);
    assert_string_equal(err, "ATR line 2: the data header has no PIM column");

    const char *mtn = "<motionfile><property><name>=StartTime</name><content>2024-03-11 12:00:00</content>"
                      "</property><channel><name>motion</name><epoch>30</epoch><data encoding=\"text\">1,2,\n3,4,"
                      "\n5</data></channel></motionfile>";
    assert_int_equal(recording_mtn_parse(mtn, strlen(mtn), 0, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.start_local_min, MAR11 + 720);
    assert_true(s.n == 3 && s.values[0] == 3 && s.values[1] == 7 && s.values[2] == 5);
    free(s.values);
    const char *mtn_bad = "<name>=StartTime</name><content>2024-03-11 12:00:00</content>"
                          "<channel><name>motion</name><epoch>60</epoch><data encoding=\"text\">1,x,3</data></channel>";
    assert_int_equal(recording_mtn_parse(mtn_bad, strlen(mtn_bad), 0, 0, &s, err, sizeof(err)), -1);
    assert_string_equal(err, "MTN: motion item 2: expected a count");
    assert_int_equal(recording_mtn_parse("<motionfile/>", 13, 0, 0, &s, err, sizeof(err)), -1);
    assert_string_equal(err, "MTN: no =StartTime property");

    const char *al = "------------ Data File Created By ActiGraph GT3X+ ActiLife v6.13.3 Firmware v2.5.0 date format "
                     "d/M/yyyy at 30 Hz  Filter Normal -----------\n"
                     "Serial Number: X\nStart Time 23:59:00\nStart Date 11/3/2024\n"
                     "Epoch Period (hh:mm:ss) 00:01:00\nDownload Time 10:00:00\nDownload Date 15/3/2024\n"
                     "Current Memory Address: 0\nCurrent Battery Voltage: 4.21     Mode = 12\n"
                     "--------------------------------------------------\n"
                     "Axis1,Axis2,Axis3\n120,5,5\n0,1,1\n";
    assert_int_equal(recording_actilife_parse(al, strlen(al), 0, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.start_local_min, MAR11 + 23 * 60 + 59);
    assert_true(s.n == 2 && s.values[0] == 120 && s.values[1] == 0);
    free(s.values);
    const char *al_bad = "------------ Data File Created By ActiGraph GT3X+ date format M/d/yyyy\n"
                         "Start Time 12:00:00\nStart Date 3/11/2024\n-----\n1\n";
    assert_int_equal(recording_actilife_parse(al_bad, strlen(al_bad), 0, 0, &s, err, sizeof(err)), -1);
    assert_string_equal(err, "ActiLife line 4: the header lacks Start Time, Start Date or Epoch Period");
    assert_int_equal(recording_actilife_parse("Axis1\n1\n", 8, 0, 0, &s, err, sizeof(err)), -1);
    assert_string_equal(err, "ActiLife line 1: expected '---- Data File Created By ActiGraph ...'");
}

/* ActiGraph .agd: an SQLite file made here with the two tables the reader
 * uses. Ticks: 2024-03-11T12:00 local = (1710158400 + 62135596800) * 10^7;
 * 30-s epochs add per minute. A file that is not SQLite is refused. */
static void test_agd(void **st)
{
    (void)st;
    char path[] = "/tmp/clarity-agd-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE settings (settingID INTEGER, settingName TEXT, settingValue TEXT);"
                                  "INSERT INTO settings VALUES (1, 'epochlength', '30');"
                                  "CREATE TABLE data (dataTimestamp INTEGER, axis1 INTEGER, axis2 INTEGER);"
                                  "INSERT INTO data VALUES (638457552000000000, 10, 1);"
                                  "INSERT INTO data VALUES (638457552300000000, 20, 1);"
                                  "INSERT INTO data VALUES (638457552600000000, 5, 1);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    struct recording_series s;
    char err[200];
    assert_int_equal(recording_agd_read(path, 0, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.start_local_min, MAR11 + 720);
    assert_true(s.n == 2 && s.values[0] == 30 && s.values[1] == 5);
    free(s.values);
    FILE *f = fopen(path, "w");
    fputs("not sqlite at all, just text that is long enough to have a header........................", f);
    fclose(f);
    assert_int_equal(recording_agd_read(path, 0, 0, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "AGD"));
    unlink(path);
    assert_int_equal(recording_format_detect("x.AGD", "", 0), RECORDING_FMT_AGD);
    assert_int_equal(recording_format_detect("x.csv", "\"Actiware Export File\"", 22), RECORDING_FMT_RPX);
    assert_int_equal(recording_format_detect("x.txt", "+--+ Condor Instruments Report", 30), RECORDING_FMT_ATR);
    assert_int_equal(recording_format_detect("x.csv", "t,v\n", 4), RECORDING_FMT_CSV);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_offsets_and_header),
        cmocka_unit_test(test_csv_naive_subminute_window),
        cmocka_unit_test(test_csv_errors),
        cmocka_unit_test(test_awd),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_command_exit_codes),
        cmocka_unit_test(test_epochs_and_actogram),
        cmocka_unit_test(test_folder_mode),
        cmocka_unit_test(test_rpx_locales),
        cmocka_unit_test(test_acttrust_mtn_actilife),
        cmocka_unit_test(test_agd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
