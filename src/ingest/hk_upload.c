/*
 * hk_upload.c — native HealthKit uploads into samples. See hk_upload.h; the
 * mapping of identifiers and units is healthkit.c's.
 */
#include "ingest/hk_upload.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/limits.h"
#include "core/timeutil.h"
#include "ingest/healthkit.h"

/* A stable dedup key for a sample without a HealthKit uuid: a hash of what
 * identifies it, so a retried sync maps to the same key. */
static void content_key(char out[64], const char *identifier, int64_t start, int64_t end, double value,
                        const char *source)
{
    char text[512];
    unsigned char h[16];
    snprintf(text, sizeof(text), "%s|%lld|%lld|%.17g|%s", identifier, (long long)start, (long long)end, value,
             source != NULL ? source : "");
    crypto_generichash(h, sizeof(h), (const unsigned char *)text, strlen(text), NULL, 0);
    char hex[33];
    sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
    snprintf(out, 64, "h:%s", hex);
}

struct hk_ctx {
    struct check *in;
    struct upload_samples *out;
    const char *user_id;
    json_t *unsupported;
};

/* Common fields of a HealthKit sample; returns 0 when usable. */
static int hk_common(struct hk_ctx *c, json_t *s, const char *ptr, int64_t *start, int64_t *end, int *offset,
                     const char **uuid, const char **source, const char **device)
{
    char p[160];
    int before = c->in->nerrors;
    *uuid = check_bytes(c->in, s, ptr, "uuid", 0, 1, 63);
    *source = check_bytes(c->in, s, ptr, "source_name", 0, 0, 127);
    *device = check_bytes(c->in, s, ptr, "device", 0, 0, 127);
    json_t *meta = json_object_get(s, "metadata");
    if (meta != NULL && !json_is_object(meta) && !json_is_null(meta)) {
        snprintf(p, sizeof(p), "%s/metadata", ptr);
        check_error(c->in, p, "must be an object");
    }
    const char *sd = check_string(c->in, s, ptr, "start_date", 1, 1, 64);
    const char *ed = check_string(c->in, s, ptr, "end_date", 1, 1, 64);
    int eo = 0;
    if (sd != NULL && time_parse_rfc3339(sd, start, offset) != 0) {
        snprintf(p, sizeof(p), "%s/start_date", ptr);
        check_error(c->in, p, "must be an RFC 3339 date-time with offset");
    }
    if (ed != NULL && time_parse_rfc3339(ed, end, &eo) != 0) {
        snprintf(p, sizeof(p), "%s/end_date", ptr);
        check_error(c->in, p, "must be an RFC 3339 date-time with offset");
    }
    if (c->in->nerrors == before && *end < *start) {
        snprintf(p, sizeof(p), "%s/end_date", ptr);
        check_error(c->in, p, "must not be before start_date");
    }
    return c->in->nerrors == before ? 0 : -1;
}

static void unsupported(struct hk_ctx *c, const char *ptr, const char *identifier, const char *why)
{
    if (json_array_size(c->unsupported) < LIMIT_HEALTHKIT_UNSUPPORTED_LISTED)
        json_array_append_new(c->unsupported,
                              json_pack("{s:s, s:s, s:s}", "pointer", ptr, "identifier", identifier, "reason", why));
}

/* Copy a string into a fixed field as snprintf("%s") would (truncated,
 * always terminated) without its cost: hk_store runs once per sample. */
