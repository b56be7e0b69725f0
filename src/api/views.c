/*
 * views.c — the aggregates the web app's views draw (issue 20), for the
 * caller's own data only:
 *
 *   GET /api/v1/series?type=&from=&to=&points=   one type downsampled into
 *       at most `points` (≤ 2,000) buckets aligned to `from`
 *   GET /api/v1/rhythm?from=&to=&tz_offset_min=  IS, IV, RA, L5, M10 per
 *       7-day week of step counts, the mean 24-h profile and its cosinor
 *   GET /api/v1/sleep/nights?from=&to=          sleep-stage intervals
 *       grouped by night
 *   GET /api/v1/uploads                          the caller's uploads with
 *       their processing status, newest first
 *   GET /api/v1/analyses                         the caller's newest stored
 *       analyses (pipeline or API), newest first
 *
 * Reads go through store_sample_window (the columnar per-day read the
 * analysis uses), so a year of minute data is one bounded read and one pass;
 * /series first asks store_series_aggregate (per-row 15-minute aggregates,
 * migration 011), which answers exactly the same numbers from a few hundred
 * records where it can (docs/data-model.md, "The series read").
 * Shapes and limits: docs/api.md, "Views".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/circadian.h"
#include "api/api.h"
#include "api/guard.h"
#include "core/json_load.h"
#include "core/timeutil.h"
#include "ingest/healthkit.h"
#include "store/store.h"

#define VIEW_MAX_POINTS 2000
#define VIEW_DAY_MS 86400000LL
#define VIEW_MAX_SPAN_MS (731 * VIEW_DAY_MS) /* two years */
#define VIEW_RHYTHM_MAX_SPAN_MS (371 * VIEW_DAY_MS)
#define VIEW_WEEK_MIN 10080
#define VIEW_MAX_NIGHT_ROWS 200000

/* Parse ?from= and ?to= (RFC 3339, to after from, span at most max_span);
 * answers 422 and returns -1 when they are not usable. */
static int view_range(struct http_request *req, struct http_response *res, int64_t max_span, int64_t *from, int64_t *to)
{
    const char *f = http_request_query(req, "from");
    const char *t = http_request_query(req, "to");
    int off = 0;
    if (f == NULL || t == NULL || time_parse_rfc3339(f, from, &off) != 0 || time_parse_rfc3339(t, to, &off) != 0) {
        struct problem *p =
            http_respond_problem(res, 422, "validation-error", "from and to are required RFC 3339 times.");
        problem_add_error(p, f == NULL || time_parse_rfc3339(f, from, &off) != 0 ? "/query/from" : "/query/to",
                          "must be an RFC 3339 date-time");
        return -1;
    }
    if (*to <= *from || *to - *from > max_span) {
        struct problem *p = http_respond_problem(res, 422, "validation-error", "The range is empty or too long.");
        problem_add_error(p, "/query/to",
                          max_span > VIEW_RHYTHM_MAX_SPAN_MS ? "must be after from and at most 731 days later"
                                                             : "must be after from and at most 371 days later");
        return -1;
    }
    return 0;
}

/* A metric type name: 1–47 of [a-z0-9_]. */
static int view_type_ok(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > 47)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* Parse an integer query argument in [lo, hi]; def when absent. -1 after
 * answering 422. */
static int view_int(struct http_request *req, struct http_response *res, const char *name, long lo, long hi, long def,
                    long *out)
{
    const char *s = http_request_query(req, name);
    *out = def;
    if (s == NULL)
        return 0;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || end == NULL || *end != '\0' || v < lo || v > hi) {
        char ptr[64];
        snprintf(ptr, sizeof(ptr), "/query/%s", name);
        struct problem *p = http_respond_problem(res, 422, "validation-error", "%s is out of range.", name);
        problem_add_error(p, ptr, "must be an integer in range");
        return -1;
    }
    *out = v;
    return 0;
}

