/*
 * apple_export.c — streaming Apple Health export import. See apple_export.h.
 *
 * expat calls on_start/on_end per element; a record's attributes are copied
 * into a fixed-size `struct rec` at its start tag, its MetadataEntry children
 * are appended to the record's metadata fragment, and at its end tag the
 * record is mapped and appended to the current batch. Memory is the batch,
 * two record slots, the per-type table (bounded) and expat's token buffer
 * (bounded by TOKEN_MAX): flat whatever the file size.
 */
/* This file implements its header's test API too (CLARITY_TEST_API). */
#define CLARITY_TEST_API 1
#include "ingest/apple_export.h"

#include <errno.h>
#include <expat.h>
#include <fcntl.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>
#include <zlib.h>

#include "core/buf.h"
#include "core/timeutil.h"
#include "ingest/healthkit.h"

#define CHUNK (256 * 1024)               /* bytes read from a file or zip entry per expat call */
#define TOKEN_MAX APPLE_EXPORT_TOKEN_MAX /* bytes expat may buffer without finishing a token */
#define META_MAX 1400                    /* bytes of one record's metadata fragment */
#define REASON_MAX 96
#define TYPE_SLOTS 1024 /* open-addressing table, power of two, 2 x TYPES_MAX */
#define WORKOUT_TYPE "HKWorkoutTypeIdentifier"
#define BP_TYPE "HKCorrelationTypeIdentifierBloodPressure"
#define ZIP_ENTRY "apple_health_export/export.xml"

enum el_kind { EL_RECORD = 1, EL_WORKOUT, EL_CORRELATION };
enum mode { M_SNIFF = 0, M_XML, M_SPOOL, M_DONE, M_FAILED };

/* One element's attributes, copied (expat's pointers die with the event). */
struct rec {
    int active;
    enum el_kind kind;
    int too_long; /* a mapped attribute did not fit its field */
    char type[128];
    char source[128];
    char source_version[64];
    char device[128];
    char unit[32];
    char value[64];
    char start[40];
    char end[40];
    /* Workout */
    char duration[40], duration_unit[16];
    char distance[40], distance_unit[16];
    char energy[40], energy_unit[16];
    char sync_id[128]; /* HKMetadataKeySyncIdentifier; "" none */
    int meta_truncated;
    struct buf meta; /* "k":"v",… over meta_storage */
    char meta_storage[META_MAX];
};

struct type_ent {
    char *name; /* NULL: free slot */
    int64_t records, samples, unknown, rejected;
    char unknown_reason[REASON_MAX];
    char rejected_reason[REASON_MAX];
};

struct apple_export {
    XML_Parser xp;
    apple_export_batch_fn on_batch;
    void *ctx;
    char user_id[STORE_ID_LEN];
    char upload_id[STORE_ID_LEN];
    size_t batch_size;
    struct store_sample *batch;
    char *payloads; /* batch_size x APPLE_EXPORT_PAYLOAD_MAX */
    size_t n;
    struct apple_export_stats st;
    int64_t fed;            /* XML bytes given to expat */
    int64_t max_xml;        /* refuse past this many XML bytes */
    const atomic_int *stop; /* borrowed; NULL none */
    int depth;
    int root_seen;
    struct rec top;   /* Record / Workout / Correlation under HealthData */
    struct rec inner; /* Record inside a Correlation */
    double bp_sys, bp_dia;
    int have_sys, have_dia;
    enum mode mode;
    unsigned char head[4];
    size_t head_len;
    FILE *spool;
    int64_t spooled;    /* bytes of the zip written to the spool */
    const char *format; /* "xml", "zip" or NULL */
    int rc;
    int cb_rc;
    char err[256];
    struct type_ent *types; /* TYPE_SLOTS */
    size_t ntypes;
    /* The slots in use, in order of first sight: the report and free visit
     * these instead of all TYPE_SLOTS (232 KiB the kernel then never has
     * to map for an export of a few types). */
    uint16_t used[APPLE_EXPORT_TYPES_MAX];
    struct type_ent other; /* beyond APPLE_EXPORT_TYPES_MAX */
    char other_name[8];
    struct type_ent *last; /* the previous record's type: exports group by type */
    char *chunk;           /* CHUNK bytes for files and zip entries; made on first use */
};

/* Namespace of the version-5 keys (a random UUID fixed for Clarity). */
static const unsigned char key_ns[16] = {0x6b, 0x1e, 0x0c, 0x52, 0x94, 0x3f, 0x4d, 0x27,
                                         0xa8, 0x61, 0x2d, 0x9e, 0x5c, 0x07, 0xb3, 0x4a};

/* ---- small helpers --------------------------------------------------- */

static int fail(struct apple_export *p, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct apple_export *p, int rc, const char *fmt, ...)
{
    if (p->rc == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, sizeof(p->err), fmt, ap);
        va_end(ap);
        p->rc = rc;
    }
    p->mode = M_FAILED;
    return p->rc;
}

/* Copy s into dst[cap], cutting at a UTF-8 character boundary. Returns 1 when
 * s did not fit. */
static int copy_cut(char *dst, size_t cap, const char *s)
{
    size_t len = strlen(s);
    if (len < cap) {
        memcpy(dst, s, len + 1);
        return 0;
    }
    size_t k = cap - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
        k--;
    memcpy(dst, s, k);
    dst[k] = '\0';
    return 1;
}