static void field(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The sample's payload, {"tz_offset_min":N[,"category":"..."]}, as
 * json_dumps(JSON_COMPACT) writes it. The category is one of healthkit.c's
 * static names (plain ASCII words), checked so that no escaping is needed. */
static char *payload(int offset, const char *category)
{
    size_t cn = category != NULL ? strlen(category) : 0;
    for (size_t i = 0; i < cn; i++)
        if (!((category[i] >= 'a' && category[i] <= 'z') || category[i] == '_')) {
            json_t *pl = json_pack("{s:i, s:s}", "tz_offset_min", offset, "category", category);
            char *text = pl != NULL ? json_dumps(pl, JSON_COMPACT) : NULL;
            json_decref(pl);
            return text;
        }
    char *p = malloc(40 + cn);
    if (p == NULL)
        return NULL;
    int n = snprintf(p, 40, "{\"tz_offset_min\":%d", offset);
    if (category != NULL) {
        memcpy(p + n, ",\"category\":\"", 13);
        memcpy(p + n + 13, category, cn);
        n += 13 + (int)cn;
        p[n++] = '"';
    }
    p[n++] = '}';
    p[n] = '\0';
    return p;
}

static struct store_sample *hk_store(struct hk_ctx *c, const struct hk_mapped *m, int64_t start, int64_t end,
                                     int offset, const char *uuid, const char *identifier, double raw,
                                     const char *source, const char *device)
{
    struct store_sample *s = upload_samples_add(c->out);
    if (s == NULL)
        return NULL;
    field(s->user_id, sizeof(s->user_id), c->user_id);
    field(s->metric_type, sizeof(s->metric_type), m->metric_type);
    field(s->unit, sizeof(s->unit), m->unit);
    field(s->source, sizeof(s->source), source != NULL ? source : "healthkit");
    field(s->device, sizeof(s->device), device != NULL ? device : "");
    if (uuid != NULL)
        field(s->hk_uuid, sizeof(s->hk_uuid), uuid);
    else
        content_key(s->hk_uuid, identifier, start, end, raw, source);
    s->value = m->value;
    s->start_ms = start;
    s->end_ms = end;
    /* The device's UTC offset matters to the analysis (local time); the
     * category (sleep stage) rides along. */
    s->payload = payload(offset, m->category);
    if (s->payload == NULL)
        c->out->oom = 1; /* the upload is refused whole (503), not stored without it */
    return s;
}

static void hk_quantity(struct hk_ctx *c, json_t *s, const char *ptr)
{
    static const char *const allowed[] = {"uuid",     "identifier",  "value",  "unit",     "start_date",
                                          "end_date", "source_name", "device", "metadata", NULL};
    if (!json_is_object(s)) {
        check_error(c->in, ptr, "must be an object");
        return;
    }
    check_only(c->in, s, ptr, allowed);
    const char *id = check_string(c->in, s, ptr, "identifier", 1, 1, 128);
    const char *unit = check_string(c->in, s, ptr, "unit", 1, 1, 64);
    json_t *v = json_object_get(s, "value");
    char p[160];
    if (!json_is_number(v)) {
        snprintf(p, sizeof(p), "%s/value", ptr);
        check_error(c->in, p, "must be a number");
    }
    int64_t start = 0, end = 0;
    int offset = 0;
    const char *uuid, *source, *device;
    if (hk_common(c, s, ptr, &start, &end, &offset, &uuid, &source, &device) != 0 || id == NULL || unit == NULL ||
        !json_is_number(v))
        return;
    struct hk_mapped m;
    char err[200];
    int hrc = hk_map_quantity(id, unit, json_number_value(v), &m, err, sizeof(err));
    if (hrc != 0) {
        if (hrc == HK_EUNKNOWN_TYPE) {
            unsupported(c, ptr, id, err); /* reported, not stored, not fatal */
            return;
        }
        snprintf(p, sizeof(p), "%s/%s", ptr, hrc == HK_EUNIT ? "unit" : "value");
        check_error(c->in, p, "%s", err);
        return;
    }
    if (m.value < 0 && strcmp(m.metric_type, HK_T_BODY_TEMPERATURE) != 0) {
        snprintf(p, sizeof(p), "%s/value", ptr);
        check_error(c->in, p, "must not be negative");
        return;
    }
    hk_store(c, &m, start, end, offset, uuid, id, json_number_value(v), source, device);
}

static void hk_category(struct hk_ctx *c, json_t *s, const char *ptr)
{
    static const char *const allowed[] = {"uuid",        "identifier", "value",    "start_date", "end_date",
                                          "source_name", "device",     "metadata", NULL};
    if (!json_is_object(s)) {
        check_error(c->in, ptr, "must be an object");
        return;
    }
    check_only(c->in, s, ptr, allowed);
    const char *id = check_string(c->in, s, ptr, "identifier", 1, 1, 128);
    json_t *v = json_object_get(s, "value");
    char vbuf[128] = "";
    if (json_is_integer(v))
        snprintf(vbuf, sizeof(vbuf), "%lld", (long long)json_integer_value(v));
    else if (json_is_string(v))
        snprintf(vbuf, sizeof(vbuf), "%.127s", json_string_value(v));
    int64_t start = 0, end = 0;
    int offset = 0;
    const char *uuid, *source, *device;
    if (hk_common(c, s, ptr, &start, &end, &offset, &uuid, &source, &device) != 0 || id == NULL)
        return;
    struct hk_mapped m;
    char err[200], p[160];
    int hrc = hk_map_category(id, v != NULL ? vbuf : NULL, (double)(end - start) / 60000.0, &m, err, sizeof(err));
    if (hrc != 0) {
        if (hrc == HK_EUNKNOWN_TYPE) {
            unsupported(c, ptr, id, err);
            return;
        }
        snprintf(p, sizeof(p), "%s/value", ptr);
        check_error(c->in, p, "%s", err);
        return;
    }
    hk_store(c, &m, start, end, offset, uuid, id, m.value, source, device);
}

static void hk_workout(struct hk_ctx *c, json_t *s, const char *ptr)
{
    static const char *const allowed[] = {"uuid",
                                          "activity_type",
                                          "workout_activity_type",
                                          "start_date",
                                          "end_date",
                                          "duration",
                                          "total_energy_burned",
                                          "total_distance",
                                          "source_name",
                                          "device",
                                          "metadata",
                                          NULL};
    if (!json_is_object(s)) {
        check_error(c->in, ptr, "must be an object");
        return;
    }
    check_only(c->in, s, ptr, allowed);
    const char *act = check_string(c->in, s, ptr, "activity_type", 0, 1, 128);
    if (act == NULL)
        act = check_string(c->in, s, ptr, "workout_activity_type", 0, 1, 128);
    int64_t start = 0, end = 0;
    int offset = 0;
    const char *uuid, *source, *device;
    char p[160];
    static const char *const nums[] = {"total_energy_burned", "total_distance", "duration"};
    /* The same bounds as the samples of these quantities (#16.9). */
    static const char *const as[] = {HK_T_ACTIVE_ENERGY, HK_T_DISTANCE, HK_T_EXERCISE_MINUTES};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(s, nums[i]);
        char why[200];
        if (v != NULL && !json_is_null(v) &&
            (!json_is_number(v) || json_number_value(v) < 0 ||
             hk_value_plausible(as[i], json_number_value(v), why, sizeof(why)) != 0)) {
            snprintf(p, sizeof(p), "%s/%s", ptr, nums[i]);
            check_error(c->in, p,
                        "must be a non-negative number (kcal, km, minutes) within what one workout can "
                        "hold (20000 kcal, 1000 km, 2880 min)");
        }
    }
    if (hk_common(c, s, ptr, &start, &end, &offset, &uuid, &source, &device) != 0)
        return;
    struct hk_mapped m = {HK_T_WORKOUT, "min", (double)(end - start) / 60000.0, NULL};
    struct store_sample *x = hk_store(c, &m, start, end, offset, uuid, "HKWorkout", m.value, source, device);
    if (x == NULL)
        return;
    json_t *pl = json_pack("{s:i, s:s}", "tz_offset_min", offset, "activity_type", act != NULL ? act : "other");
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(s, nums[i]);
        if (json_is_number(v))
            json_object_set_new(pl, nums[i], json_real(json_number_value(v)));
    }
    free(x->payload);
    x->payload = json_dumps(pl, JSON_COMPACT);
    json_decref(pl);
}