/* One read of the caller's rows of `type` in [from, to). */
static int view_read(struct http_request *req, const char *type, int payload, int64_t from, int64_t to,
                     struct store_window *w)
{
    struct api_ctx *ctx = req->route_ctx;
    const char *types[1] = {type};
    struct store_window_query q = {.user_id = access_principal(req)->user_id,
                                   .types = types,
                                   .n_types = 1,
                                   .payload_types = payload ? 1u : 0u,
                                   .from_ms = from,
                                   .to_ms = to};
    struct store_tx *tx = NULL;
    int rc = store_tx_begin(ctx->store, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_sample_window(tx, &q, w);
    store_tx_rollback(tx);
    return rc;
}

/* The bucket width: the first of these at least span/points, so that
 * buckets stay aligned to hours and days; whole days beyond. */
static int64_t view_bucket_ms(int64_t span, long points)
{
    static const int64_t nice_s[] = {60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400};
    int64_t need = (span + points - 1) / points;
    for (size_t i = 0; i < sizeof(nice_s) / sizeof(nice_s[0]); i++)
        if (nice_s[i] * 1000 >= need)
            return nice_s[i] * 1000;
    return (need + VIEW_DAY_MS - 1) / VIEW_DAY_MS * VIEW_DAY_MS;
}

static void h_series(struct http_request *req, struct http_response *res)
{
    const char *type = http_request_query(req, "type");
    if (!view_type_ok(type)) {
        struct problem *p = http_respond_problem(res, 422, "validation-error", "A metric type is required.");
        problem_add_error(p, "/query/type", "must be a metric type such as steps or heart_rate");
        return;
    }
    int64_t from, to;
    long points;
    if (view_range(req, res, VIEW_MAX_SPAN_MS, &from, &to) != 0 ||
        view_int(req, res, "points", 1, VIEW_MAX_POINTS, 500, &points) != 0)
        return;
    int64_t bucket = view_bucket_ms(to - from, points);
    size_t nb = (size_t)((to - from + bucket - 1) / bucket);
    struct store_window w;
    memset(&w, 0, sizeof(w));
    double *sum = calloc(nb, sizeof(double)), *mn = malloc(nb * sizeof(double)), *mx = malloc(nb * sizeof(double));
    int64_t *cnt = calloc(nb, sizeof(int64_t));
    /* The per-slot aggregates when they give exactly these numbers (store.h:
     * whole 15-minute buckets, small integer values), else every sample. */
    struct store_series_query sq = {access_principal(req)->user_id, type, from, to, bucket, nb};
    struct store_series_buckets agg = {cnt, sum, mn, mx, 0};
    int hit = 0;
    int rc = sum && mn && mx && cnt ? store_series_aggregate(((struct api_ctx *)req->route_ctx)->store, &sq, &agg, &hit)
                                    : STORE_ENOMEM;
    if (rc == 0 && !hit) {
        memset(sum, 0, nb * sizeof(double));
        memset(cnt, 0, nb * sizeof(int64_t));
        rc = view_read(req, type, 0, from, to, &w);
    }
    if (rc != 0) {
        api_store_failure(res, rc);
        goto done;
    }
    for (size_t i = 0; i < w.n; i++) {
        double v = w.value[i];
        if (!isfinite(v))
            continue;
        size_t b = (size_t)((w.start_ms[i] - from) / bucket);
        if (b >= nb)
            continue;
        if (cnt[b] == 0 || v < mn[b])
            mn[b] = v;
        if (cnt[b] == 0 || v > mx[b])
            mx[b] = v;
        sum[b] += v;
        cnt[b]++;
    }
    json_t *t = json_array(), *n = json_array(), *js = json_array(), *jm = json_array(), *jmin = json_array(),
           *jmax = json_array();
    for (size_t b = 0; b < nb; b++) {
        if (cnt[b] == 0)
            continue;
        json_array_append_new(t, json_integer(from + (int64_t)b * bucket));
        json_array_append_new(n, json_integer(cnt[b]));
        json_array_append_new(js, json_real(sum[b]));
        json_array_append_new(jm, json_real(sum[b] / (double)cnt[b]));
        json_array_append_new(jmin, json_real(mn[b]));
        json_array_append_new(jmax, json_real(mx[b]));
    }
    json_t *o = json_pack("{s:s, s:o, s:o, s:I, s:I, s:I, s:{s:o, s:o, s:o, s:o, s:o, s:o}}", "type", type, "from",
                          api_time_json(from), "to", api_time_json(to), "bucket_seconds", (json_int_t)(bucket / 1000),
                          "buckets", (json_int_t)nb, "samples", (json_int_t)(hit ? agg.samples : (int64_t)w.n),
                          "points", "t", t, "n", n, "sum", js, "mean", jm, "min", jmin, "max", jmax);
    http_respond_json(res, 200, o);
done:
    store_window_free(&w);
    free(sum);
    free(mn);
    free(mx);
    free(cnt);
}

static json_t *metric_json(struct metric m)
{
    if (m.reason != NULL)
        return json_pack("{s:n, s:s, s:I}", "value", "reason", m.reason, "n", (json_int_t)m.n);
    return json_pack("{s:f, s:I}", "value", m.value, "n", (json_int_t)m.n);
}

static json_t *npar_json(const struct circadian_npar *np)
{
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "is", metric_json(np->is), "iv", metric_json(np->iv), "ra",
                     metric_json(np->ra), "l5", metric_json(np->l5), "l5_onset_min", metric_json(np->l5_onset_min),
                     "m10", metric_json(np->m10), "m10_onset_min", metric_json(np->m10_onset_min));
}

