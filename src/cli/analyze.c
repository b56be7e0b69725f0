/*
 * analyze.c — `clarity analyze` (contract in analyze.h).
 *
 * File -> minute series -> analysis_report_run (src/analysis/) -> JSON or
 * text. All science lives in the library; this file only reads, converts
 * epochs and prints.
 */
#include "cli/analyze.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <sys/stat.h>

#include "analysis/analysis.h"
#include "analysis/analysis_json.h"
#include "analysis/series.h"
#include "cli/cli.h"
#include "core/timeutil.h"

#include <sqlite3.h>

/* Days since 1970-01-01 of a proleptic Gregorian date (the classic
 * era-based day count: 400-year eras of 146097 days, March-based years). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static void local_format(int64_t local_min, char *out, size_t size) { analysis_json_local_time(local_min, out, size); }

/* Parse exactly `n` digits at *p; advances *p. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int valid_date(int y, int mo, int d)
{
    static const int md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1)
        return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= md[mo - 1] + (mo == 2 && leap);
}

/* A timestamp field -> local second. RFC 3339 with an offset uses it; a
 * naive "YYYY-MM-DD[T ]HH:MM[:SS[.f]]" is local wall-clock time. */
static int timestamp_local_second(const char *s, int64_t *local_s)
{
    int64_t ms;
    int off;
    if (time_parse_rfc3339(s, &ms, &off) == 0) {
        *local_s = floor_div(ms, 1000) + (int64_t)off * 60;
        return 0;
    }
    const char *p = s;
    int y, mo, d, h, mi, sec = 0;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d) ||
        (*p != 'T' && *p != 't' && *p != ' '))
        return -1;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
        return -1;
    if (*p == ':') {
        p++;
        if (digits(&p, 2, &sec))
            return -1;
        if (*p == '.')
            for (p++; *p >= '0' && *p <= '9'; p++)
                ;
    }
    if (*p != '\0' || !valid_date(y, mo, d) || h > 23 || mi > 59 || sec > 60)
        return -1;
    *local_s = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + (sec > 59 ? 59 : sec);
    return 0;
}

/* Growable row arrays, capped at ANALYZE_MAX_ROWS. */
struct rows {
    int64_t *sec; /* local seconds (days_from_civil * 86400 + time of day) */
    double *val;
    size_t n, cap;
};

static int rows_push(struct rows *r, int64_t sec, double v)
{
    if (r->n == r->cap) {
        if (r->cap >= ANALYZE_MAX_ROWS)
            return -1;
        size_t nc = r->cap ? r->cap * 2 : 4096;
        if (nc > ANALYZE_MAX_ROWS)
            nc = ANALYZE_MAX_ROWS;
        int64_t *a = realloc(r->sec, nc * sizeof(*a));
        if (!a)
            return -1;
        r->sec = a;
        double *b = realloc(r->val, nc * sizeof(*b));
        if (!b)
            return -1;
        r->val = b;
        r->cap = nc;
    }
    r->sec[r->n] = sec;
    r->val[r->n] = v;
    r->n++;
    return 0;
}

static void rows_free(struct rows *r)
{
    free(r->sec);
    free(r->val);
}

/* Rows (each one epoch of epoch_s seconds from its second) -> the minute
 * series over the last window_min minutes, and the native epoch series over
 * the same span (for pyActigraphy's conventions, which work per epoch). In
 * minutes, a row's value is split evenly over the minutes it covers and rows
 * in the same minute add up (sub-minute epochs). In epochs, the grid starts
 * at the first row (the first one in the window) and a row adds to the
 * epoch it falls in. Both arrays are one allocation: free(out->values). */
static int rows_to_series(const struct rows *r, unsigned epoch_s, size_t window_min, struct analyze_series *out,
                          char *err, size_t errlen)
{
    if (r->n == 0) {
        snprintf(err, errlen, "no data rows");
        return -1;
    }
    if (epoch_s == 0)
        epoch_s = 60;
    unsigned k = epoch_s > 60 ? epoch_s / 60 : 1;
    int64_t lo_s = r->sec[0], hi_s = r->sec[0];
    for (size_t i = 1; i < r->n; i++) {
        if (r->sec[i] < lo_s)
            lo_s = r->sec[i];
        if (r->sec[i] > hi_s)
            hi_s = r->sec[i];
    }
    int64_t lo = floor_div(lo_s, 60), hi = floor_div(hi_s, 60);
    int64_t end = hi + (int64_t)k;
    int64_t start = lo;
    if (window_min && end - (int64_t)window_min > start)
        start = end - (int64_t)window_min;
    if (end - start > (int64_t)SERIES_MAX_MINUTES) {
        snprintf(err, errlen, "recording spans more than %u days; choose a --window", SERIES_MAX_MINUTES / 1440);
        return -1;
    }
    /* the epoch grid: from the first row at or after the window's start */
    int64_t g0 = lo_s;
    if (g0 < start * 60)
        g0 += (start * 60 - g0 + (int64_t)epoch_s - 1) / (int64_t)epoch_s * (int64_t)epoch_s;
    size_t ne = hi_s >= g0 ? (size_t)((hi_s - g0) / (int64_t)epoch_s) + 1 : 0;
    if (ne > ANALYZE_MAX_ROWS)
        ne = 0; /* sparse rows at a short epoch: no epoch series (apply_pyactigraphy says so) */
    size_t n = (size_t)(end - start);
    double *v = malloc((n + ne) * sizeof(double));
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    double *ev = ne ? v + n : NULL;
    for (size_t i = 0; i < n + ne; i++)
        v[i] = NAN;
    for (size_t i = 0; i < r->n; i++) {
        if (isnan(r->val[i]))
            continue;
        int64_t m0 = floor_div(r->sec[i], 60);
        for (unsigned j = 0; j < k; j++) {
            int64_t m = m0 + j - start;
            if (m < 0 || m >= (int64_t)n)
                continue;
            double share = r->val[i] / (double)k;
            v[m] = isnan(v[m]) ? share : v[m] + share;
        }
        if (ne && r->sec[i] >= g0) {
            size_t e = (size_t)((r->sec[i] - g0) / (int64_t)epoch_s);
            ev[e] = isnan(ev[e]) ? r->val[i] : ev[e] + r->val[i];
        }
    }
    out->values = v;
    out->n = n;
    out->start_local_min = start;
    out->rows = r->n;
    out->epoch_values = ev;
    out->epoch_n = ne;
    out->epoch_s = epoch_s;
    out->start_local_s = g0;
    return 0;
}

/* Next line of text: [*line, *line_len), advancing *pos past the newline. */
static int next_line(const char *t, size_t len, size_t *pos, const char **line, size_t *line_len)
{
    if (*pos >= len)
        return 0;
    size_t s = *pos, e = s;
    while (e < len && t[e] != '\n')
        e++;
    *pos = e < len ? e + 1 : e;
    size_t l = e - s;
    while (l > 0 && (t[s + l - 1] == '\r' || t[s + l - 1] == ' ' || t[s + l - 1] == '\t'))
        l--;
    while (l > 0 && (t[s] == ' ' || t[s] == '\t')) {
        s++;
        l--;
    }
    *line = t + s;
    *line_len = l;
    return 1;
}

/* A numeric field: finite number, or NaN for "", "NA", "NaN", "null". */
static int parse_value(const char *s, double *v)
{
    while (*s == ' ' || *s == '\t' || *s == '"')
        s++;
    if (*s == '\0' || strcmp(s, "NA") == 0 || strcmp(s, "NaN") == 0 || strcmp(s, "nan") == 0 ||
        strcmp(s, "null") == 0 || strcmp(s, "\"\"") == 0) {
        *v = NAN;
        return 0;
    }
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    while (*end == ' ' || *end == '\t' || *end == '"')
        end++;
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(x))
        return -1;
    *v = x;
    return 0;
}

