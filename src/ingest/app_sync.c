/*
 * app_sync.c — the iOS app's sync body into samples. See app_sync.h; the
 * mapping of one sample is app_sample.c's.
 */
#include "ingest/app_sync.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/limits.h"
#include "core/timeutil.h"
#include "ingest/app_sample.h"

int app_sync_parse(json_t *body, const char *user_id, struct check *c, struct upload_samples *out, json_t *errors,
                   size_t *unsupported, int64_t *client_ts_ms)
{
    static const char *const allowed[] = {"user_id", "samples", "device_info", "timestamp", NULL};
    *unsupported = 0;
    *client_ts_ms = 0;
    /* The owner first, before any field error is recorded: a body for
     * another user is refused as such (403), whatever else is wrong in it. */
    json_t *uv = json_object_get(body, "user_id");
    if (json_is_string(uv) && strcasecmp(json_string_value(uv), user_id) != 0)
        return INGEST_EOWNER;
    check_only(c, body, "", allowed);
    check_string(c, body, "", "user_id", 1, 1, 255);
    json_t *tsv = json_object_get(body, "timestamp");
    if (tsv == NULL || json_is_null(tsv))
        check_error(c, "/timestamp", "is required");
    else if (!json_is_string(tsv) || time_parse_rfc3339(json_string_value(tsv), client_ts_ms, NULL) != 0)
        check_error(c, "/timestamp", "must be an RFC 3339 date-time, e.g. 2025-06-24T10:00:00Z");
    json_t *di = json_object_get(body, "device_info");
    if (di != NULL && !json_is_null(di) && !json_is_object(di))
        check_error(c, "/device_info", "must be an object");
    json_t *arr = json_object_get(body, "samples");
    if (!json_is_array(arr))
        check_error(c, "/samples", arr == NULL ? "is required" : "must be an array");
    else if (json_array_size(arr) > LIMIT_HEALTHKIT_SAMPLES)
        check_error(c, "/samples", "holds %zu samples; at most %d per sync", json_array_size(arr),
                    LIMIT_HEALTHKIT_SAMPLES);
    if (c->nerrors > 0)
        return INGEST_EINVALID;
    size_t i;
    json_t *sv;
    json_array_foreach (arr, i, sv) {
        struct store_sample *x = upload_samples_add(out);
        struct app_sample_error e;
        if (x == NULL)
            return INGEST_ENOMEM;
        int rc = app_sample_map(sv, user_id, x, &e);
        if (rc == APP_SAMPLE_OK)
            continue;
        out->n--; /* the slot holds no payload: it is reused */
        if (rc == APP_SAMPLE_ENOMEM)
            return INGEST_ENOMEM;
        if (rc == APP_SAMPLE_UNSUPPORTED) {
            (*unsupported)++;
            if (json_array_size(errors) < APP_SYNC_ERRORS_LISTED) {
                char line[300];
                snprintf(line, sizeof(line), "/samples/%zu%s %s", i, e.member, e.reason);
                json_array_append_new(errors, json_string(line));
            }
            continue;
        }
        if (c->nerrors < APP_SYNC_ERRORS_LISTED) {
            char ptr[96];
            snprintf(ptr, sizeof(ptr), "/samples/%zu%s", i, e.member);
            check_error(c, ptr, "%s", e.reason);
        } else {
            c->nerrors++; /* counted, not listed */
        }
    }
    return c->nerrors > 0 ? INGEST_EINVALID : 0;
}
