/*
 * limits.h — every cap a client can run into, in one place, with why.
 *
 * STYLE.md 9: a hard cap on everything a client controls. A cap that a
 * client meets belongs here (and in docs/api.md when the API states it); a
 * cap on the server's own resources (thread counts, table sizes) stays in its
 * module. Caps that an operator may lower are configuration (core/config.c)
 * whose upper bound is the constant here.
 */
#ifndef CLARITY_CORE_LIMITS_H
#define CLARITY_CORE_LIMITS_H

/* ---- posted series ("points → analysis": /api/v1/pat, chat health_insight) */

/* Points of one posted series: two weeks of minutes, twice the PAT input
 * (10080 minutes), so a client can send the week before and the week of. */
#define LIMIT_POINTS_MAX 20160
/* The minutes a posted series may span: the same two weeks. Longer spans
 * would be mostly gaps and make the minute series grow without bound. */
#define LIMIT_POINTS_SPAN_MIN 20160
/* Default points of a chat health_insight (CHAT_MAX_DATA_POINTS; at most
 * LIMIT_POINTS_MAX): one week, the PAT input. */
#define LIMIT_CHAT_POINTS_DEFAULT 10080

/* ---- uploads ------------------------------------------------------------ */

/* Metrics of one HealthDataUpload when MAX_METRICS_PER_UPLOAD is not set
 * (API.md: "up to 1000 metrics per request"). */
#define LIMIT_UPLOAD_METRICS_DEFAULT 1000
/* Samples of one native HealthKit upload (all four lists together): a day of
 * a watch's heart rate at 1 Hz bursts plus steps fits with room; the iOS app
 * pages larger syncs (clients/ios-app.md). */
#define LIMIT_HEALTHKIT_SAMPLES 50000
/* Quantity samples inside one HealthKit correlation: blood pressure has 2,
 * food a handful; 16 refuses a correlation used as a second sample list. */
#define LIMIT_HEALTHKIT_CORRELATION_OBJECTS 16
/* Unsupported HealthKit samples listed back in a reply (more are counted in
 * the upload's rejected total, not listed). */
#define LIMIT_HEALTHKIT_UNSUPPORTED_LISTED 1000
/* The upload's sync_token (stored, echoed): 255 bytes as the column. */
#define LIMIT_SYNC_TOKEN 255
/* Free-text notes of a mood assessment (kept in the encrypted payload). */
#define LIMIT_NOTES_CHARS 1000
/* An Idempotency-Key header: 255 visible ASCII characters (IETF httpapi
 * draft leaves the length to the server; the column is 255). */
#define LIMIT_IDEMPOTENCY_KEY 255

/* A research recording's body (POST /api/v1/recordings), held in memory
 * while it is read: a year of 15-s epochs as timestamp,value CSV is ~55 MiB,
 * a year of an Actiwatch .AWD at 30 s ~6 MiB. MAX_IMPORT_BYTES, when lower,
 * lowers it. */
#define LIMIT_RECORDING_BYTES (64u * 1024u * 1024u)

/* A client's X-Request-ID, echoed and kept in logs and the audit row: the
 * length of a W3C trace id pair with room, not a payload channel. Longer or
 * odd ones are replaced by a UUID (http/server.c), never cut. */
#define LIMIT_REQUEST_ID 128

/* ---- reads -------------------------------------------------------------- */

/* Rows of one page of a list (the `limit` query parameter's maximum). */
#define LIMIT_PAGE_MAX 1000

/* ---- identity ----------------------------------------------------------- */

/* A bearer token: far above a real JWT (~1 KiB), far below a header line. */
#define LIMIT_TOKEN_BYTES 8192
/* A password, in characters: Argon2id takes any length, but hashing a
 * megabyte per login attempt would be a denial of service. */
#define LIMIT_PASSWORD_CHARS 128

/* ---- insights ----------------------------------------------------------- */

/* Characters of user context for an insight (POST /api/v1/insights/generate)
 * and of context passed to an LLM: a paragraph, not a document. */
#define LIMIT_INSIGHT_CONTEXT_CHARS 1000

/* ---- problems ----------------------------------------------------------- */

/* Field errors listed in one problem+json; beyond this they are counted. A
 * 50 000-sample upload with every sample wrong must not answer megabytes. */
#define LIMIT_PROBLEM_ERRORS 1000

#endif