static int epoch_minutes(unsigned epoch_s, unsigned *k, char *err, size_t errlen)
{
    if (epoch_s == 0)
        epoch_s = 60;
    if ((epoch_s < 60 && 60 % epoch_s != 0) || (epoch_s > 60 && epoch_s % 60 != 0) || epoch_s > 3600) {
        snprintf(err, errlen, "epoch of %u s: must divide 60 or be a whole number of minutes up to 60", epoch_s);
        return -1;
    }
    *k = epoch_s > 60 ? epoch_s / 60 : 1;
    return 0;
}

int analyze_csv_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct analyze_series *out,
                      char *err, size_t errlen)
{
    struct rows r = {0};
    int rc = -1;
    unsigned k;
    size_t pos = 0, lineno = 0, ll;
    const char *line;
    char buf[256];
    if (epoch_minutes(epoch_s, &k, err, errlen) != 0)
        return -1;
    int seen_data = 0;
    while (next_line(text, len, &pos, &line, &ll)) {
        lineno++;
        if (ll == 0 || line[0] == '#')
            continue;
        if (ll >= sizeof(buf)) {
            snprintf(err, errlen, "line %zu: longer than %zu bytes", lineno, sizeof(buf) - 1);
            goto done;
        }
        memcpy(buf, line, ll);
        buf[ll] = '\0';
        char *sep = strpbrk(buf, ",;\t");
        int64_t m;
        double v;
        if (sep) {
            *sep = '\0';
            char *ts = buf;
            while (*ts == '"')
                ts++;
            char *q = strchr(ts, '"');
            if (q)
                *q = '\0';
            /* a second column only: ignore further columns after the value */
            char *val = sep + 1;
            char *more = strpbrk(val, ",;\t");
            if (more)
                *more = '\0';
            if (timestamp_local_second(ts, &m) == 0 && parse_value(val, &v) == 0) {
                if (rows_push(&r, m, v) != 0) {
                    snprintf(err, errlen, "line %zu: more than %u rows or out of memory", lineno, ANALYZE_MAX_ROWS);
                    goto done;
                }
                seen_data = 1;
                continue;
            }
        }
        if (!seen_data && r.n == 0 && lineno == 1)
            continue; /* a header row */
        snprintf(err, errlen, "line %zu: expected `timestamp,value`", lineno);
        goto done;
    }
    if (epoch_s == 0) {
        /* without --epoch, sub-minute epochs are the smallest step between
         * rows when it divides a minute (the minute series is the same
         * either way; the epoch series is what pyActigraphy reads) */
        int64_t step = 60;
        for (size_t i = 1; i < r.n; i++) {
            int64_t d = r.sec[i] - r.sec[i - 1];
            if (d > 0 && d < step)
                step = d;
        }
        epoch_s = 60 % step == 0 ? (unsigned)step : 60;
    }
    rc = rows_to_series(&r, epoch_s, window_min, out, err, errlen);
done:
    rows_free(&r);
    return rc;
}

static int month_of(const char *s)
{
    static const char *names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
    for (int i = 0; i < 12; i++)
        if (strncasecmp(s, names[i], 3) == 0)
            return i + 1;
    return 0;
}

int analyze_awd_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct analyze_series *out,
                      char *err, size_t errlen)
{
    struct rows r = {0};
    int rc = -1;
    size_t pos = 0, ll, lineno = 0;
    const char *line;
    char hdr[7][64];
    for (int i = 0; i < 7; i++) {
        if (!next_line(text, len, &pos, &line, &ll)) {
            snprintf(err, errlen, "AWD header: expected 7 lines, got %d", i);
            return -1;
        }
        lineno++;
        size_t c = ll < sizeof(hdr[i]) - 1 ? ll : sizeof(hdr[i]) - 1;
        memcpy(hdr[i], line, c);
        hdr[i][c] = '\0';
    }
    /* line 2: dd-Mon-yyyy; line 3: HH:MM[:SS]; line 4: epoch code */
    const char *p = hdr[1];
    int d, y, h, mi, mo;
    if (digits(&p, 2, &d) || *p++ != '-' || !(mo = month_of(p)) || p[3] != '-') {
        snprintf(err, errlen, "AWD line 2: expected a start date like 01-Oct-2009");
        return -1;
    }
    p += 4;
    if (digits(&p, 4, &y) || !valid_date(y, mo, d)) {
        snprintf(err, errlen, "AWD line 2: expected a start date like 01-Oct-2009");
        return -1;
    }
    p = hdr[2];
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || h > 23 || mi > 59) {
        snprintf(err, errlen, "AWD line 3: expected a start time like 17:00");
        return -1;
    }
    if (epoch_s == 0) {
        /* Actiwatch epoch codes: 1 = 15 s, 2 = 30 s, 4 = 1 min, 8 = 2 min,
         * 20 = 5 min. Others need --epoch. */
        int code = (int)strtol(hdr[3], NULL, 10);
        epoch_s = code == 1 ? 15 : code == 2 ? 30 : code == 4 ? 60 : code == 8 ? 120 : code == 20 ? 300 : 0;
        if (epoch_s == 0) {
            snprintf(err, errlen, "AWD line 4: unknown epoch code '%s'; pass --epoch SECONDS", hdr[3]);
            return -1;
        }
    }
    unsigned k;
    if (epoch_minutes(epoch_s, &k, err, errlen) != 0)
        return -1;
    int64_t start = days_from_civil(y, mo, d) * 1440 + h * 60 + mi;
    size_t idx = 0;
    char buf[64];
    while (next_line(text, len, &pos, &line, &ll)) {
        lineno++;
        if (ll == 0)
            continue;
        size_t c = ll < sizeof(buf) - 1 ? ll : sizeof(buf) - 1;
        memcpy(buf, line, c);
        buf[c] = '\0';
        char *comma = strchr(buf, ','); /* ",M" marker or light column */
        if (comma)
            *comma = '\0';
        /* The Actiwatch event marker also comes as "71 M" (the count, a
         * space, the letter): a trailing token of letters after whitespace
         * is the marker, not part of the count. */
        char *sp = buf;
        while (*sp == ' ' || *sp == '\t')
            sp++;
        while (*sp != '\0' && *sp != ' ' && *sp != '\t')
            sp++;
        if (*sp != '\0') {
            char *q = sp;
            while (*q == ' ' || *q == '\t')
                q++;
            int letters = *q != '\0';
            for (char *z = q; *z != '\0'; z++)
                if (!((*z >= 'A' && *z <= 'Z') || (*z >= 'a' && *z <= 'z') || *z == ' ' || *z == '\t' || *z == '\r'))
                    letters = 0;
            if (letters)
                *sp = '\0';
        }
        double v;
        if (parse_value(buf, &v) != 0) {
            snprintf(err, errlen, "AWD line %zu: expected a count", lineno);
            goto done;
        }
        int64_t m = start * 60 + (int64_t)idx * (int64_t)epoch_s;
        idx++;
        if (rows_push(&r, m, v) != 0) {
            snprintf(err, errlen, "AWD line %zu: more than %u rows or out of memory", lineno, ANALYZE_MAX_ROWS);
            goto done;
        }
    }
    rc = rows_to_series(&r, epoch_s, window_min, out, err, errlen);
done:
    rows_free(&r);
    return rc;
}

int analyze_duration_parse(const char *s, size_t *minutes)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || v == 0 || end[0] == '\0' || end[1] != '\0')
        return -1;
    unsigned long mult = end[0] == 'd' ? 1440 : end[0] == 'h' ? 60 : end[0] == 'm' ? 1 : 0;
    if (mult == 0 || v > SERIES_MAX_MINUTES / mult)
        return -1;
    *minutes = (size_t)(v * mult);
    return 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out);

