/*
 * recording.c — readers of research actigraphy recordings (contract in
 * recording.h): CSV, Actiwatch .AWD, Philips Actiware, Condor ActTrust,
 * CamNtech MotionWatch, ActiLife CSV and ActiGraph .agd, each into a minute
 * series and the recording's own epoch series, plus the epochs as samples.
 *
 * Moved here from cli/analyze.c (issue #20) so that the API's recording
 * upload and `clarity analyze` read a file with the same code.
 */
#include "ingest/recording.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "analysis/series.h"
#include "core/err.h"
#include "core/timeutil.h"
#include "ingest/apple_export.h"

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

/* Growable row arrays, capped at RECORDING_MAX_ROWS. */
struct rows {
    int64_t *sec; /* local seconds (days_from_civil * 86400 + time of day) */
    double *val;
    size_t n, cap;
};

static int rows_push(struct rows *r, int64_t sec, double v)
{
    if (r->n == r->cap) {
        if (r->cap >= RECORDING_MAX_ROWS)
            return -1;
        size_t nc = r->cap ? r->cap * 2 : 4096;
        if (nc > RECORDING_MAX_ROWS)
            nc = RECORDING_MAX_ROWS;
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
static int rows_to_series(const struct rows *r, unsigned epoch_s, size_t window_min, struct recording_series *out,
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
    if (ne > RECORDING_MAX_ROWS)
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

int recording_csv_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct recording_series *out,
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
                    snprintf(err, errlen, "line %zu: more than %u rows or out of memory", lineno, RECORDING_MAX_ROWS);
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

int recording_awd_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct recording_series *out,
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
            snprintf(err, errlen, "AWD line %zu: more than %u rows or out of memory", lineno, RECORDING_MAX_ROWS);
            goto done;
        }
    }
    rc = rows_to_series(&r, epoch_s, window_min, out, err, errlen);
done:
    rows_free(&r);
    return rc;
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
        if (r->cap >= RECORDING_MAX_ROWS)
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
                        struct recording_series *out, char *err, size_t errlen)
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
            snprintf(err, errlen, "%s: more than %u rows or out of memory", fmt, RECORDING_MAX_ROWS);
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

int recording_rpx_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct recording_series *out,
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
            snprintf(err, errlen, "RPX line %zu: more than %u rows or out of memory", lineno, RECORDING_MAX_ROWS);
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

int recording_atr_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct recording_series *out,
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
            snprintf(err, errlen, "ATR line %zu: more than %u rows or out of memory", lineno, RECORDING_MAX_ROWS);
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

int recording_mtn_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min, struct recording_series *out,
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
            snprintf(err, errlen, "MTN: more than %u items or out of memory", RECORDING_MAX_ROWS);
            goto done;
        }
        i = j;
    }
    rc = rows_to_series(&r, (unsigned)ep, window_min, out, err, errlen);
done:
    rows_free(&r);
    return rc;
}

int recording_actilife_parse(const char *text, size_t len, unsigned epoch_s, size_t window_min,
                             struct recording_series *out, char *err, size_t errlen)
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
            snprintf(err, errlen, "ActiLife line %zu: more than %u rows or out of memory", lineno, RECORDING_MAX_ROWS);
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