static void hk_correlation(struct hk_ctx *c, json_t *s, const char *ptr)
{
    static const char *const allowed[] = {"uuid",        "identifier", "start_date", "end_date", "objects",
                                          "source_name", "device",     "metadata",   NULL};
    if (!json_is_object(s)) {
        check_error(c->in, ptr, "must be an object");
        return;
    }
    check_only(c->in, s, ptr, allowed);
    const char *id = check_string(c->in, s, ptr, "identifier", 1, 1, 128);
    json_t *objs = json_object_get(s, "objects");
    char p[160];
    snprintf(p, sizeof(p), "%s/objects", ptr);
    if (!json_is_array(objs) || json_array_size(objs) == 0 ||
        json_array_size(objs) > LIMIT_HEALTHKIT_CORRELATION_OBJECTS) {
        check_error(c->in, p, "must be an array of 1 to %d quantity samples", LIMIT_HEALTHKIT_CORRELATION_OBJECTS);
        return;
    }
    if (id != NULL && strcmp(id, "HKCorrelationTypeIdentifierBloodPressure") != 0 &&
        strcmp(id, "HKCorrelationTypeIdentifierFood") != 0) {
        unsupported(c, ptr, id, "unknown HealthKit correlation type");
        return;
    }
    /* Blood pressure arrives as a correlation of systolic and diastolic
     * samples; each is stored as its own quantity sample. */
    size_t i;
    json_t *o;
    json_array_foreach (objs, i, o) {
        char q[200];
        snprintf(q, sizeof(q), "%s/objects/%zu", ptr, i);
        hk_quantity(c, o, q);
    }
}