/* ---- research formats (issue #18) -------------------------------------- */

/* Split buf in place into at most maxf fields at sep; a field in double
 * quotes may hold sep ("184,13"); the quotes are removed. */
static int split_fields(char *buf, char sep, char **f, int maxf)
{
    int n = 0;
    char *p = buf;
    while (n < maxf) {
        while (*p == ' ')
            p++;
        if (*p == '"') {
            char *q = ++p, *w = p;
            while (*q && *q != '"')
                *w++ = *q++;
            if (*q == '"')
                q++;
            *w = '\0';
            f[n++] = p;
            while (*q && *q != sep)
                q++;
            if (*q != sep)
                break;
            p = q + 1;
        } else {
            f[n++] = p;
            char *q = strchr(p, sep);
            if (!q)
                break;
            *q = '\0';
            p = q + 1;
        }
    }
    return n;
}

/* A count in an export: empty, NaN, NAN or kZ ("keine Zahl") is missing; a
 * decimal comma is accepted. */
static int parse_export_value(char *s, double *v)
{
    if (strcasecmp(s, "nan") == 0 || strcmp(s, "kZ") == 0) {
        *v = NAN;
        return 0;
    }
    for (char *c = s; *c; c++)
        if (*c == ',')
            *c = '.';
    return parse_value(s, v);
}

/* "a/b/yyyy" or "a.b.yyyy" (1-2 digit a, b) -> its parts. */
static int date_parts(const char *s, int *a, int *b, int *y)
{
    char *end;
    long x = strtol(s, &end, 10);
    if (end == s || end - s > 2 || (*end != '/' && *end != '.' && *end != '-'))
        return -1;
    char sep = *end;
    const char *p = end + 1;
    long z = strtol(p, &end, 10);
    if (end == p || end - p > 2 || *end != sep)
        return -1;
    p = end + 1;
    long yy = strtol(p, &end, 10);
    if (end - p != 4)
        return -1;
    *a = (int)x;
    *b = (int)z;
    *y = (int)yy;
    return 0;
}

/* "HH:MM[:SS]" with an optional " AM"/" PM" -> seconds of the day. */
static int time_secs(const char *s, int *secs)
{
    char *end;
    long h = strtol(s, &end, 10), m, sec = 0;
    if (end == s || end - s > 2 || *end != ':')
        return -1;
    const char *p = end + 1;
    m = strtol(p, &end, 10);
    if (end - p != 2)
        return -1;
    if (*end == ':') {
        p = end + 1;
        sec = strtol(p, &end, 10);
        if (end - p != 2)
            return -1;
    }
    while (*end == ' ')
        end++;
    if (strcasecmp(end, "PM") == 0 && h >= 1 && h <= 12)
        h = h % 12 + 12;
    else if (strcasecmp(end, "AM") == 0 && h >= 1 && h <= 12)
        h = h % 12;
    else if (*end != '\0')
        return -1;
    if (h > 23 || m > 59 || sec > 59)
        return -1;
    *secs = (int)(h * 3600 + m * 60 + sec);
    return 0;
}

/* Day-first (1) or month-first (0) from a list of (a, b) date parts: a
 * part above 12 decides; else the first change of date must be one day. */
static int day_first_of(const int *a, const int *b, const int *y, size_t n, int dflt)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] > 12)
            return 1;
        if (b[i] > 12)
            return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if (a[i] == a[i - 1] && b[i] == b[i - 1])
            continue;
        int dmy = valid_date(y[i], b[i], a[i]) && valid_date(y[i - 1], b[i - 1], a[i - 1]) &&
                  days_from_civil(y[i], b[i], a[i]) - days_from_civil(y[i - 1], b[i - 1], a[i - 1]) == 1;
        int mdy = valid_date(y[i], a[i], b[i]) && valid_date(y[i - 1], a[i - 1], b[i - 1]) &&
                  days_from_civil(y[i], a[i], b[i]) - days_from_civil(y[i - 1], a[i - 1], b[i - 1]) == 1;
        if (dmy != mdy)
            return dmy;
    }
    return dflt;
}

/* Rows stamped in seconds -> minute rows (sub-minute epochs add up). */
struct srows {
    int64_t *sec;
    double *val;
    int *a, *b, *y;
    size_t n, cap;
};

static int srows_push(struct srows *r, int a, int b, int y, int64_t secs, double v)
{
    if (r->n == r->cap) {
        if (r->cap >= ANALYZE_MAX_ROWS)
            return -1;
        size_t nc = r->cap ? r->cap * 2 : 4096;
        int64_t *s = realloc(r->sec, nc * sizeof(*s));
        if (s)
            r->sec = s;
        double *w = realloc(r->val, nc * sizeof(*w));
        if (w)
            r->val = w;
        int *pa = realloc(r->a, nc * sizeof(int));
        if (pa)
            r->a = pa;
        int *pb = realloc(r->b, nc * sizeof(int));
        if (pb)
            r->b = pb;
        int *py = realloc(r->y, nc * sizeof(int));
        if (py)
            r->y = py;
        if (!s || !w || !pa || !pb || !py)
            return -1;
        r->cap = nc;
    }
    r->sec[r->n] = secs;
    r->val[r->n] = v;
    r->a[r->n] = a;
    r->b[r->n] = b;
    r->y[r->n] = y;
    r->n++;
    return 0;
}

static void srows_free(struct srows *r)
{
    free(r->sec);
    free(r->val);
    free(r->a);
    free(r->b);
    free(r->y);
}

/* Dated rows -> series: the date order is decided once for the file. */
static int srows_finish(const char *fmt, struct srows *sr, unsigned epoch_s, int dflt_day_first, size_t window_min,
                        struct analyze_series *out, char *err, size_t errlen)
{
    struct rows r = {0};
    unsigned k;
    int rc = -1;
    if (sr->n == 0) {
        snprintf(err, errlen, "%s: no data rows", fmt);
        return -1;
    }
    if (epoch_minutes(epoch_s, &k, err, errlen) != 0)
        return -1;
    int df = day_first_of(sr->a, sr->b, sr->y, sr->n, dflt_day_first);
    for (size_t i = 0; i < sr->n; i++) {
        int d = df ? sr->a[i] : sr->b[i], m = df ? sr->b[i] : sr->a[i];
        if (!valid_date(sr->y[i], m, d)) {
            snprintf(err, errlen, "%s data row %zu: invalid date", fmt, i + 1);
            goto done;
        }
        int64_t secs = days_from_civil(sr->y[i], m, d) * 86400 + sr->sec[i];
        if (rows_push(&r, secs, sr->val[i]) != 0) {
            snprintf(err, errlen, "%s: more than %u rows or out of memory", fmt, ANALYZE_MAX_ROWS);
            goto done;
        }
    }
    rc = rows_to_series(&r, epoch_s, window_min, out, err, errlen);
done:
    rows_free(&r);
    return rc;
}

#define MAXF 48

/* Column index of the first field equal to one of names; -1 if none. */
static int col_of(char **f, int n, const char *const *names)
{
    for (int i = 0; i < n; i++)
        for (const char *const *p = names; *p; p++)
            if (strcmp(f[i], *p) == 0)
                return i;
    return -1;
}