/* A number as HealthKit writes it ("72", "0.97", "1.5e-05"); whole text. */
static int parse_number(const char *s, double *out)
{
    if (s[0] == '\0')
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int apple_export_date_parse(const char *s, int64_t *ms, int *offset_min)
{
    /* "2019-03-06 07:41:18 -0500" → RFC 3339 "2019-03-06 07:41:18-05:00",
     * which time_parse_rfc3339 validates (calendar, ranges; RFC 3339 §5.6
     * allows the space separator). */
    char r[32];
    if (s == NULL || strlen(s) != 25 || s[10] != ' ' || s[19] != ' ' || (s[20] != '+' && s[20] != '-'))
        return -1;
    for (int i = 21; i < 25; i++)
        if (s[i] < '0' || s[i] > '9')
            return -1;
    memcpy(r, s, 19);
    r[19] = s[20];
    r[20] = s[21];
    r[21] = s[22];
    r[22] = ':';
    r[23] = s[23];
    r[24] = s[24];
    r[25] = '\0';
    int64_t v;
    int off;
    if (time_parse_rfc3339(r, &v, &off) != 0)
        return -1;
    *ms = v;
    if (offset_min != NULL)
        *offset_min = off;
    return 0;
}

/* ---- per-type counts --------------------------------------------------- */

static uint64_t fnv1a(const char *s)
{
    /* FNV-1a, 64-bit (Fowler, Noll, Vo; draft-eastlake-fnv). */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* The entry for type, created on first sight; the shared "(other)" entry
 * once APPLE_EXPORT_TYPES_MAX types exist or memory runs out. */
static struct type_ent *type_get(struct apple_export *p, const char *type)
{
    if (p->last != NULL && strcmp(p->last->name, type) == 0)
        return p->last;
    size_t i = (size_t)fnv1a(type) & (TYPE_SLOTS - 1);
    for (;;) {
        struct type_ent *e = &p->types[i];
        if (e->name == NULL)
            break;
        if (strcmp(e->name, type) == 0)
            return p->last = e;
        i = (i + 1) & (TYPE_SLOTS - 1);
    }
    if (p->ntypes >= APPLE_EXPORT_TYPES_MAX)
        return &p->other;
    char *name = strdup(type);
    if (name == NULL)
        return &p->other;
    p->types[i].name = name;
    p->used[p->ntypes++] = (uint16_t)i;
    return p->last = &p->types[i];
}

static void count_unknown(struct apple_export *p, struct type_ent *e, const char *reason)
{
    p->st.unknown++;
    e->unknown++;
    if (e->unknown_reason[0] == '\0')
        copy_cut(e->unknown_reason, sizeof(e->unknown_reason), reason);
}

static void count_rejected(struct apple_export *p, struct type_ent *e, const char *reason)
{
    p->st.rejected++;
    e->rejected++;
    if (e->rejected_reason[0] == '\0')
        copy_cut(e->rejected_reason, sizeof(e->rejected_reason), reason);
}

/* ---- dedup keys -------------------------------------------------------- */

static void uuid_text(const unsigned char b[16], char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    for (int i = 0; i < 16 && k + 3 < cap; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = hex[b[i] >> 4];
        out[k++] = hex[b[i] & 15];
    }
    out[k] = '\0';
}

/* Append s and a unit separator (0x1f cannot occur in XML 1.0 text). */
static size_t put_field(unsigned char *dst, size_t at, size_t cap, const char *s)
{
    size_t len = strlen(s);
    if (at + len + 1 > cap)
        len = cap > at + 1 ? cap - at - 1 : 0;
    memcpy(dst + at, s, len);
    at += len;
    if (at < cap)
        dst[at++] = 0x1f;
    return at;
}

/* SHA-1 for the record keys, with the implementation fetched once: OpenSSL
 * 3's one-shot SHA1() fetches it from the provider on every call, which was
 * 40 % of the keys' cost and 5 % of a whole import. Same digest. */
static EVP_MD *sha1_md;
static pthread_once_t sha1_once = PTHREAD_ONCE_INIT;

static void sha1_fetch(void) { sha1_md = EVP_MD_fetch(NULL, "SHA1", NULL); }

static void sha1(const unsigned char *p, size_t n, unsigned char md[SHA_DIGEST_LENGTH])
{
    pthread_once(&sha1_once, sha1_fetch);
    if (sha1_md == NULL || EVP_Digest(p, n, md, NULL, sha1_md, NULL) != 1)
        SHA1(p, n, md);
}

/*
 * The sample's hk_uuid (see apple_export.h). RFC 9562 §5.5: SHA-1 over the
 * namespace then the name, bytes 0–15, version in the high nibble of byte 6,
 * variant 10 in the top bits of byte 8. §5.8 (version 8) leaves all but those
 * 6 bits to the implementation: we put the 48-bit start millisecond first.
 */
static void make_key(const struct rec *r, int64_t start_ms, int64_t end_ms, const char *value, char *out, size_t cap)
{
    unsigned char name[16 + 640];
    unsigned char md[SHA_DIGEST_LENGTH];
    size_t at = 16;
    memcpy(name, key_ns, 16);
    if (r->sync_id[0] != '\0') {
        at = put_field(name, at, sizeof(name), "sync");
        at = put_field(name, at, sizeof(name), r->type);
        at = put_field(name, at, sizeof(name), r->source);
        at = put_field(name, at, sizeof(name), r->sync_id);
        sha1(name, at, md);
        md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
    } else {
        apple_export_content_key(r->type, start_ms, end_ms, value, r->unit, r->source, out, cap);
        return;
    }
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    uuid_text(md, out, cap);
}

void apple_export_content_key(const char *hk_type, int64_t start_ms, int64_t end_ms, const char *value,
                              const char *unit, const char *source, char *out, size_t cap)
{
    unsigned char name[16 + 640];
    unsigned char md[SHA_DIGEST_LENGTH];
    size_t at = 16;
    char num[48];
    memcpy(name, key_ns, 16);
    at = put_field(name, at, sizeof(name), hk_type);
    snprintf(num, sizeof(num), "%lld", (long long)start_ms);
    at = put_field(name, at, sizeof(name), num);
    snprintf(num, sizeof(num), "%lld", (long long)end_ms);
    at = put_field(name, at, sizeof(name), num);
    at = put_field(name, at, sizeof(name), value);
    at = put_field(name, at, sizeof(name), unit);
    at = put_field(name, at, sizeof(name), source);
    sha1(name, at, md);
    uint64_t t = (uint64_t)start_ms;
    for (int i = 0; i < 6; i++)
        md[i] = (unsigned char)(t >> (40 - 8 * i));
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x80);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    uuid_text(md, out, cap);
}

/* ---- batches ----------------------------------------------------------- */

static int flush(struct apple_export *p)
{
    if (p->n == 0 || p->rc != 0)
        return p->rc;
    size_t stored = p->n;
    p->st.batches++;
    if (p->xp != NULL) {
        XML_Index at = XML_GetCurrentByteIndex(p->xp);
        if (at > p->st.bytes_parsed)
            p->st.bytes_parsed = at;
    }
    int rc = p->on_batch(p->ctx, p->batch, p->n, &p->st, &stored);
    if (rc != 0) {
        p->cb_rc = rc;
        return fail(p, APPLE_EXPORT_ECALLBACK, "the import was stopped while storing samples");
    }
    p->st.stored += (int64_t)(stored <= p->n ? stored : p->n);
    p->n = 0;
    return 0;
}

/* The next free sample slot with its payload buffer, prefilled. */
static struct store_sample *slot(struct apple_export *p, struct buf *payload)
{
    struct store_sample *s = &p->batch[p->n];
    char *pl = p->payloads + p->n * APPLE_EXPORT_PAYLOAD_MAX;
    memset(s, 0, sizeof(*s));
    memcpy(s->user_id, p->user_id, sizeof(s->user_id));
    memcpy(s->upload_id, p->upload_id, sizeof(s->upload_id));
    s->value = NAN;
    s->value2 = NAN;
    s->quality_score = NAN;
    memcpy(s->validation_status, "valid", 6);
    buf_init_fixed(payload, pl, APPLE_EXPORT_PAYLOAD_MAX);
    s->payload = pl;
    return s;
}

static int push(struct apple_export *p, struct type_ent *e)
{
    p->n++;
    p->st.samples++;
    e->samples++;
    if (p->n == p->batch_size)
        return flush(p);
    return 0;
}

/* Source and device columns: the device attribute is HealthKit's
 * description "<<HKDevice: 0x…>, name:Apple Watch, manufacturer:…>"; keep
 * the name when there is one. */
static void fill_source(struct store_sample *s, const struct rec *r)
{
    copy_cut(s->source, sizeof(s->source), r->source);
    const char *n = strstr(r->device, "name:");
    if (n != NULL) {
        n += 5;
        size_t len = strcspn(n, ",>");
        if (len >= sizeof(s->device))
            len = sizeof(s->device) - 1;
        while (len > 0 && ((unsigned char)n[len] & 0xc0) == 0x80)
            len--;
        memcpy(s->device, n, len);
        s->device[len] = '\0';
    } else {
        copy_cut(s->device, sizeof(s->device), r->device);
    }
}

/* The payload's common head: offsets, type, source version. */
static void payload_begin(struct buf *b, const struct rec *r, int off_start, int off_end)
{
    buf_printf(b, "{\"tz_offset_min\":%d", off_start);
    if (off_end != off_start)
        buf_printf(b, ",\"end_tz_offset_min\":%d", off_end);
    buf_puts(b, ",\"hk_type\":");
    buf_json_string(b, r->type);
    if (r->source_version[0] != '\0') {
        buf_puts(b, ",\"source_version\":");
        buf_json_string(b, r->source_version);
    }
}

static void payload_end(struct buf *b, const struct rec *r)
{
    int truncated = r->meta_truncated;
    if (r->meta.len > 0) {
        /* 14 = ,"metadata":{ + } ; 32 more keep room for the flag and "}". */
        if (b->len + r->meta.len + 14 + 32 < b->max) {
            buf_puts(b, ",\"metadata\":{");
            buf_append(b, r->meta.data, r->meta.len);
            buf_putc(b, '}');
        } else {
            truncated = 1;
        }
    }
    if (truncated)
        buf_puts(b, ",\"metadata_truncated\":true");
    buf_putc(b, '}');
}

/* Dates of r: 0, or counts the record rejected and returns -1. */
static int rec_dates(struct apple_export *p, struct type_ent *e, const struct rec *r, int64_t *start, int64_t *end,
                     int *off_s, int *off_e)
{
    if (apple_export_date_parse(r->start, start, off_s) != 0) {
        count_rejected(p, e, "startDate is not a date like 2019-03-06 07:41:18 -0500");
        return -1;
    }
    if (apple_export_date_parse(r->end, end, off_e) != 0) {
        count_rejected(p, e, "endDate is not a date like 2019-03-06 07:41:18 -0500");
        return -1;
    }
    if (*end < *start) {
        count_rejected(p, e, "endDate is before startDate");
        return -1;
    }
    return 0;
}

/* ---- records ----------------------------------------------------------- */

static int emit_record(struct apple_export *p, const struct rec *r, int in_correlation)
{
    struct type_ent *e = type_get(p, r->type);
    int64_t start, end;
    int off_s, off_e;
    struct hk_mapped m;
    char why[160] = "";
    p->st.records++;
    e->records++;
    if (r->too_long) {
        count_rejected(p, e, "an attribute is longer than HealthKit writes it");
        return 0;
    }
    if (rec_dates(p, e, r, &start, &end, &off_s, &off_e) != 0)
        return 0;
    if (strncmp(r->type, "HKCategoryTypeIdentifier", 24) == 0) {
        if (hk_map_category(r->type, r->value, (double)(end - start) / 60000.0, &m, why, sizeof(why)) != 0) {
            if (strncmp(why, "value ", 6) == 0)
                count_rejected(p, e, why);
            else
                count_unknown(p, e, why[0] ? why : "category type not mapped");
            return 0;
        }
    } else {
        double v;
        if (parse_number(r->value, &v) != 0) {
            /* Known type with a broken value, or an unknown type? Ask the
             * mapping with a harmless value. */
            if (hk_map_quantity(r->type, r->unit, 0.0, &m, why, sizeof(why)) == 0 ||
                strncmp(why, "value ", 6) == 0) /* a known type and unit: 0 is only out of range */
                count_rejected(p, e, "value is not a number");
            else
                count_unknown(p, e, why[0] ? why : "quantity type not mapped");
            return 0;
        }
        if (hk_map_quantity(r->type, r->unit, v, &m, why, sizeof(why)) != 0) {
            /* An implausible value of a known type is rejected (#16.9);
             * an unknown type or unit is reported as such. */
            if (strncmp(why, "value ", 6) == 0)
                count_rejected(p, e, why);
            else
                count_unknown(p, e, why[0] ? why : "quantity type not mapped");
            return 0;
        }
    }
    if (in_correlation) {
        if (strcmp(m.metric_type, HK_T_BP_SYSTOLIC) == 0) {
            p->bp_sys = m.value;
            p->have_sys = 1;
        } else if (strcmp(m.metric_type, HK_T_BP_DIASTOLIC) == 0) {
            p->bp_dia = m.value;
            p->have_dia = 1;
        }
    }
    struct buf b;
    struct store_sample *s = slot(p, &b);
    copy_cut(s->metric_type, sizeof(s->metric_type), m.metric_type);
    copy_cut(s->unit, sizeof(s->unit), m.unit);
    s->start_ms = start;
    s->end_ms = end;
    s->value = m.value;
    fill_source(s, r);
    make_key(r, start, end, r->value, s->hk_uuid, sizeof(s->hk_uuid));
    payload_begin(&b, r, off_s, off_e);
    if (m.category != NULL) {
        buf_puts(&b, ",\"category\":");
        buf_json_string(&b, m.category);
    }
    payload_end(&b, r);
    return push(p, e);
}

/* A duration, energy or distance converted to `to`; the mapping's unit
 * table first, then the units exports use for workouts. */
static int workout_convert(const char *text, const char *unit, const char *to, double *out)
{
    double v;
    if (parse_number(text, &v) != 0)
        return -1;
    if (hk_unit_convert(unit, to, v, out) == 0)
        return 0;
    static const struct {
        const char *from, *to;
        double factor;
    } units[] = {
        {"min", "min", 1.0},   {"s", "min", 1.0 / 60}, {"hr", "min", 60.0},         {"h", "min", 60.0},
        {"kcal", "kcal", 1.0}, {"Cal", "kcal", 1.0},   {"kJ", "kcal", 1.0 / 4.184}, {"km", "km", 1.0},
        {"m", "km", 0.001},    {"mi", "km", 1.609344}, {"yd", "km", 0.0009144},
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(units[i].from, unit) == 0 && strcmp(units[i].to, to) == 0) {
            *out = v * units[i].factor;
            return 0;
        }
    return -1;
}

static int emit_workout(struct apple_export *p, const struct rec *r)
{
    struct type_ent *e = type_get(p, WORKOUT_TYPE);
    int64_t start, end;
    int off_s, off_e;
    double minutes, energy = NAN, distance = NAN, x;
    p->st.records++;
    e->records++;
    if (r->too_long) {
        count_rejected(p, e, "an attribute is longer than HealthKit writes it");
        return 0;
    }
    if (rec_dates(p, e, r, &start, &end, &off_s, &off_e) != 0)
        return 0;
    if (r->duration[0] != '\0') {
        if (workout_convert(r->duration, r->duration_unit[0] ? r->duration_unit : "min", "min", &minutes) != 0 ||
            minutes < 0) {
            count_rejected(p, e, "duration is not a number of a known time unit");
            return 0;
        }
    } else {
        minutes = (double)(end - start) / 60000.0;
    }
    if (r->energy[0] != '\0' && workout_convert(r->energy, r->energy_unit, "kcal", &x) == 0)
        energy = x;
    if (r->distance[0] != '\0' && workout_convert(r->distance, r->distance_unit, "km", &x) == 0)
        distance = x;
    struct buf b;
    struct store_sample *s = slot(p, &b);
    memcpy(s->metric_type, HK_T_WORKOUT, sizeof(HK_T_WORKOUT));
    memcpy(s->unit, "min", 4);
    s->start_ms = start;
    s->end_ms = end;
    s->value = minutes;
    fill_source(s, r);
    char value[112];
    snprintf(value, sizeof(value), "%s/%s", r->value, r->duration);
    make_key(r, start, end, value, s->hk_uuid, sizeof(s->hk_uuid));
    payload_begin(&b, r, off_s, off_e);
    buf_puts(&b, ",\"activity_type\":");
    buf_json_string(&b, r->value);
    if (!isnan(energy))
        buf_printf(&b, ",\"energy_kcal\":%.10g", energy);
    if (!isnan(distance))
        buf_printf(&b, ",\"distance_km\":%.10g", distance);
    payload_end(&b, r);
    return push(p, e);
}

static int emit_correlation(struct apple_export *p, const struct rec *r)
{
    struct type_ent *e = type_get(p, r->type);
    int64_t start, end;
    int off_s, off_e;
    p->st.records++;
    e->records++;
    if (strcmp(r->type, BP_TYPE) != 0) {
        count_unknown(p, e, "correlation type not mapped (its records are imported one by one)");
        return 0;
    }
    if (rec_dates(p, e, r, &start, &end, &off_s, &off_e) != 0)
        return 0;
    if (!p->have_sys || !p->have_dia) {
        count_rejected(p, e, "blood pressure without a systolic and a diastolic record");
        return 0;
    }
    struct buf b;
    struct store_sample *s = slot(p, &b);
    memcpy(s->metric_type, HK_T_BLOOD_PRESSURE, sizeof(HK_T_BLOOD_PRESSURE));
    memcpy(s->unit, "mmHg", 5);
    s->start_ms = start;
    s->end_ms = end;
    s->value = p->bp_sys;
    s->value2 = p->bp_dia;
    fill_source(s, r);
    char value[64];
    snprintf(value, sizeof(value), "%.10g/%.10g", p->bp_sys, p->bp_dia);
    make_key(r, start, end, value, s->hk_uuid, sizeof(s->hk_uuid));
    payload_begin(&b, r, off_s, off_e);
    payload_end(&b, r);
    return push(p, e);
}

/* ---- expat handlers ---------------------------------------------------- */

static void attr(struct rec *r, char *dst, size_t cap, const char *v, int mapped)
{
    if (copy_cut(dst, cap, v) && mapped)
        r->too_long = 1;
}

static void rec_begin(struct rec *r, enum el_kind kind, const XML_Char **a)
{
    r->active = 1;
    r->kind = kind;
    r->too_long = 0;
    r->type[0] = r->source[0] = r->source_version[0] = r->device[0] = r->unit[0] = '\0';
    r->value[0] = r->start[0] = r->end[0] = '\0';
    r->duration[0] = r->duration_unit[0] = r->distance[0] = r->distance_unit[0] = '\0';
    r->energy[0] = r->energy_unit[0] = r->sync_id[0] = '\0';
    r->meta_truncated = 0;
    buf_init_fixed(&r->meta, r->meta_storage, sizeof(r->meta_storage));
    if (kind == EL_WORKOUT)
        memcpy(r->type, WORKOUT_TYPE, sizeof(WORKOUT_TYPE));
    for (; a[0] != NULL; a += 2) {
        const char *k = a[0], *v = a[1];
        if (strcmp(k, "type") == 0)
            attr(r, r->type, sizeof(r->type), v, 1);
        else if (strcmp(k, "value") == 0)
            attr(r, r->value, sizeof(r->value), v, 1);
        else if (strcmp(k, "startDate") == 0)
            attr(r, r->start, sizeof(r->start), v, 1);
        else if (strcmp(k, "endDate") == 0)
            attr(r, r->end, sizeof(r->end), v, 1);
        else if (strcmp(k, "unit") == 0)
            attr(r, r->unit, sizeof(r->unit), v, 1);
        else if (strcmp(k, "sourceName") == 0)
            attr(r, r->source, sizeof(r->source), v, 0);
        else if (strcmp(k, "sourceVersion") == 0)
            attr(r, r->source_version, sizeof(r->source_version), v, 0);
        else if (strcmp(k, "device") == 0)
            attr(r, r->device, sizeof(r->device), v, 0);
        else if (kind == EL_WORKOUT) {
            /* The activity type goes where a record keeps its value. */
            if (strcmp(k, "workoutActivityType") == 0)
                attr(r, r->value, sizeof(r->value), v, 1);
            else if (strcmp(k, "duration") == 0)
                attr(r, r->duration, sizeof(r->duration), v, 1);
            else if (strcmp(k, "durationUnit") == 0)
                attr(r, r->duration_unit, sizeof(r->duration_unit), v, 1);
            else if (strcmp(k, "totalDistance") == 0)
                attr(r, r->distance, sizeof(r->distance), v, 0);
            else if (strcmp(k, "totalDistanceUnit") == 0)
                attr(r, r->distance_unit, sizeof(r->distance_unit), v, 0);
            else if (strcmp(k, "totalEnergyBurned") == 0)
                attr(r, r->energy, sizeof(r->energy), v, 0);
            else if (strcmp(k, "totalEnergyBurnedUnit") == 0)
                attr(r, r->energy_unit, sizeof(r->energy_unit), v, 0);
        }
    }
}

static void meta_add(struct rec *r, const XML_Char **a)
{
    const char *key = NULL, *value = "";
    for (; a[0] != NULL; a += 2) {
        if (strcmp(a[0], "key") == 0)
            key = a[1];
        else if (strcmp(a[0], "value") == 0)
            value = a[1];
    }
    if (key == NULL)
        return;
    if (strcmp(key, "HKMetadataKeySyncIdentifier") == 0 && copy_cut(r->sync_id, sizeof(r->sync_id), value))
        r->sync_id[0] = '\0'; /* too long to trust: fall back to the content key */
    size_t at = r->meta.len;
    if ((at > 0 && buf_putc(&r->meta, ',') != 0) || buf_json_string(&r->meta, key) != 0 ||
        buf_putc(&r->meta, ':') != 0 || buf_json_string(&r->meta, value) != 0) {
        r->meta.len = at;
        r->meta.data[at] = '\0';
        r->meta.truncated = 0;
        r->meta_truncated = 1;
    }
}

/* <WorkoutStatistics type=… sum=… unit=…/> (iOS 16 and later) fill what the
 * Workout's attributes left empty. */
static void workout_stat(struct rec *r, const XML_Char **a)
{
    const char *type = "", *sum = "", *unit = "";
    for (; a[0] != NULL; a += 2) {
        if (strcmp(a[0], "type") == 0)
            type = a[1];
        else if (strcmp(a[0], "sum") == 0)
            sum = a[1];
        else if (strcmp(a[0], "unit") == 0)
            unit = a[1];
    }
    if (sum[0] == '\0')
        return;
    if (strcmp(type, "HKQuantityTypeIdentifierActiveEnergyBurned") == 0 && r->energy[0] == '\0') {
        copy_cut(r->energy, sizeof(r->energy), sum);
        copy_cut(r->energy_unit, sizeof(r->energy_unit), unit);
    } else if (strncmp(type, "HKQuantityTypeIdentifierDistance", 32) == 0 && r->distance[0] == '\0') {
        copy_cut(r->distance, sizeof(r->distance), sum);
        copy_cut(r->distance_unit, sizeof(r->distance_unit), unit);
    }
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct apple_export *p = ud;
    if (p->rc != 0)
        return;
    p->depth++;
    if (p->depth > APPLE_EXPORT_DEPTH_MAX) {
        /* expat keeps every open element; a real export nests 4 levels. */
        fail(p, APPLE_EXPORT_EFORMAT, "export.xml nests elements deeper than %d levels", APPLE_EXPORT_DEPTH_MAX);
        XML_StopParser(p->xp, XML_FALSE);
        return;
    }
    if (p->depth == 1) {
        if (strcmp(name, "HealthData") != 0) {
            fail(p, APPLE_EXPORT_EFORMAT, "not an Apple Health export: the root element is not <HealthData>");
            XML_StopParser(p->xp, XML_FALSE);
            return;
        }
        p->root_seen = 1;
        return;
    }
    if (p->depth == 2) {
        if (strcmp(name, "Record") == 0) {
            rec_begin(&p->top, EL_RECORD, atts);
        } else if (strcmp(name, "Workout") == 0) {
            rec_begin(&p->top, EL_WORKOUT, atts);
        } else if (strcmp(name, "Correlation") == 0) {
            rec_begin(&p->top, EL_CORRELATION, atts);
            p->have_sys = p->have_dia = 0;
        }
        return;
    }
    if (!p->top.active)
        return;
    if (p->depth == 3) {
        if (strcmp(name, "MetadataEntry") == 0)
            meta_add(&p->top, atts);
        else if (p->top.kind == EL_CORRELATION && strcmp(name, "Record") == 0)
            rec_begin(&p->inner, EL_RECORD, atts);
        else if (p->top.kind == EL_WORKOUT && strcmp(name, "WorkoutStatistics") == 0)
            workout_stat(&p->top, atts);
    } else if (p->depth == 4 && p->inner.active && strcmp(name, "MetadataEntry") == 0) {
        meta_add(&p->inner, atts);
    }
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    struct apple_export *p = ud;
    (void)name; /* expat has matched the tags already */
    if (p->rc != 0)
        return;
    int rc = 0;
    if (p->depth == 2 && p->top.active) {
        p->top.active = 0;
        if (p->top.kind == EL_RECORD)
            rc = emit_record(p, &p->top, 0);
        else if (p->top.kind == EL_WORKOUT)
            rc = emit_workout(p, &p->top);
        else
            rc = emit_correlation(p, &p->top);
    } else if (p->depth == 3 && p->inner.active) {
        p->inner.active = 0;
        rc = emit_record(p, &p->inner, 1);
    }
    p->depth--;
    if (rc != 0)
        XML_StopParser(p->xp, XML_FALSE);
}

/* ---- feeding expat ----------------------------------------------------- */

static int xml_parse(struct apple_export *p, const char *data, size_t len, int final)
{
    do {
        int n = len > CHUNK ? CHUNK : (int)len;
        int last = final && (size_t)n == len;
        if (p->stop != NULL && atomic_load(p->stop))
            return fail(p, APPLE_EXPORT_ESTOPPED, "the import was stopped: the server is shutting down");
        if (p->fed + n > p->max_xml)
            return fail(p, APPLE_EXPORT_EFORMAT, "export.xml is larger than %lld MiB", (long long)(p->max_xml >> 20));
        if (XML_Parse(p->xp, data, n, last) != XML_STATUS_OK) {
            if (p->rc != 0)
                return p->rc;
            /* expat out of memory is the server's failure, not a bad export (#16). */
            if (XML_GetErrorCode(p->xp) == XML_ERROR_NO_MEMORY)
                return fail(p, APPLE_EXPORT_ENOMEM, "out of memory while parsing export.xml");
            return fail(p, APPLE_EXPORT_EFORMAT, "export.xml is not well-formed XML: %s at line %lu, column %lu",
                        XML_ErrorString(XML_GetErrorCode(p->xp)), (unsigned long)XML_GetCurrentLineNumber(p->xp),
                        (unsigned long)XML_GetCurrentColumnNumber(p->xp));
        }
        p->fed += n;
        XML_Index at = XML_GetCurrentByteIndex(p->xp);
        if (at >= 0) {
            p->st.bytes_parsed = at;
            /* expat keeps an unfinished token in memory; refuse to let one
             * token (a giant attribute, say) grow it without bound. */
            if (p->fed - (int64_t)at > TOKEN_MAX)
                return fail(p, APPLE_EXPORT_EFORMAT, "export.xml has a single XML token larger than %d MiB",
                            TOKEN_MAX >> 20);
        }
        data += n;
        len -= (size_t)n;
    } while (len > 0);
    return 0;
}

/* End of the XML: final parse, last batch. */
static int xml_finish(struct apple_export *p)
{
    int rc = xml_parse(p, "", 0, 1);
    if (rc != 0)
        return rc;
    if (!p->root_seen)
        return fail(p, APPLE_EXPORT_EFORMAT, "not an Apple Health export: no <HealthData>");
    p->st.bytes_parsed = p->fed;
    if ((rc = flush(p)) != 0)
        return rc;
    p->mode = M_DONE;
    return 0;
}

/* The entry holding the export: apple_health_export/export.xml, else any
 * entry named export.xml (any case, any folder but macOS's __MACOSX). */
static int64_t zip_find(zip_t *za)
{
    zip_int64_t n = zip_get_num_entries(za, 0);
    int64_t best = -1;
    for (zip_int64_t i = 0; i < n; i++) {
        const char *name = zip_get_name(za, (zip_uint64_t)i, 0);
        if (name == NULL || strncmp(name, "__MACOSX/", 9) == 0)
            continue;
        if (strcmp(name, ZIP_ENTRY) == 0)
            return i;
        size_t len = strlen(name);
        if (best < 0 && len >= 10 && strcasecmp(name + len - 10, "export.xml") == 0 &&
            (len == 10 || name[len - 11] == '/'))
            best = i;
    }
    return best;
}

/* Stream the export.xml entry of za (an archive of zip_bytes bytes) through
 * expat and finish. The inflated size is checked as it is read, never
 * trusted from the directory: past max(ZIP_FLOOR, ZIP_RATIO_MAX x zip_bytes)
 * the archive is refused as a zip bomb. */
/* 1 when libzip failed for want of memory (its own, or zlib's while
 * inflating): the server's failure, not a damaged archive (#16). */
static int zip_oom(zip_error_t *ze)
{
    int code = zip_error_code_zip(ze);
    return code == ZIP_ER_MEMORY || (code == ZIP_ER_ZLIB && zip_error_code_system(ze) == Z_MEM_ERROR);
}

/* The read buffer for files and zip entries, made on first use (an upload
 * fed in pieces never needs it). 0 or APPLE_EXPORT_ENOMEM. */
static int chunk_ready(struct apple_export *p)
{
    if (p->chunk == NULL && (p->chunk = malloc(CHUNK)) == NULL)
        return fail(p, APPLE_EXPORT_ENOMEM, "out of memory");
    return 0;
}

static int zip_import(struct apple_export *p, zip_t *za, int64_t zip_bytes)
{
    int64_t limit = zip_bytes > APPLE_EXPORT_ZIP_FLOOR / APPLE_EXPORT_ZIP_RATIO_MAX
                        ? zip_bytes * APPLE_EXPORT_ZIP_RATIO_MAX
                        : APPLE_EXPORT_ZIP_FLOOR;
    int64_t inflated = 0;
    p->format = "zip";
    int64_t idx = zip_find(za);
    if (idx < 0)
        return fail(p, APPLE_EXPORT_EFORMAT,
                    "the zip archive has no export.xml (expected apple_health_export/export.xml)");
    zip_stat_t zs;
    zip_stat_init(&zs);
    if (zip_stat_index(za, (zip_uint64_t)idx, 0, &zs) == 0 && (zs.valid & ZIP_STAT_SIZE)) {
        p->st.bytes_total = (int64_t)zs.size;
        if (zs.size > (zip_uint64_t)limit)
            return fail(p, APPLE_EXPORT_EFORMAT,
                        "the zip archive expands to more than %d times its size: refused (zip bomb)",
                        APPLE_EXPORT_ZIP_RATIO_MAX);
    }
    zip_file_t *zf = zip_fopen_index(za, (zip_uint64_t)idx, 0);
    if (zf == NULL)
        return fail(p, zip_oom(zip_get_error(za)) ? APPLE_EXPORT_ENOMEM : APPLE_EXPORT_EFORMAT,
                    "cannot read export.xml in the zip archive: %s", zip_strerror(za));
    p->mode = M_XML;
    int rc = chunk_ready(p);
    for (; rc == 0;) {
        zip_int64_t got = zip_fread(zf, p->chunk, CHUNK);
        if (got < 0) {
            rc = fail(p, zip_oom(zip_file_get_error(zf)) ? APPLE_EXPORT_ENOMEM : APPLE_EXPORT_EFORMAT,
                      "the zip archive is damaged: %s", zip_file_strerror(zf));
            break;
        }
        if (got == 0)
            break;
        inflated += got;
        if (inflated > limit) {
            rc = fail(p, APPLE_EXPORT_EFORMAT,
                      "the zip archive expands to more than %d times its size: refused (zip bomb)",
                      APPLE_EXPORT_ZIP_RATIO_MAX);
            break;
        }
        if ((rc = xml_parse(p, p->chunk, (size_t)got, 0)) != 0)
            break;
    }
    zip_fclose(zf);
    if (rc != 0)
        return rc;
    return xml_finish(p);
}

static int zip_error_fail(struct apple_export *p, int code, const char *what)
{
    zip_error_t ze;
    zip_error_init_with_code(&ze, code);
    fail(p,
         code == ZIP_ER_MEMORY                        ? APPLE_EXPORT_ENOMEM
         : code == ZIP_ER_OPEN || code == ZIP_ER_READ ? APPLE_EXPORT_EIO
                                                      : APPLE_EXPORT_EFORMAT,
         "%s: %s", what, zip_error_strerror(&ze));
    zip_error_fini(&ze);
    return p->rc;
}

static int is_zip(const unsigned char *h)
{
    /* Local file header or (empty archive) end of central directory:
     * APPNOTE.TXT §4.3.7 and §4.3.16. */
    return h[0] == 'P' && h[1] == 'K' && ((h[2] == 3 && h[3] == 4) || (h[2] == 5 && h[3] == 6));
}

/* ---- public API -------------------------------------------------------- */

int apple_export_new(const struct apple_export_options *o, struct apple_export **out)
{
    struct apple_export *p = NULL;
    if (o == NULL || out == NULL || o->user_id == NULL || o->user_id[0] == '\0' || strlen(o->user_id) >= STORE_ID_LEN ||
        o->on_batch == NULL || (o->upload_id != NULL && strlen(o->upload_id) >= STORE_ID_LEN) ||
        o->batch_size > APPLE_EXPORT_BATCH_MAX)
        return APPLE_EXPORT_EINVAL;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return APPLE_EXPORT_ENOMEM;
    p->on_batch = o->on_batch;
    p->ctx = o->ctx;
    memcpy(p->user_id, o->user_id, strlen(o->user_id) + 1);
    if (o->upload_id != NULL)
        memcpy(p->upload_id, o->upload_id, strlen(o->upload_id) + 1);
    p->batch_size = o->batch_size ? o->batch_size : APPLE_EXPORT_BATCH_DEFAULT;
    p->max_xml = o->max_xml_bytes > 0 ? o->max_xml_bytes : APPLE_EXPORT_XML_MAX_DEFAULT;
    p->stop = o->stop;
    p->st.bytes_total = o->size_hint > 0 ? o->size_hint : 0;
    memcpy(p->other_name, "(other)", 8);
    p->other.name = p->other_name;
    p->batch = calloc(p->batch_size, sizeof(*p->batch));
    p->payloads = malloc(p->batch_size * APPLE_EXPORT_PAYLOAD_MAX);
    p->types = calloc(TYPE_SLOTS, sizeof(*p->types));
    p->xp = XML_ParserCreate(NULL);
    if (p->batch == NULL || p->payloads == NULL || p->types == NULL || p->xp == NULL)
        goto fail;
    XML_SetUserData(p->xp, p);
    XML_SetElementHandler(p->xp, on_start, on_end);
    *out = p;
    return 0;
fail:
    apple_export_free(p);
    return APPLE_EXPORT_ENOMEM;
}

void apple_export_free(struct apple_export *p)
{
    if (p == NULL)
        return;
    if (p->xp != NULL)
        XML_ParserFree(p->xp);
    if (p->spool != NULL)
        fclose(p->spool);
    if (p->types != NULL)
        for (size_t k = 0; k < p->ntypes; k++)
            free(p->types[p->used[k]].name);
    free(p->types);
    free(p->batch);
    free(p->payloads);
    free(p->chunk);
    free(p);
}

/* Leave the sniffing state: the first bytes (in head) say zip or XML. */
static int decide(struct apple_export *p)
{
    if (p->head_len == 4 && is_zip(p->head)) {
        p->format = "zip";
        p->spool = tmpfile();
        if (p->spool == NULL)
            return fail(p, APPLE_EXPORT_EIO, "cannot create a temporary file for the zip upload");
        p->mode = M_SPOOL;
        if (fwrite(p->head, 1, p->head_len, p->spool) != p->head_len)
            return fail(p, APPLE_EXPORT_EIO, "cannot write the zip upload to a temporary file");
        p->spooled = (int64_t)p->head_len;
        return 0;
    }
    p->format = "xml";
    p->mode = M_XML;
    return xml_parse(p, (const char *)p->head, p->head_len, 0);
}

int apple_export_feed(struct apple_export *p, const void *data, size_t len)
{
    if (p == NULL || (data == NULL && len > 0))
        return APPLE_EXPORT_EINVAL;
    const unsigned char *d = data;
    if (p->mode == M_FAILED)
        return p->rc;
    if (p->mode == M_DONE)
        return APPLE_EXPORT_EINVAL;
    if (p->mode == M_SNIFF) {
        while (p->head_len < 4 && len > 0) {
            p->head[p->head_len++] = *d++;
            len--;
        }
        if (p->head_len < 4)
            return 0;
        int rc = decide(p);
        if (rc != 0)
            return rc;
    }
    if (len == 0)
        return 0;
    if (p->mode == M_SPOOL) {
        if (fwrite(d, 1, len, p->spool) != len)
            return fail(p, APPLE_EXPORT_EIO, "cannot write the zip upload to a temporary file");
        p->spooled += (int64_t)len;
        return 0;
    }
    return xml_parse(p, (const char *)d, len, 0);
}

int apple_export_finish(struct apple_export *p)
{
    if (p == NULL)
        return APPLE_EXPORT_EINVAL;
    if (p->mode == M_FAILED)
        return p->rc;
    if (p->mode == M_DONE)
        return APPLE_EXPORT_EINVAL;
    if (p->mode == M_SNIFF) {
        if (p->head_len == 0)
            return fail(p, APPLE_EXPORT_EFORMAT, "the upload is empty");
        int rc = decide(p);
        if (rc != 0)
            return rc;
    }
    if (p->mode == M_XML)
        return xml_finish(p);
    /* M_SPOOL: open the spooled archive in place. */
    zip_error_t ze;
    zip_error_init(&ze);
    if (fflush(p->spool) != 0 || fseek(p->spool, 0, SEEK_SET) != 0) {
        zip_error_fini(&ze);
        return fail(p, APPLE_EXPORT_EIO, "cannot read back the spooled zip upload");
    }
    zip_source_t *src = zip_source_filep_create(p->spool, 0, -1, &ze);
    if (src == NULL) {
        int code = zip_error_code_zip(&ze);
        zip_error_fini(&ze);
        return zip_error_fail(p, code, "cannot read the zip upload");
    }
    p->spool = NULL; /* the source owns the FILE now */
    zip_t *za = zip_open_from_source(src, ZIP_RDONLY, &ze);
    if (za == NULL) {
        int code = zip_error_code_zip(&ze);
        zip_source_free(src);
        zip_error_fini(&ze);
        return zip_error_fail(p, code, "not a readable zip archive");
    }
    zip_error_fini(&ze);
    int rc = zip_import(p, za, p->spooled);
    zip_discard(za);
    return rc;
}

int apple_export_import_file(struct apple_export *p, const char *path)
{
    if (p == NULL || path == NULL || p->mode != M_SNIFF || p->head_len != 0)
        return APPLE_EXPORT_EINVAL;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(p, APPLE_EXPORT_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    unsigned char h[4] = {0, 0, 0, 0};
    ssize_t got = read(fd, h, sizeof(h));
    if (fstat(fd, &sb) != 0 || got < 0) {
        rc = fail(p, APPLE_EXPORT_EIO, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    if (got == 4 && is_zip(h)) {
        close(fd);
        fd = -1;
        int zerr = 0;
        zip_t *za = zip_open(path, ZIP_RDONLY, &zerr);
        if (za == NULL) {
            p->format = "zip";
            rc = zip_error_fail(p, zerr, "not a readable zip archive");
            goto done;
        }
        rc = zip_import(p, za, (int64_t)sb.st_size);
        zip_discard(za);
        goto done;
    }
    if (got == 0) {
        rc = fail(p, APPLE_EXPORT_EFORMAT, "%s is empty", path);
        goto done;
    }
    p->format = "xml";
    p->mode = M_XML;
    p->st.bytes_total = (int64_t)sb.st_size;
    if ((rc = xml_parse(p, (const char *)h, (size_t)got, 0)) != 0 || (rc = chunk_ready(p)) != 0)
        goto done;
    for (;;) {
        ssize_t n = read(fd, p->chunk, CHUNK);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = fail(p, APPLE_EXPORT_EIO, "cannot read %s: %s", path, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        if ((rc = xml_parse(p, p->chunk, (size_t)n, 0)) != 0)
            goto done;
    }
    rc = xml_finish(p);
done:
    if (fd >= 0)
        close(fd);
    return rc;
}

const char *apple_export_errmsg(const struct apple_export *p) { return p->err; }

int apple_export_callback_rc(const struct apple_export *p) { return p->cb_rc; }

void apple_export_stats_get(const struct apple_export *p, struct apple_export_stats *out) { *out = p->st; }

int64_t apple_export_type_count(const struct apple_export *p, const char *type)
{
    size_t i = (size_t)fnv1a(type) & (TYPE_SLOTS - 1);
    for (;;) {
        const struct type_ent *e = &p->types[i];
        if (e->name == NULL)
            return 0;
        if (strcmp(e->name, type) == 0)
            return e->records;
        i = (i + 1) & (TYPE_SLOTS - 1);
    }
}

static int slot_cmp(const void *a, const void *b)
{
    uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
    return (x > y) - (x < y);
}

/* Add e to the three report objects. 0 or -1 (memory). */
static int report_type(const struct type_ent *e, json_t *types, json_t *unknown, json_t *rejected)
{
    if (e->records == 0)
        return 0;
    if (json_object_set_new(
            types, e->name,
            json_pack("{s:I,s:I}", "records", (json_int_t)e->records, "samples", (json_int_t)e->samples)) != 0)
        return -1;
    if (e->unknown > 0 &&
        json_object_set_new(unknown, e->name,
                            json_pack("{s:I,s:s}", "count", (json_int_t)e->unknown, "reason", e->unknown_reason)) != 0)
        return -1;
    if (e->rejected > 0 && json_object_set_new(rejected, e->name,
                                               json_pack("{s:I,s:s}", "count", (json_int_t)e->rejected, "reason",
                                                         e->rejected_reason)) != 0)
        return -1;
    return 0;
}

json_t *apple_export_report_json(const struct apple_export *p)
{
    json_t *types = json_object(), *unknown = json_object(), *rejected = json_object();
    json_t *r = NULL;
    if (types == NULL || unknown == NULL || rejected == NULL)
        goto fail;
    /* Slot order, as before the used list: the members come out in the
     * same order for the same export. */
    uint16_t order[APPLE_EXPORT_TYPES_MAX];
    memcpy(order, p->used, p->ntypes * sizeof(order[0]));
    qsort(order, p->ntypes, sizeof(order[0]), slot_cmp);
    for (size_t k = 0; k < p->ntypes; k++)
        if (report_type(&p->types[order[k]], types, unknown, rejected) != 0)
            goto fail;
    if (report_type(&p->other, types, unknown, rejected) != 0)
        goto fail;
    r = json_pack("{s:s?,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o,s:o}", "format", p->format, "bytes",
                  (json_int_t)p->st.bytes_parsed, "records", (json_int_t)p->st.records, "samples",
                  (json_int_t)p->st.samples, "stored", (json_int_t)p->st.stored, "duplicates",
                  (json_int_t)(p->st.samples - p->st.stored), "unknown", (json_int_t)p->st.unknown, "rejected",
                  (json_int_t)p->st.rejected, "types", types, "unknown_types", unknown, "rejected_types", rejected);
    /* "o" steals the three objects, on failure too (jansson ≥ 2.11). */
    return r;
fail:
    json_decref(types);
    json_decref(unknown);
    json_decref(rejected);
    return NULL;
}