int hk_upload_parse(json_t *body, const char *user_id, struct check *c, struct upload_samples *out,
                    json_t *unsupported_list, struct hk_upload_counts *counts, const char **sync_out)
{
    static const char *const allowed[] = {"user_id",
                                          "quantity_samples",
                                          "category_samples",
                                          "workouts",
                                          "correlation_samples",
                                          "upload_metadata",
                                          "sync_token",
                                          NULL};
    static const char *const lists[] = {"quantity_samples", "category_samples", "workouts", "correlation_samples"};
    memset(counts, 0, sizeof(*counts));
    *sync_out = NULL;
    /* The owner first, before any field error is recorded: a body for
     * another user is refused as such (403), whatever else is wrong in it. */
    const char *uid = check_string(c, body, "", "user_id", 1, 1, 64);
    if (uid != NULL && strcasecmp(uid, user_id) != 0)
        return INGEST_EOWNER;
    check_only(c, body, "", allowed);
    *sync_out = check_bytes(c, body, "", "sync_token", 0, 1, LIMIT_SYNC_TOKEN);
    size_t n[4] = {0}, total = 0;
    for (int k = 0; k < 4; k++) {
        json_t *arr = json_object_get(body, lists[k]);
        char ptr[64];
        snprintf(ptr, sizeof(ptr), "/%s", lists[k]);
        if (arr != NULL && !json_is_null(arr) && !json_is_array(arr))
            check_error(c, ptr, "must be an array");
        n[k] = json_is_array(arr) ? json_array_size(arr) : 0;
        total += n[k];
    }
    if (total == 0)
        check_error(c, "", "must contain at least one sample");
    if (total > LIMIT_HEALTHKIT_SAMPLES)
        check_error(c, "", "holds %zu samples; at most %d per upload", total, LIMIT_HEALTHKIT_SAMPLES);
    /* The shape first: a body that is not a sample list is not walked. */
    if (c->nerrors > 0)
        return INGEST_EINVALID;
    counts->quantity = n[0];
    counts->category = n[1];
    counts->workouts = n[2];
    counts->correlations = n[3];
    counts->total = total;
    struct hk_ctx x = {c, out, user_id, unsupported_list};
    void (*each[4])(struct hk_ctx *, json_t *, const char *) = {hk_quantity, hk_category, hk_workout, hk_correlation};
    for (int k = 0; k < 4; k++) {
        json_t *arr = json_object_get(body, lists[k]);
        char ptr[96];
        size_t at = (size_t)snprintf(ptr, sizeof(ptr), "/%s/", lists[k]);
        for (size_t i = 0; i < n[k]; i++) {
            /* "/<list>/<i>", the index written by hand: once per sample. */
            char digits[24];
            size_t nd = 0, v = i;
            do
                digits[nd++] = (char)('0' + v % 10);
            while ((v /= 10) != 0);
            for (size_t d = 0; d < nd; d++)
                ptr[at + d] = digits[nd - 1 - d];
            ptr[at + nd] = '\0';
            each[k](&x, json_array_get(arr, i), ptr);
        }
    }
    return c->nerrors > 0 ? INGEST_EINVALID : 0;
}