int analyze_rpx_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct analyze_series *out,
                      char *err, size_t errlen)
{
    static const char *const line_names[] = {"Line", "Ligne", "Zeile", NULL};
    static const char *const act_names[] = {"Activity", "Activit\xc3\xa9", "Aktivit\xc3\xa4t", NULL};
    static const char *const date_names[] = {"Date", "Datum", NULL};
    static const char *const time_names[] = {"Time", "Heure", "Zeit", NULL};
    static const char *const epoch_keys[] = {"Epoch Length", "Longueur de la p\xc3\xa9riode", "Epochenl\xc3\xa4nge",
                                             NULL};
    struct srows sr = {0};
    size_t pos = 0, ll, lineno = 0;
    const char *line;
    char buf[1024];
    char *f[MAXF];
    int c_date = -1, c_time = -1, c_act = -1, german = 0, rc = -1;
    unsigned header_epoch = 0;
    while (next_line(text, len, &pos, &line, &ll)) {
        lineno++;
        if (ll == 0)
            continue;
        if (ll >= sizeof(buf)) {
            snprintf(err, errlen, "RPX line %zu: longer than %zu bytes", lineno, sizeof(buf) - 1);
            goto done;
        }
        memcpy(buf, line, ll);
        buf[ll] = '\0';
        int nf = split_fields(buf, ',', f, MAXF);
        if (c_act < 0) {
            /* header: the epoch length, then the epoch-by-epoch column row */
            for (const char *const *k = epoch_keys; *k; k++) {
                if (nf >= 2 && strncmp(f[0], *k, strlen(*k)) == 0) {
                    unsigned long e;
                    if (parse_uint(f[1], 3600, &e) == 0)
                        header_epoch = (unsigned)e;
                    german |= strcmp(*k, "Epochenl\xc3\xa4nge") == 0;
                }
            }
            if (nf >= 4 && col_of(f, 1, line_names) == 0 && (c_act = col_of(f, nf, act_names)) >= 0) {
                c_date = col_of(f, nf, date_names);
                c_time = col_of(f, nf, time_names);
                if (c_date < 0 || c_time < 0) {
                    snprintf(err, errlen, "RPX line %zu: the data header has no date or time column", lineno);
                    goto done;
                }
            }
            continue;
        }
        if (nf <= c_act || nf <= c_date || nf <= c_time) {
            snprintf(err, errlen, "RPX line %zu: expected %d columns, got %d", lineno,
                     (c_act > c_date ? (c_act > c_time ? c_act : c_time) : (c_date > c_time ? c_date : c_time)) + 1,
                     nf);
            goto done;
        }
        int a, b, y, secs;
        double v;
        if (date_parts(f[c_date], &a, &b, &y) != 0) {
            snprintf(err, errlen, "RPX line %zu: expected a date like 04/07/2015 or 19.09.2019", lineno);
            goto done;
        }
        if (time_secs(f[c_time], &secs) != 0) {
            snprintf(err, errlen, "RPX line %zu: expected a time like 09:45:00", lineno);
            goto done;
        }
        if (parse_export_value(f[c_act], &v) != 0) {
            snprintf(err, errlen, "RPX line %zu: expected an activity count", lineno);
            goto done;
        }
        if (srows_push(&sr, a, b, y, secs, v) != 0) {
            snprintf(err, errlen, "RPX line %zu: more than %u rows or out of memory", lineno, ANALYZE_MAX_ROWS);
            goto done;
        }
    }
    if (c_act < 0) {
        snprintf(err, errlen,
                 "RPX: no epoch-by-epoch data (a header row Line/Ligne/Zeile with an "
                 "Activity/Activit\xc3\xa9/Aktivit\xc3\xa4t column)");
        goto done;
    }
    (void)german;
    rc = srows_finish("RPX", &sr, epoch_s ? epoch_s : header_epoch, 1, window_min, out, err, errlen);
done:
    srows_free(&sr);
    return rc;
}

int analyze_atr_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct analyze_series *out,
                      char *err, size_t errlen)
{
    static const char *const pim[] = {"PIM", NULL};
    struct srows sr = {0};
    size_t pos = 0, ll, lineno = 0;
    const char *line;
    char buf[1024];
    char *f[MAXF];
    int c_val = -1, rc = -1, condor = 0;
    unsigned header_epoch = 0;
    while (next_line(text, len, &pos, &line, &ll)) {
        lineno++;
        if (ll == 0)
            continue;
        if (ll >= sizeof(buf)) {
            snprintf(err, errlen, "ATR line %zu: longer than %zu bytes", lineno, sizeof(buf) - 1);
            goto done;
        }
        memcpy(buf, line, ll);
        buf[ll] = '\0';
        if (c_val < 0) {
            condor |= strstr(buf, "Condor") != NULL;
            unsigned long e;
            if (strncmp(buf, "INTERVAL", 8) == 0) {
                char *c = strchr(buf, ':');
                while (c && (*c == ':' || *c == ' '))
                    c++;
                if (c && parse_uint(c, 3600, &e) == 0)
                    header_epoch = (unsigned)e;
            }
            if (strncmp(buf, "DATE/TIME;", 10) == 0) {
                int nf = split_fields(buf, ';', f, MAXF);
                c_val = col_of(f, nf, pim);
                if (c_val < 0) {
                    snprintf(err, errlen, "ATR line %zu: the data header has no PIM column", lineno);
                    goto done;
                }
            }
            continue;
        }
        int nf = split_fields(buf, ';', f, MAXF);
        int a, b, y, secs;
        double v;
        char *sp = nf > 0 ? strchr(f[0], ' ') : NULL;
        if (nf <= c_val || !sp) {
            snprintf(err, errlen, "ATR line %zu: expected 'DD/MM/YYYY HH:MM:SS;...' with a PIM column", lineno);
            goto done;
        }
        *sp = '\0';
        if (date_parts(f[0], &a, &b, &y) != 0 || time_secs(sp + 1, &secs) != 0) {
            snprintf(err, errlen, "ATR line %zu: expected a date and time like 01/01/2020 08:00:00", lineno);
            goto done;
        }
        if (parse_export_value(f[c_val], &v) != 0) {
            snprintf(err, errlen, "ATR line %zu: expected a PIM count", lineno);
            goto done;
        }
        if (srows_push(&sr, a, b, y, secs, v) != 0) {
            snprintf(err, errlen, "ATR line %zu: more than %u rows or out of memory", lineno, ANALYZE_MAX_ROWS);
            goto done;
        }
    }
    if (c_val < 0) {
        snprintf(err, errlen, condor ? "ATR: no data header (DATE/TIME;...)" : "ATR: not a Condor ActTrust report");
        goto done;
    }
    /* Condor writes day-first dates (DD/MM/YYYY) */
    rc = srows_finish("ATR", &sr, epoch_s ? epoch_s : header_epoch, 1, window_min, out, err, errlen);
done:
    srows_free(&sr);
    return rc;
}

/* The text between open and close after *from inside [t, t + len), or -1. */
static int xml_between(const char *t, size_t len, size_t from, const char *open, const char *close, size_t *s,
                       size_t *e)
{
    size_t lo = strlen(open), lc = strlen(close);
    for (size_t i = from; i + lo <= len; i++) {
        if (memcmp(t + i, open, lo) != 0)
            continue;
        for (size_t j = i + lo; j + lc <= len; j++) {
            if (memcmp(t + j, close, lc) == 0) {
                *s = i + lo;
                *e = j;
                return 0;
            }
        }
        return -1;
    }
    return -1;
}