/*
 * Steps per local minute over [from, to): each sample's count spread evenly
 * over the minutes it covers. Minutes from the first to the last minute
 * with a sample are 0 when nothing was counted (the phone recorded no step);
 * minutes before the first and after the last are missing (NaN).
 */
static void view_minutes(const struct store_window *w, int64_t from, double *x, size_t n)
{
    size_t first = n, last = 0;
    for (size_t i = 0; i < n; i++)
        x[i] = 0.0;
    for (size_t i = 0; i < w->n; i++) {
        double v = w->value[i];
        if (!isfinite(v) || v < 0)
            continue;
        int64_t s = (w->start_ms[i] - from) / 60000, e = (w->end_ms[i] - from + 59999) / 60000;
        if (e <= s)
            e = s + 1;
        if (e - s > 1440) /* a day-long total tells nothing about the hour */
            continue;
        double per = v / (double)(e - s);
        for (int64_t m = s; m < e; m++) {
            if (m < 0 || (size_t)m >= n)
                continue;
            x[m] += per;
            if ((size_t)m < first)
                first = (size_t)m;
            if ((size_t)m > last)
                last = (size_t)m;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (first == n || i < first || i > last)
            x[i] = NAN;
}

static void h_rhythm(struct http_request *req, struct http_response *res)
{
    int64_t from, to;
    long tz;
    if (view_range(req, res, VIEW_RHYTHM_MAX_SPAN_MS, &from, &to) != 0 ||
        view_int(req, res, "tz_offset_min", -840, 840, 0, &tz) != 0)
        return;
    size_t n = (size_t)((to - from) / 60000);
    if (n < 60) {
        struct problem *p = http_respond_problem(res, 422, "validation-error", "The range is shorter than an hour.");
        problem_add_error(p, "/query/to", "must be at least an hour after from");
        return;
    }
    struct store_window w;
    memset(&w, 0, sizeof(w));
    double *x = malloc(n * sizeof(double));
    void *ws = malloc(circadian_workspace_size(VIEW_WEEK_MIN, 60));
    int rc = x && ws ? view_read(req, HK_T_STEPS, 0, from, to, &w) : STORE_ENOMEM;
    if (rc != 0) {
        api_store_failure(res, rc);
        goto done;
    }
    view_minutes(&w, from, x, n);
    int64_t local0 = (from / 60000 + tz) % 1440;
    int start_min = (int)(local0 < 0 ? local0 + 1440 : local0);
    json_t *weeks = json_array();
    for (size_t k = 0; k < n; k += VIEW_WEEK_MIN) {
        size_t len = n - k < VIEW_WEEK_MIN ? n - k : VIEW_WEEK_MIN;
        struct circadian_npar np;
        struct circadian_cosinor cz;
        int sm = (int)((start_min + k) % 1440);
        if (circadian_npar_compute(x + k, len, sm, 60, ws, &np) != 0 ||
            circadian_cosinor_fit(x + k, len, sm, 1440.0, &cz) != 0)
            continue;
        json_t *wk = npar_json(&np);
        json_object_set_new(wk, "week_start", api_time_json(from + (int64_t)k * 60000));
        json_object_set_new(wk, "acrophase_min", metric_json(cz.acrophase_min));
        json_array_append_new(weeks, wk);
    }
    /* The mean 24-h profile (steps per minute, by local hour) and the
     * cosinor over the whole range. */
    double hsum[24] = {0};
    size_t hn[24] = {0};
    for (size_t i = 0; i < n; i++) {
        if (!isnan(x[i])) {
            size_t h = ((size_t)start_min + i) % 1440 / 60;
            hsum[h] += x[i];
            hn[h]++;
        }
    }
    json_t *profile = json_array();
    for (size_t h = 0; h < 24; h++)
        json_array_append_new(profile, hn[h] ? json_real(hsum[h] / (double)hn[h]) : json_null());
    struct circadian_cosinor cz;
    json_t *cos = json_null();
    if (circadian_cosinor_fit(x, n, start_min, 1440.0, &cz) == 0)
        cos = json_pack("{s:o, s:o, s:o, s:o}", "mesor", metric_json(cz.mesor), "amplitude", metric_json(cz.amplitude),
                        "acrophase_min", metric_json(cz.acrophase_min), "r_squared", metric_json(cz.r_squared));
    json_t *o = json_pack("{s:o, s:o, s:I, s:s, s:I, s:o, s:o, s:o}", "from", api_time_json(from), "to",
                          api_time_json(to), "tz_offset_min", (json_int_t)tz, "input", "steps per minute", "samples",
                          (json_int_t)w.n, "weeks", weeks, "profile", profile, "cosinor", cos);
    http_respond_json(res, 200, o);
done:
    store_window_free(&w);
    free(x);
    free(ws);
}

/* The stage of a sleep_stage payload ({"category":"asleep_core",…}). */
static void view_category(const char *payload, char *out, size_t len)
{
    snprintf(out, len, "asleep_unspecified");
    const char *p = payload != NULL ? strstr(payload, "\"category\":\"") : NULL;
    if (p == NULL)
        return;
    p += 12;
    size_t k = 0;
    while (p[k] != '\0' && p[k] != '"' && k + 1 < len && k < 31)
        k++;
    if (p[k] == '"') {
        memcpy(out, p, k);
        out[k] = '\0';
    }
}

static void h_nights(struct http_request *req, struct http_response *res)
{
    int64_t from, to;
    if (view_range(req, res, VIEW_RHYTHM_MAX_SPAN_MS, &from, &to) != 0)
        return;
    struct store_window w;
    memset(&w, 0, sizeof(w));
    int rc = view_read(req, HK_T_SLEEP, 1, from, to, &w);
    if (rc != 0) {
        api_store_failure(res, rc);
        store_window_free(&w);
        return;
    }
    /* A night is the local calendar day on which its noon-to-noon span
     * ends: an interval belongs to the date of (local start + 12 h). */
    json_t *nights = json_array();
    json_t *cur = NULL;
    char cur_date[16] = "";
    size_t rows = w.n < VIEW_MAX_NIGHT_ROWS ? w.n : VIEW_MAX_NIGHT_ROWS;
    for (size_t i = 0; i < rows; i++) {
        int64_t local = w.start_ms[i] + (int64_t)w.offset_min[i] * 60000 + 12 * 3600000LL;
        char iso[40], date[16];
        time_format_rfc3339_ms(local - (local % VIEW_DAY_MS + VIEW_DAY_MS) % VIEW_DAY_MS, iso, sizeof(iso));
        snprintf(date, sizeof(date), "%.10s", iso);
        if (cur == NULL || strcmp(date, cur_date) != 0) {
            cur = json_array();
            json_array_append_new(nights, json_pack("{s:s, s:o}", "night", date, "stages", cur));
            snprintf(cur_date, sizeof(cur_date), "%s", date);
        }
        char cat[32];
        view_category(w.payload[i] != STORE_WINDOW_NO_PAYLOAD ? w.text + w.payload[i] : NULL, cat, sizeof(cat));
        json_array_append_new(cur, json_pack("[I, I, s, i]", (json_int_t)w.start_ms[i], (json_int_t)w.end_ms[i], cat,
                                             (int)w.offset_min[i]));
    }
    json_t *o = json_pack("{s:o, s:o, s:s, s:o, s:b}", "from", api_time_json(from), "to", api_time_json(to), "kind",
                          "stages", "nights", nights, "truncated", w.n > rows);
    store_window_free(&w);
    http_respond_json(res, 200, o);
}

static void h_uploads(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    size_t limit, n = 0;
    struct store_cursor after, next;
    if (api_page_params(req, res, 50, &limit, &after) != 0)
        return;
    memset(&next, 0, sizeof(next));
    struct store_upload *v = NULL;
    struct store_tx *tx = NULL;
    int rc = store_tx_begin(ctx->store, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_upload_list(tx, access_principal(req)->user_id, &after, limit, &v, &n, &next);
    store_tx_rollback(tx);
    if (rc != 0) {
        api_store_failure(res, rc);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, api_upload_status_json(&v[i], "upload_id"));
    free(v);
    json_t *o = json_pack("{s:o}", "data", arr);
    api_page_links(o, req, n, limit, &next, NULL);
    http_respond_json(res, 200, o);
}

static void h_analyses(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    size_t limit, n = 0;
    struct store_cursor after, next;
    if (api_page_params(req, res, 5, &limit, &after) != 0)
        return;
    memset(&next, 0, sizeof(next));
    struct store_analysis *v = NULL;
    struct store_tx *tx = NULL;
    int rc = store_tx_begin(ctx->store, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_analysis_list(tx, access_principal(req)->user_id, &after, limit, &v, &n, &next);
    store_tx_rollback(tx);
    if (rc != 0) {
        api_store_failure(res, rc);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct store_analysis *a = &v[i];
        json_t *cov = a->coverage ? json_parse_str(a->coverage, 0, NULL) : NULL;
        json_t *r = a->result ? json_parse_str(a->result, 0, NULL) : NULL;
        json_array_append_new(arr, json_pack("{s:s, s:o, s:s, s:o, s:o, s:o}", "analysis_id", a->id, "upload_id",
                                             a->upload_id[0] ? json_string(a->upload_id) : json_null(), "kind", a->kind,
                                             "created_at", api_time_json(a->created_at_ms), "coverage",
                                             cov ? cov : json_null(), "result", r ? r : json_null()));
    }
    store_analysis_list_free(v, n);
    json_t *o = json_pack("{s:o}", "data", arr);
    api_page_links(o, req, n, limit, &next, NULL);
    http_respond_json(res, 200, o);
}

int api_views_register(struct router *r, struct api_ctx *ctx)
{
    const unsigned rd = GUARD_AUTH | GUARD_RATE(GUARD_RATE_API);
    int rc = 0;
    rc |= router_add(r, HTTP_GET, "/api/v1/series", h_series, ctx, rd);
    rc |= router_add(r, HTTP_GET, "/api/v1/rhythm", h_rhythm, ctx, rd);
    rc |= router_add(r, HTTP_GET, "/api/v1/sleep/nights", h_nights, ctx, rd);
    rc |= router_add(r, HTTP_GET, "/api/v1/uploads", h_uploads, ctx, rd);
    rc |= router_add(r, HTTP_GET, "/api/v1/analyses", h_analyses, ctx, rd);
    return rc != 0 ? -1 : 0;
}