int recording_agd_read(const char *path, unsigned epoch_s, size_t window_min, struct recording_series *out, char *err,
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
            snprintf(err, errlen, "AGD: more than %u rows or out of memory", RECORDING_MAX_ROWS);
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
enum recording_format recording_format_detect(const char *name, const char *text, size_t len)
{
    size_t l = strlen(name);
    if (l > 4 && strcasecmp(name + l - 4, ".awd") == 0)
        return RECORDING_FMT_AWD;
    if (l > 4 && strcasecmp(name + l - 4, ".agd") == 0)
        return RECORDING_FMT_AGD;
    if (l > 4 && strcasecmp(name + l - 4, ".mtn") == 0)
        return RECORDING_FMT_MTN;
    size_t n = len < 512 ? len : 512;
    char head[513];
    memcpy(head, text, n);
    head[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (head[i] == '\0')
            head[i] = ' ';
    if (strstr(head, "Actiware") != NULL)
        return RECORDING_FMT_RPX;
    if (strstr(head, "Condor Instruments") != NULL)
        return RECORDING_FMT_ATR;
    if (strstr(head, "Data File Created By ActiGraph") != NULL)
        return RECORDING_FMT_ACTILIFE;
    if (strstr(head, "<motionfile>") != NULL)
        return RECORDING_FMT_MTN;
    return RECORDING_FMT_CSV;
}

/* ---- names and samples ----------------------------------------------- */

const char *recording_format_name(enum recording_format f)
{
    static const char *const names[] = {"csv", "awd", "actiware", "acttrust", "motionwatch", "actilife", "agd"};
    return (unsigned)f < sizeof(names) / sizeof(names[0]) ? names[f] : "csv";
}

const char *recording_format_label(enum recording_format f)
{
    static const char *const labels[] = {"Recording (CSV)", "Actiwatch (AWD)",      "Actiware export",
                                         "Condor ActTrust", "CamNtech MotionWatch", "ActiLife CSV",
                                         "ActiGraph (AGD)"};
    return (unsigned)f < sizeof(labels) / sizeof(labels[0]) ? labels[f] : labels[0];
}

size_t recording_samples_total(const struct recording_series *s) { return s->epoch_n > 0 ? s->epoch_n : s->n; }

size_t recording_samples_count(const struct recording_series *s)
{
    const double *v = s->epoch_n > 0 ? s->epoch_values : s->values;
    size_t total = recording_samples_total(s), n = 0;
    for (size_t i = 0; i < total; i++)
        n += !isnan(v[i]);
    return n;
}

int recording_samples_next(const struct recording_series *s, const struct recording_sample_opts *o, size_t *next,
                           size_t max, struct upload_samples *out)
{
    if (s == NULL || o == NULL || next == NULL || out == NULL || o->user_id == NULL || o->source == NULL ||
        o->tz_offset_min < -1080 || o->tz_offset_min > 1080)
        return INGEST_EINVAL;
    const int epochs = s->epoch_n > 0;
    const size_t total = recording_samples_total(s);
    const double *v = epochs ? s->epoch_values : s->values;
    const int64_t step_s = epochs ? (int64_t)s->epoch_s : 60;
    const int64_t t0_s = epochs ? s->start_local_s : s->start_local_min * 60;
    size_t i = *next, added = 0;
    for (; i < total && added < max; i++) {
        if (isnan(v[i]))
            continue;
        int64_t start_ms = (t0_s + (int64_t)i * step_s - (int64_t)o->tz_offset_min * 60) * 1000;
        int64_t end_ms = start_ms + step_s * 1000;
        struct store_sample *x = upload_samples_add(out);
        char val[32], pl[64];
        if (x == NULL)
            return INGEST_ENOMEM;
        snprintf(x->user_id, sizeof(x->user_id), "%s", o->user_id);
        snprintf(x->metric_type, sizeof(x->metric_type), "%s", RECORDING_METRIC_TYPE);
        snprintf(x->unit, sizeof(x->unit), "count");
        snprintf(x->source, sizeof(x->source), "%.127s", o->source);
        x->start_ms = start_ms;
        x->end_ms = end_ms;
        x->value = v[i];
        snprintf(val, sizeof(val), "%.15g", v[i]);
        apple_export_content_key(RECORDING_METRIC_TYPE, start_ms, end_ms, val, "count", x->source, x->hk_uuid,
                                 sizeof(x->hk_uuid));
        int pn = snprintf(pl, sizeof(pl), "{\"tz_offset_min\":%d,\"epoch_s\":%lld}", (int)o->tz_offset_min,
                          (long long)step_s);
        x->payload = malloc((size_t)pn + 1);
        if (x->payload == NULL) {
            out->oom = 1;
            return INGEST_ENOMEM;
        }
        memcpy(x->payload, pl, (size_t)pn + 1);
        added++;
    }
    *next = i;
    return 0;
}