int analyze_mtn_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct analyze_series *out,
                      char *err, size_t errlen)
{
    struct rows r = {0};
    size_t s, e, cs, ce;
    char buf[64];
    int rc = -1;
    if (xml_between(text, len, 0, "<name>=StartTime</name><content>", "</content>", &s, &e) != 0 ||
        e - s >= sizeof(buf)) {
        snprintf(err, errlen, "MTN: no =StartTime property");
        return -1;
    }
    memcpy(buf, text + s, e - s);
    buf[e - s] = '\0';
    int64_t start;
    if (timestamp_local_second(buf, &start) != 0) {
        snprintf(err, errlen, "MTN: StartTime '%.32s' is not YYYY-MM-DD HH:MM:SS", buf);
        return -1;
    }
    if (xml_between(text, len, 0, "<channel><name>motion</name>", "</channel>", &cs, &ce) != 0) {
        snprintf(err, errlen, "MTN: no motion channel");
        return -1;
    }
    unsigned long ep = 60;
    if (xml_between(text, ce, cs, "<epoch>", "</epoch>", &s, &e) == 0 && e - s < sizeof(buf)) {
        memcpy(buf, text + s, e - s);
        buf[e - s] = '\0';
        if (parse_uint(buf, 3600, &ep) != 0 || ep == 0) {
            snprintf(err, errlen, "MTN: motion epoch '%.16s' is not a number of seconds", buf);
            return -1;
        }
    }
    if (epoch_s)
        ep = epoch_s;
    unsigned k;
    if (epoch_minutes((unsigned)ep, &k, err, errlen) != 0)
        return -1;
    if (xml_between(text, ce, cs, "<data encoding=\"text\">", "</data>", &s, &e) != 0) {
        snprintf(err, errlen, "MTN: the motion channel has no text data");
        return -1;
    }
    size_t item = 0, i = s;
    int64_t t0 = start;
    while (i < e) {
        while (i < e && (text[i] == ',' || text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t'))
            i++;
        if (i >= e)
            break;
        size_t j = i;
        while (j < e && text[j] != ',' && text[j] != '\n' && text[j] != '\r')
            j++;
        item++;
        double v;
        size_t l = j - i < sizeof(buf) - 1 ? j - i : sizeof(buf) - 1;
        memcpy(buf, text + i, l);
        buf[l] = '\0';
        if (j - i >= sizeof(buf) || parse_value(buf, &v) != 0) {
            snprintf(err, errlen, "MTN: motion item %zu: expected a count", item);
            goto done;
        }
        int64_t sec = t0 + (int64_t)(item - 1) * (int64_t)ep;
        if (rows_push(&r, sec, v) != 0) {
            snprintf(err, errlen, "MTN: more than %u items or out of memory", ANALYZE_MAX_ROWS);
            goto done;
        }
        i = j;
    }
    rc = rows_to_series(&r, (unsigned)ep, window_min, out, err, errlen);
done:
    rows_free(&r);
    return rc;
}

int analyze_actilife_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min,
                           struct analyze_series *out, char *err, size_t errlen)
{
    static const char *const axis1[] = {"Axis1", "axis1", "Activity", NULL};
    struct rows r = {0};
    size_t pos = 0, ll, lineno = 0;
    const char *line;
    char buf[1024], *f[MAXF];
    int rc = -1, day_first = 0, have_date = 0, have_time = 0, col = 0, in_data = 0, sec0 = 0;
    int a = 0, b = 0, y = 0;
    unsigned long ep = 0;
    size_t idx = 0;
    int64_t start = 0;
    while (next_line(text, len, &pos, &line, &ll)) {
        lineno++;
        if (ll == 0)
            continue;
        if (ll >= sizeof(buf)) {
            snprintf(err, errlen, "ActiLife line %zu: longer than %zu bytes", lineno, sizeof(buf) - 1);
            goto done;
        }
        memcpy(buf, line, ll);
        buf[ll] = '\0';
        if (lineno == 1) {
            if (strstr(buf, "Data File Created By ActiGraph") == NULL) {
                snprintf(err, errlen, "ActiLife line 1: expected '---- Data File Created By ActiGraph ...'");
                goto done;
            }
            char *df = strstr(buf, "date format ");
            day_first = df != NULL && (df[12] == 'd' || df[12] == 'D');
            continue;
        }
        if (!in_data) {
            if (strncmp(buf, "Start Time ", 11) == 0) {
                if (time_secs(buf + 11, &sec0) != 0) {
                    snprintf(err, errlen, "ActiLife line %zu: expected 'Start Time HH:MM:SS'", lineno);
                    goto done;
                }
                have_time = 1;
            } else if (strncmp(buf, "Start Date ", 11) == 0) {
                if (date_parts(buf + 11, &a, &b, &y) != 0) {
                    snprintf(err, errlen, "ActiLife line %zu: expected 'Start Date M/d/yyyy'", lineno);
                    goto done;
                }
                have_date = 1;
            } else if (strncmp(buf, "Epoch Period (hh:mm:ss) ", 24) == 0) {
                int es;
                if (time_secs(buf + 24, &es) != 0 || es <= 0) {
                    snprintf(err, errlen, "ActiLife line %zu: expected 'Epoch Period (hh:mm:ss) 00:01:00'", lineno);
                    goto done;
                }
                ep = (unsigned long)es;
            } else if (strncmp(buf, "-----", 5) == 0 && lineno > 2) {
                if (!have_date || !have_time || ep == 0) {
                    snprintf(err, errlen,
                             "ActiLife line %zu: the header lacks Start Time, Start Date or "
                             "Epoch Period",
                             lineno);
                    goto done;
                }
                int d = day_first ? a : b, m = day_first ? b : a;
                if (!valid_date(y, m, d)) {
                    snprintf(err, errlen, "ActiLife: invalid start date");
                    goto done;
                }
                start = days_from_civil(y, m, d) * 86400 + sec0;
                in_data = 1;
            }
            continue;
        }
        int nf = split_fields(buf, ',', f, MAXF);
        if (idx == 0 && r.n == 0 && nf > 0 && (f[0][0] < '0' || f[0][0] > '9')) {
            int c = col_of(f, nf, axis1);
            if (c < 0) {
                snprintf(err, errlen, "ActiLife line %zu: the column header has no Axis1 column", lineno);
                goto done;
            }
            col = c;
            continue;
        }
        double v;
        if (nf <= col || parse_value(f[col], &v) != 0) {
            snprintf(err, errlen, "ActiLife line %zu: expected a count in column %d", lineno, col + 1);
            goto done;
        }
        int64_t sec = start + (int64_t)idx * (int64_t)ep;
        idx++;
        if (rows_push(&r, sec, v) != 0) {
            snprintf(err, errlen, "ActiLife line %zu: more than %u rows or out of memory", lineno, ANALYZE_MAX_ROWS);
            goto done;
        }
    }
    if (!in_data) {
        snprintf(err, errlen, "ActiLife: no data after the header");
        goto done;
    }
    unsigned k;
    if (epoch_minutes(epoch_s ? epoch_s : (unsigned)ep, &k, err, errlen) != 0)
        goto done;
    rc = rows_to_series(&r, epoch_s ? epoch_s : (unsigned)ep, window_min, out, err, errlen);
done:
    rows_free(&r);
    return rc;
}

/* .NET ticks (100 ns since 0001-01-01, local time) -> local seconds. */
static int64_t ticks_secs(int64_t ticks) { return ticks / 10000000 - 62135596800LL; }

int analyze_agd_read(const char *path, unsigned epoch_s, size_t window_min, struct analyze_series *out, char *err,
                     size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    struct rows r = {0};
    int rc = -1;
    unsigned long ep = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "AGD %s: cannot open as SQLite", path);
        goto done;
    }
    if (sqlite3_prepare_v2(db, "SELECT settingValue FROM settings WHERE settingName = 'epochlength'", -1, &st, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "AGD: no settings table (not an ActiGraph .agd file)");
        goto done;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (!t || parse_uint(t, 3600, &ep) != 0 || ep == 0) {
            snprintf(err, errlen, "AGD: setting epochlength is not a number of seconds");
            goto done;
        }
    } else {
        snprintf(err, errlen, "AGD: setting epochlength missing");
        goto done;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT dataTimestamp, axis1 FROM data ORDER BY dataTimestamp", -1, &st, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "AGD: no data table with dataTimestamp and axis1");
        goto done;
    }
    int s;
    size_t row = 0;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        row++;
        if (sqlite3_column_type(st, 0) != SQLITE_INTEGER) {
            snprintf(err, errlen, "AGD data row %zu: dataTimestamp is not an integer", row);
            goto done;
        }
        int64_t sec = ticks_secs(sqlite3_column_int64(st, 0));
        double v = sqlite3_column_type(st, 1) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 1);
        if (rows_push(&r, sec, v) != 0) {
            snprintf(err, errlen, "AGD: more than %u rows or out of memory", ANALYZE_MAX_ROWS);
            goto done;
        }
    }
    if (s != SQLITE_DONE) {
        snprintf(err, errlen, "AGD: read error: %s", sqlite3_errmsg(db));
        goto done;
    }
    unsigned k;
    if (epoch_minutes(epoch_s ? epoch_s : (unsigned)ep, &k, err, errlen) != 0)
        goto done;
    rc = rows_to_series(&r, epoch_s ? epoch_s : (unsigned)ep, window_min, out, err, errlen);
done:
    sqlite3_finalize(st);
    sqlite3_close(db);
    rows_free(&r);
    return rc;
}

/* Which reader a file needs: by extension, then by its first bytes. */
enum analyze_format analyze_format_detect(const char *name, const char *text, size_t len)
{
    size_t l = strlen(name);
    if (l > 4 && strcasecmp(name + l - 4, ".awd") == 0)
        return ANALYZE_FMT_AWD;
    if (l > 4 && strcasecmp(name + l - 4, ".agd") == 0)
        return ANALYZE_FMT_AGD;
    if (l > 4 && strcasecmp(name + l - 4, ".mtn") == 0)
        return ANALYZE_FMT_MTN;
    size_t n = len < 512 ? len : 512;
    char head[513];
    memcpy(head, text, n);
    head[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (head[i] == '\0')
            head[i] = ' ';
    if (strstr(head, "Actiware") != NULL)
        return ANALYZE_FMT_RPX;
    if (strstr(head, "Condor Instruments") != NULL)
        return ANALYZE_FMT_ATR;
    if (strstr(head, "Data File Created By ActiGraph") != NULL)
        return ANALYZE_FMT_ACTILIFE;
    if (strstr(head, "<motionfile>") != NULL)
        return ANALYZE_FMT_MTN;
    return ANALYZE_FMT_CSV;
}

/* ---- output ---------------------------------------------------------- */

static const char *scorer_name(const struct analysis_params *p)
{
    if (p->scorer == ANALYSIS_SCORER_SADEH)
        return "sadeh-1994";
    return p->ck_scale == SLEEP_CK_ACTIGRAPH ? "cole-kripke-1992-actigraph" : "cole-kripke-1992";
}

/* {"input": {...}} followed by the library's report (analysis_json.h). */
static json_t *report_json(const char *file, const char *format, const struct analyze_series *s,
                           const struct analysis_params *p, const struct analysis_report *r, int steps)
{
    char a[64], b[64];
    json_t *root = json_object(), *in = json_object(), *rep = NULL;
    if (!root || !in)
        goto fail;
    rep = analysis_json_report(r, p, s->start_local_min, 0, 0, steps);
    if (!rep)
        goto fail;
    local_format(s->start_local_min, a, sizeof(a));
    local_format(s->start_local_min + (int64_t)s->n, b, sizeof(b));
    json_object_set_new(in, "file", json_string(file));
    json_object_set_new(in, "format", json_string(format));
    json_object_set_new(in, "values", json_string(steps ? "steps" : "activity counts"));
    json_object_set_new(in, "start_local", json_string(a));
    json_object_set_new(in, "end_local", json_string(b));
    json_object_set_new(in, "rows", json_integer((json_int_t)s->rows));
    if (json_object_set_new(root, "input", in) != 0) {
        in = NULL;
        goto fail;
    }
    in = NULL;
    /* the report's members follow "input" (insertion order is kept) */
    if (json_object_update(root, rep) != 0)
        goto fail;
    json_decref(rep);
    return root;
fail:
    json_decref(in);
    json_decref(rep);
    json_decref(root);
    return NULL;
}

/* Text rendering: one "name: value (n)" or "name: null — reason" per line. */
static void text_metric(FILE *f, const char *name, const struct metric *m, const char *unit)
{
    if (metric_value_valid(m))
        fprintf(f, "  %-28s %.2f%s%s  (n=%zu)\n", name, m->value, unit[0] ? " " : "", unit, m->n);
    else
        fprintf(f, "  %-28s null — %s\n", name, m->reason);
}

static void report_text(FILE *f, const char *file, const struct analyze_series *s, const struct analysis_params *p,
                        const struct analysis_report *r, int steps)
{
    char a[64], b[64];
    local_format(s->start_local_min, a, sizeof(a));
    local_format(s->start_local_min + (int64_t)s->n, b, sizeof(b));
    fprintf(f, "Clarity analysis of %s\n", file);
    fprintf(f, "  window %s .. %s local, %zu minutes, %zu with data (%s)\n", a, b, r->n_minutes, r->n_valid,
            steps ? "steps" : "activity counts");
    fprintf(f, "  scorer %s, Webster rescoring %s\n\nSleep (%zu nights)\n", scorer_name(p), p->webster ? "on" : "off",
            r->n_nights);
    for (size_t i = 0; i < r->n_nights; i++) {
        const struct sleep_night *nt = &r->nights[i];
        local_format(s->start_local_min + (int64_t)nt->bed_start, a, sizeof(a));
        local_format(s->start_local_min + (int64_t)nt->bed_end, b, sizeof(b));
        if (r->night_basis && r->night_basis[i] == ANALYSIS_NIGHT_ESTIMATED)
            fprintf(f, "  night %zu: %s .. %s  estimated rest period %.0f min (steps: no sleep figures)\n", i + 1, a, b,
                    nt->time_in_bed_min.value);
        else
            fprintf(f, "  night %zu: %s .. %s  TST %.0f min, WASO %.0f min, %.0f awakenings\n", i + 1, a, b,
                    nt->total_sleep_min.value, nt->waso_min.value, nt->awakenings.value);
    }
    text_metric(f, "non-wear", &r->nonwear_min, "min");
    text_metric(f, "mean estimated rest", &r->rest_mean_min, "min");
    text_metric(f, "mean total sleep", &r->tst_mean_min, "min");
    text_metric(f, "mean efficiency", &r->efficiency_mean_pct, "%");
    text_metric(f, "mean WASO", &r->waso_mean_min, "min");
    text_metric(f, "mean awakenings", &r->awakenings_mean, "");
    text_metric(f, "sleep regularity index", &r->sri, "");
    text_metric(f, "onset SD", &r->timing.onset_sd_min, "min");
    text_metric(f, "midpoint SD", &r->timing.midpoint_sd_min, "min");
    fprintf(f, "\nCircadian rhythm (%zu-minute bins)\n", r->npar.bin_min);
    text_metric(f, "interdaily stability", &r->npar.is, "");
    text_metric(f, "intradaily variability", &r->npar.iv, "");
    text_metric(f, "relative amplitude", &r->npar.ra, "");
    text_metric(f, "L5", &r->npar.l5, "");
    text_metric(f, "L5 onset", &r->npar.l5_onset_min, "min after midnight");
    text_metric(f, "M10", &r->npar.m10, "");
    text_metric(f, "M10 onset", &r->npar.m10_onset_min, "min after midnight");
    text_metric(f, "cosinor MESOR", &r->cosinor.mesor, "");
    text_metric(f, "cosinor amplitude", &r->cosinor.amplitude, "");
    text_metric(f, "cosinor acrophase", &r->cosinor.acrophase_min, "min after midnight");
    text_metric(f, "cosinor R^2", &r->cosinor.r_squared, "");
    if (steps) {
        fprintf(f, "\nActivity (%zu complete days)\n", r->activity.days);
        text_metric(f, "steps total", &r->activity.steps_total, "");
        text_metric(f, "steps daily mean", &r->activity.steps_daily_mean, "");
        text_metric(f, "steps daily peak", &r->activity.steps_daily_peak, "");
        text_metric(f, "steps consistency", &r->activity.steps_consistency, "");
    }
}

/* ---- command --------------------------------------------------------- */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "clarity analyze: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: clarity analyze FILE [--format json|text] [--window 7d] "
                    "[--scorer cole-kripke|cole-kripke-actigraph|sadeh] [--no-webster] "
                    "[--bin MINUTES] [--epoch SECONDS] [--input counts|steps] [--nonwear choi|off] "
                    "[--epochs FILE] [--actogram FILE] [--conventions clarity|pyactigraphy]  (FILE may be a "
                    "folder: one summary row per recording)\n");
    return CLI_EXIT_USAGE;
}

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= ANALYZE_MAX_FILE_BYTES) {
                snprintf(err, errlen, "%s: larger than %u bytes", path, ANALYZE_MAX_FILE_BYTES);
                goto fail;
            }
            size_t nc = cap ? cap * 2 : 1 << 16;
            char *t = realloc(buf, nc);
            if (!t) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            buf = t;
            cap = nc;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                snprintf(err, errlen, "%s: read error", path);
                goto fail;
            }
            break;
        }
    }
    fclose(f);
    *len = n;
    return buf;
fail:
    fclose(f);
    free(buf);
    return NULL;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Read, parse and analyse one file. On success *s holds the series and
 * *ws the workspace *r points into (caller frees both). */
static int analyze_one(const char *file, unsigned epoch, size_t window, int steps, const struct analysis_params *p,
                       struct analyze_series *s, void **ws, struct analysis_report *r, int *fmt, char *err,
                       size_t errlen)
{
    size_t len = 0;
    *ws = NULL;
    int rc;
    *fmt = analyze_format_detect(file, "", 0);
    if (*fmt == ANALYZE_FMT_AGD) {
        rc = analyze_agd_read(file, epoch, window, s, err, errlen);
    } else {
        char *text = read_file(file, &len, err, errlen);
        if (!text)
            return -1;
        *fmt = analyze_format_detect(file, text, len);
        switch (*fmt) {
        case ANALYZE_FMT_AWD: rc = analyze_awd_parse(text, len, epoch, window, s, err, errlen); break;
        case ANALYZE_FMT_RPX: rc = analyze_rpx_parse(text, len, epoch, window, s, err, errlen); break;
        case ANALYZE_FMT_ATR: rc = analyze_atr_parse(text, len, epoch, window, s, err, errlen); break;
        case ANALYZE_FMT_MTN: rc = analyze_mtn_parse(text, len, epoch, window, s, err, errlen); break;
        case ANALYZE_FMT_ACTILIFE: rc = analyze_actilife_parse(text, len, epoch, window, s, err, errlen); break;
        default: rc = analyze_csv_parse(text, len, epoch, window, s, err, errlen); break;
        }
        free(text);
    }
    if (rc != 0)
        return -1;
    int64_t day = floor_div(s->start_local_min, 1440);
    struct analysis_input in = {s->values,
                                s->n,
                                (int)(s->start_local_min - day * 1440),
                                NULL,
                                NULL,
                                NULL,
                                NULL,
                                steps ? s->values : NULL,
                                steps,
                                NULL,
                                NULL};
    size_t wsz = analysis_workspace_size(s->n, p->bin_min);
    *ws = malloc(wsz);
    if (!*ws || analysis_report_run(&in, p, *ws, wsz, r) != 0) {
        snprintf(err, errlen, "analysis failed (out of memory or invalid input)");
        free(*ws);
        *ws = NULL;
        free(s->values);
        s->values = NULL;
        return -1;
    }
    return 0;
}

/* --conventions pyactigraphy: IS, IV, RA, L5, M10 and onsets as
 * pyActigraphy computes them (its defaults: binarised at > 4, no non-wear
 * mask), on the recording's own epochs, in place of Clarity's. */
static int apply_pyactigraphy(const struct analyze_series *s, struct analysis_report *r, char *err, size_t errlen)
{
    size_t pws = circadian_pyact_workspace_size(s->epoch_n, s->epoch_s);
    if (pws == 0) {
        snprintf(err, errlen, "pyActigraphy conventions: an epoch of %u s does not divide one hour", s->epoch_s);
        return -1;
    }
    if (s->epoch_n == 0) {
        snprintf(err, errlen,
                 "pyActigraphy conventions: no series at the %u-s epoch (over %u epochs); choose a --window",
                 s->epoch_s, ANALYZE_MAX_ROWS);
        return -1;
    }
    void *pw = malloc(pws);
    int64_t day0 = floor_div(s->start_local_s, 86400);
    int prc = pw ? circadian_npar_pyactigraphy(s->epoch_values, s->epoch_n, s->epoch_s,
                                               (int)(s->start_local_s - day0 * 86400), 4.0, pw, &r->npar)
                 : -1;
    free(pw);
    if (prc != 0) {
        snprintf(err, errlen, "pyActigraphy conventions: out of memory or invalid input");
        return -1;
    }
    return 0;
}

static void csv_metric(FILE *f, const struct metric *m)
{
    if (metric_value_valid(m))
        fprintf(f, ",%.10g", m->value);
    else
        fputs(",", f);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Folder mode: one summary CSV row per .awd/.csv recording, sorted by name;
 * a progress line per file on stderr. A file that fails gets a row with its
 * error and the run goes on; the exit status says whether any failed. */
static int analyze_folder(const char *dir, unsigned epoch, size_t window, int steps, int pyact,
                          const struct analysis_params *p)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t nn = 0, cap = 0;
    int failed = 0;
    if (!d) {
        fprintf(stderr, "clarity analyze: %s: %s\n", dir, strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        static const char *const exts[] = {".awd", ".csv", ".agd", ".mtn", ".txt"};
        int want = 0;
        for (size_t x = 0; x < sizeof(exts) / sizeof(exts[0]) && l >= 5; x++)
            want |= strcasecmp(e->d_name + l - 4, exts[x]) == 0;
        if (!want)
            continue;
        if (nn == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **t = nc <= 1000000 ? realloc(names, nc * sizeof(*t)) : NULL;
            if (!t)
                break;
            names = t;
            cap = nc;
        }
        names[nn] = strdup(e->d_name);
        if (names[nn])
            nn++;
    }
    closedir(d);
    if (nn)
        qsort(names, nn, sizeof(*names), by_name);
    printf("file,start_local,minutes,valid_minutes,nonwear_min,nights,total_sleep_mean_min,efficiency_mean_pct,"
           "estimated_rest_mean_min,sri,is,iv,ra,l5,l5_onset_min,m10,m10_onset_min,error\n");
    for (size_t i = 0; i < nn; i++) {
        char path[4096], err[256], a[64];
        struct analyze_series s = {0};
        struct analysis_report r;
        void *ws = NULL;
        int awd;
        fprintf(stderr, "[%zu/%zu] %s\n", i + 1, nn, names[i]);
        int pl = snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (pl < 0 || (size_t)pl >= sizeof(path)) {
            snprintf(err, sizeof(err), "path too long");
            printf("%s,,,,,,,,,,,,,,,,,\"%s\"\n", names[i], err);
            failed = 1;
        } else if (analyze_one(path, epoch, window, steps, p, &s, &ws, &r, &awd, err, sizeof(err)) != 0 ||
                   (pyact && apply_pyactigraphy(&s, &r, err, sizeof(err)) != 0)) {
            for (char *c = err; *c; c++)
                if (*c == '"')
                    *c = '\'';
            printf("%s,,,,,,,,,,,,,,,,,\"%s\"\n", names[i], err);
            failed = 1;
        } else {
            local_format(s.start_local_min, a, sizeof(a));
            printf("%s,%s,%zu,%zu", names[i], a, r.n_minutes, r.n_valid);
            csv_metric(stdout, &r.nonwear_min);
            printf(",%zu", r.n_nights);
            csv_metric(stdout, &r.tst_mean_min);
            csv_metric(stdout, &r.efficiency_mean_pct);
            csv_metric(stdout, &r.rest_mean_min);
            csv_metric(stdout, &r.sri);
            csv_metric(stdout, &r.npar.is);
            csv_metric(stdout, &r.npar.iv);
            csv_metric(stdout, &r.npar.ra);
            csv_metric(stdout, &r.npar.l5);
            csv_metric(stdout, &r.npar.l5_onset_min);
            csv_metric(stdout, &r.npar.m10);
            csv_metric(stdout, &r.npar.m10_onset_min);
            printf(",\n");
        }
        free(ws);
        free(s.values);
        free(names[i]);
    }
    free(names);
    if (fflush(stdout) != 0)
        return CLI_EXIT_FAILURE;
    return failed ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

static int write_to(const char *path, int epochs, const struct analyze_series *s, const struct analysis_report *r,
                    char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = epochs ? analyze_epochs_write(f, s->start_local_min, s->values, s->n, r)
                    : analyze_actogram_write(f, s->start_local_min, s->values, s->n, r);
    if (fclose(f) != 0)
        rc = -1;
    if (rc != 0)
        snprintf(err, errlen, "%s: write error", path);
    return rc;
}

int cli_analyze(int argc, char **argv)
{
    const char *file = NULL, *format = "json", *epochs_out = NULL, *actogram_out = NULL;
    int pyact = 0;
    size_t window = 0;
    unsigned long epoch = 0, bin = 60;
    int steps = 0;
    struct analysis_params p = analysis_params_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--format") == 0) {
            if (!val || (strcmp(val, "json") != 0 && strcmp(val, "text") != 0))
                return usage_error("--format takes json or text");
            format = val;
            i++;
        } else if (strcmp(a, "--epochs") == 0 || strcmp(a, "--actogram") == 0) {
            if (!val || !val[0])
                return usage_error("%s takes an output FILE", a);
            if (a[2] == 'e')
                epochs_out = val;
            else
                actogram_out = val;
            i++;
        } else if (strcmp(a, "--conventions") == 0) {
            if (val && strcmp(val, "clarity") == 0)
                pyact = 0;
            else if (val && strcmp(val, "pyactigraphy") == 0)
                pyact = 1;
            else
                return usage_error("--conventions takes clarity or pyactigraphy, not '%s'", val ? val : "");
            i++;
        } else if (strcmp(a, "--nonwear") == 0) {
            if (val && strcmp(val, "choi") == 0)
                p.nonwear_choi = 1;
            else if (val && strcmp(val, "off") == 0)
                p.nonwear_choi = 0;
            else
                return usage_error("--nonwear takes choi or off, not '%s'", val ? val : "");
            i++;
        } else if (strcmp(a, "--window") == 0) {
            if (!val || analyze_duration_parse(val, &window) != 0)
                return usage_error("--window takes a duration like 7d, 36h or 90m, not '%s'", val ? val : "");
            i++;
        } else if (strcmp(a, "--scorer") == 0) {
            if (val && strcmp(val, "cole-kripke") == 0) {
                p.scorer = ANALYSIS_SCORER_COLE_KRIPKE;
                p.ck_scale = SLEEP_CK_ORIGINAL;
            } else if (val && strcmp(val, "cole-kripke-actigraph") == 0) {
                p.scorer = ANALYSIS_SCORER_COLE_KRIPKE;
                p.ck_scale = SLEEP_CK_ACTIGRAPH;
            } else if (val && strcmp(val, "sadeh") == 0) {
                p.scorer = ANALYSIS_SCORER_SADEH;
            } else {
                return usage_error("--scorer takes cole-kripke, cole-kripke-actigraph or sadeh, not '%s'",
                                   val ? val : "");
            }
            i++;
        } else if (strcmp(a, "--no-webster") == 0) {
            p.webster = 0;
        } else if (strcmp(a, "--bin") == 0) {
            if (!val || parse_uint(val, 60, &bin) != 0 || bin == 0 || 60 % bin != 0)
                return usage_error("--bin takes minutes dividing 60 (1, 2, 5, 10, 15, 30, 60...), not '%s'",
                                   val ? val : "");
            i++;
        } else if (strcmp(a, "--epoch") == 0) {
            if (!val || parse_uint(val, 3600, &epoch) != 0 || epoch == 0)
                return usage_error("--epoch takes seconds, not '%s'", val ? val : "");
            i++;
        } else if (strcmp(a, "--input") == 0) {
            if (val && strcmp(val, "counts") == 0)
                steps = 0;
            else if (val && strcmp(val, "steps") == 0)
                steps = 1;
            else
                return usage_error("--input takes counts or steps, not '%s'", val ? val : "");
            i++;
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option '%s'", a);
        } else if (file) {
            return usage_error("more than one FILE ('%s')", a);
        } else {
            file = a;
        }
    }
    if (!file)
        return usage_error("missing FILE");
    p.bin_min = bin;
    struct stat sb;
    if (stat(file, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        if (epochs_out || actogram_out)
            return usage_error("--epochs and --actogram take one recording, not a folder");
        return analyze_folder(file, (unsigned)epoch, window, steps, pyact, &p);
    }

    int rc = CLI_EXIT_FAILURE;
    char err[256];
    char *out = NULL;
    void *ws = NULL;
    json_t *doc = NULL;
    struct analyze_series s = {0};
    struct analysis_report r;
    int awd = 0;
    if (analyze_one(file, (unsigned)epoch, window, steps, &p, &s, &ws, &r, &awd, err, sizeof(err)) != 0)
        goto fail;
    if (pyact && apply_pyactigraphy(&s, &r, err, sizeof(err)) != 0)
        goto fail;
    if (epochs_out && write_to(epochs_out, 1, &s, &r, err, sizeof(err)) != 0)
        goto fail;
    if (actogram_out && write_to(actogram_out, 0, &s, &r, err, sizeof(err)) != 0)
        goto fail;
    if (strcmp(format, "text") == 0) {
        report_text(stdout, file, &s, &p, &r, steps);
        if (pyact)
            printf("(IS, IV, RA, L5, M10 and onsets: pyActigraphy's conventions on %u-s epochs; L5/M10 are the\n"
                   " mean share of active epochs, > 4 counts)\n",
                   s.epoch_s);
    } else {
        static const char *const fmt_names[] = {"csv", "awd", "rpx", "atr", "mtn", "actilife-csv", "agd"};
        doc = report_json(file, fmt_names[awd], &s, &p, &r, steps);
        if (doc && pyact)
            json_object_set_new(json_object_get(doc, "input"), "epoch_s", json_integer(s.epoch_s));
        if (doc && pyact)
            json_object_set_new(json_object_get(doc, "input"), "conventions",
                                json_string("pyactigraphy (binarised > 4, hourly sums from the first epoch, "
                                            "ddof-1 variances, L5/M10 per recorded epoch)"));
        out = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) : NULL;
        if (!out) {
            snprintf(err, sizeof(err), "out of memory rendering JSON");
            goto fail;
        }
        puts(out);
    }
    if (fflush(stdout) != 0) {
        snprintf(err, sizeof(err), "write error on standard output");
        goto fail;
    }
    rc = CLI_EXIT_OK;
    goto done;
fail:
    fprintf(stderr, "clarity analyze: %s\n", err);
done:
    free(out);
    json_decref(doc);
    free(ws);
    free(s.values);
    return rc;
}
