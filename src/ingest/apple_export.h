/*
 * apple_export.h — streaming import of an Apple Health export (`export.xml`,
 * or the `export.zip` the Health app writes) into health samples.
 *
 * The Health app's "Export All Health Data" writes a zip whose entry
 * `apple_health_export/export.xml` holds one <HealthData> element with, among
 * others, these children (attributes as written by HealthKit):
 *
 *   <Record type sourceName sourceVersion device unit creationDate startDate
 *           endDate value>  <MetadataEntry key value/>*  </Record>
 *   <Workout workoutActivityType duration durationUnit totalDistance
 *            totalDistanceUnit totalEnergyBurned totalEnergyBurnedUnit
 *            sourceName … startDate endDate>
 *            <MetadataEntry/>* <WorkoutStatistics type sum unit/>* … </Workout>
 *   <Correlation type sourceName … startDate endDate>
 *            <MetadataEntry/>* <Record …/>+ </Correlation>
 *
 * Dates look like "2019-03-06 07:41:18 -0500" (local time and UTC offset).
 * Exports reach gigabytes, so nothing is held in memory beyond one batch of
 * samples: bytes go through expat chunk by chunk and every finished record is
 * mapped at once through the HealthKit mapping (ingest/healthkit.h) into a
 * `struct store_sample`; every `batch_size` samples the caller's callback
 * receives the batch (to store it in one transaction) and the buffer is reused.
 *
 * What becomes of each element:
 *   - Record, HKQuantityTypeIdentifier…: hk_map_quantity(type, unit, value);
 *   - Record, HKCategoryTypeIdentifier…: hk_map_category(type, value,
 *     minutes from start to end) — sleep stages, mindful sessions;
 *   - Workout: metric "workout", value = duration in minutes, energy (kcal)
 *     and distance (km) in the payload (from the attributes, or from
 *     <WorkoutStatistics> children as newer exports write them);
 *   - Correlation HKCorrelationTypeIdentifierBloodPressure: one
 *     "blood_pressure" sample (value systolic, value2 diastolic, mmHg); its
 *     nested systolic/diastolic Records are also mapped like top-level ones
 *     (the same records are usually present at top level too; their dedup
 *     keys are equal, so they are stored once);
 *   - anything the mapping refuses (unknown identifier or unit) is counted
 *     per type with the mapping's reason ("unknown"), a record with a bad
 *     date or number is counted per type as "rejected"; neither stops the
 *     import. ActivitySummary, ClinicalRecord, Me, ExportDate are skipped.
 *
 * Every sample's `payload` is a JSON object (at most APPLE_EXPORT_PAYLOAD_MAX
 * bytes) carrying what store_sample has no column for:
 *   {"tz_offset_min": -300,            UTC offset of startDate, minutes
 *    "end_tz_offset_min": -240,        only when endDate's offset differs
 *    "hk_type": "HKQuantityTypeIdentifierHeartRate",
 *    "category": "asleep_core",        the mapping's category, when any
 *    "source_version": "9.1",
 *    "activity_type": "HKWorkoutActivityTypeRunning", "energy_kcal": 420.5,
 *    "distance_km": 5.02,              workouts
 *    "metadata": {"HKMetadataKeySyncIdentifier": "…", …},
 *    "metadata_truncated": true}       when entries did not fit
 *
 * Deduplication. `hk_uuid` gets a stable key so that the store's unique
 * (user_id, hk_uuid) index drops a record seen twice (in one file, or when an
 * export is imported again), while the same measurement from two sources
 * stays two samples:
 *   - with HKMetadataKeySyncIdentifier: a version-5 UUID (RFC 9562 §5.5,
 *     SHA-1) of (type, sourceName, sync identifier);
 *   - otherwise a version-8 UUID (RFC 9562 §5.8): the first 48 bits are the
 *     start time in Unix milliseconds (as in version 7, so index inserts stay
 *     local), the remaining 74 free bits come from SHA-1 of (type, start ms,
 *     end ms, value text, unit, sourceName).
 *
 * Threads: one parser belongs to one thread; different parsers are
 * independent. No globals. The callback runs on the thread that called
 * feed / finish / import_file, inside that call.
 *
 * Use from an HTTP handler (POST /api/v1/healthkit/import): create the
 * parser when the request starts (size_hint = Content-Length, upload_id of
 * the uploads row), pass every body chunk to apple_export_feed as it
 * arrives, call apple_export_finish when the body is complete, and answer
 * with apple_export_report_json. APPLE_EXPORT_EFORMAT is the client's fault
 * (422/400, apple_export_errmsg is a client-safe detail); ECALLBACK means
 * the batch callback stopped the import (it keeps its own code); EIO and ENOMEM are
 * ours (500/503). An XML body is parsed (and stored, batch by batch) while
 * it arrives; a zip body is spooled to a temporary file and all its work
 * happens in apple_export_finish. The CLI (src/cli/import.c) is a complete
 * caller: one transaction per batch holding the samples and the upload's
 * progress.
 */
#ifndef CLARITY_INGEST_APPLE_EXPORT_H
#define CLARITY_INGEST_APPLE_EXPORT_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* Return codes: APPLE_EXPORT_E* in core/err.h (0 is APPLE_EXPORT_OK). */

#define APPLE_EXPORT_BATCH_DEFAULT 1000
#define APPLE_EXPORT_BATCH_MAX 10000
#define APPLE_EXPORT_PAYLOAD_MAX 2048 /* bytes of one sample's payload, with NUL */

/*
 * Defences against hostile uploads (docs/security.md), each refused with
 * APPLE_EXPORT_EFORMAT while streaming, before the memory or time is spent:
 *  - DEPTH_MAX: elements nested deeper than this (a real export nests 4
 *    levels; expat keeps a tag record per open element, so unbounded nesting
 *    cost ~47 bytes of memory per uploaded byte);
 *  - TOKEN_MAX: one XML token (a start tag with its attributes) larger than
 *    this (real ones are under 4 KiB), which bounds the memory per element;
 *  - a zip entry that inflates to more than ZIP_RATIO_MAX times the archive's
 *    size (and more than ZIP_FLOOR bytes), or to more than max_xml_bytes:
 *    a zip bomb (deflate reaches ~1000:1; real exports ~10-20:1).
 */
#define APPLE_EXPORT_DEPTH_MAX 16
#define APPLE_EXPORT_TOKEN_MAX (1024 * 1024)
#define APPLE_EXPORT_ZIP_RATIO_MAX 100
#define APPLE_EXPORT_ZIP_FLOOR (16LL * 1024 * 1024)
#define APPLE_EXPORT_XML_MAX_DEFAULT (64LL * 1024 * 1024 * 1024)

/* Running totals. "records" counts Record/Workout/Correlation elements,
 * nested Records included; samples = records - unknown - rejected +
 * (correlations mapped: each is itself a record). */
struct apple_export_stats {
    int64_t bytes_parsed; /* XML bytes given to expat so far (uncompressed) */
    int64_t bytes_total;  /* XML size when known (file, zip entry, size hint), else 0 */
    int64_t records;
    int64_t samples;  /* mapped samples handed to the callback */
    int64_t stored;   /* of those, how many the callback reported as new */
    int64_t unknown;  /* records the mapping does not know (identifier or unit) */
    int64_t rejected; /* records with an unusable date, value or interval */
    int64_t batches;  /* callback calls */
};

/*
 * Receives n (1..batch_size) mapped samples. The array and every payload are
 * borrowed for the duration of the call (the parser reuses them). so_far are
 * the totals including this batch (bytes_parsed: as far as expat has read),
 * for progress reports. The batch is the parser's buffer, lent for the
 * call: the callback may complete the samples (an ingest session sets their
 * upload_id) but must not keep them. Write into *stored how many of the n were new (e.g.
 * store_sample_insert_batch's `inserted`); left untouched it counts as n.
 * Return 0 to go on; any other value stops the import and the pending
 * apple_export_feed / _finish / _import_file returns APPLE_EXPORT_ECALLBACK
 * (the callback keeps its own code for its caller).
 */
typedef int (*apple_export_batch_fn)(void *ctx, struct store_sample *v, size_t n,
                                     const struct apple_export_stats *so_far, size_t *stored);

struct apple_export_options {
    const char *user_id;            /* required; copied into every sample */
    const char *upload_id;          /* NULL or "": none; copied into every sample */
    size_t batch_size;              /* 0 → APPLE_EXPORT_BATCH_DEFAULT; at most APPLE_EXPORT_BATCH_MAX */
    int64_t size_hint;              /* expected XML bytes (e.g. Content-Length), 0 unknown:
                              only for bytes_total / progress */
    apple_export_batch_fn on_batch; /* required */
    void *ctx;                      /* passed to on_batch */
    int64_t max_xml_bytes;          /* XML bytes parsed at most (plain or inflated);
                                       0: APPLE_EXPORT_XML_MAX_DEFAULT */
    const atomic_int *stop;         /* NULL, or set non-zero to abandon the import: checked
                                       before every chunk (256 KiB) given to expat, so
                                       shutdown never waits for a whole export */
};

struct apple_export;

/*
 * Create a parser. The options are copied (strings too). Returns 0 and *out
 * (free with apple_export_free), APPLE_EXPORT_EINVAL for missing or too long
 * user/upload ids or a bad batch size, APPLE_EXPORT_ENOMEM.
 */
int apple_export_new(const struct apple_export_options *o, struct apple_export **out);

/*
 * Push the next len bytes of the upload. The first bytes decide the format:
 * "PK\3\4" (or an empty zip's "PK\5\6") is a zip, which cannot be read before
 * its central directory at the end arrives, so zip bytes are spooled to an
 * anonymous temporary file (tmpfile(3): disk, not memory) and parsed by
 * apple_export_finish; anything else is parsed as XML at once, batches going
 * to the callback as records complete. Chunks may split anywhere.
 * Returns 0, or a negative code (apple_export_errmsg says why); after a
 * failure every later call returns the same code.
 */
int apple_export_feed(struct apple_export *p, const void *data, size_t len);

/*
 * End of input: parse a spooled zip, check the document is complete, hand
 * the last partial batch to the callback. Returns 0 when the whole export
 * was read (unknown and rejected records do not make it fail), else a
 * negative code. Call once.
 */
int apple_export_finish(struct apple_export *p);

/*
 * Import a file: a zip (detected by its signature, not its name) is opened
 * in place with libzip and its export.xml entry streamed through expat; any
 * other file is read in chunks as XML. Equivalent to feed…finish, without a
 * spool. bytes_total is set from the file or entry size. Returns as
 * apple_export_finish; APPLE_EXPORT_EIO when the file cannot be opened.
 */
int apple_export_import_file(struct apple_export *p, const char *path);

/* Free the parser (and its spool); accepts NULL. */
void apple_export_free(struct apple_export *p);

/* Why the last call failed: a client-safe sentence (line and column for XML
 * errors; never record values). "" when nothing failed. Borrowed. */
const char *apple_export_errmsg(const struct apple_export *p);

#ifdef CLARITY_TEST_API
/* Test API (unit tests build with CLARITY_TEST_API; see CMakeLists.txt). */
/* The value the callback returned when the import ended with
 * APPLE_EXPORT_ECALLBACK, else 0. */
int apple_export_callback_rc(const struct apple_export *p);
#endif

/* Copy the running totals. */
void apple_export_stats_get(const struct apple_export *p, struct apple_export_stats *out);

/* Records seen of one type (HealthKit identifier as written in the file,
 * "HKWorkoutTypeIdentifier" for workouts); 0 when none. */
int64_t apple_export_type_count(const struct apple_export *p, const char *type);

/*
 * The import summary as a new JSON object (caller decrefs), NULL on memory
 * failure:
 *   {"format": "xml"|"zip", "bytes": N, "records": N, "samples": N,
 *    "stored": N, "duplicates": samples - stored, "unknown": N,
 *    "rejected": N,
 *    "types": {"HKQuantityTypeIdentifierHeartRate": {"records": N, "samples": N}, …},
 *    "unknown_types": {"HKQuantityTypeIdentifierEnvironmentalAudioExposure":
 *                      {"count": N, "reason": "…"}, …},
 *    "rejected_types": {TYPE: {"count": N, "reason": "…"}, …}}
 * At most APPLE_EXPORT_TYPES_MAX distinct types are listed; the rest are
 * summed under "(other)".
 */
json_t *apple_export_report_json(const struct apple_export *p);
#define APPLE_EXPORT_TYPES_MAX 512

/*
 * Parse an export date "YYYY-MM-DD hh:mm:ss ±hhmm" exactly (the form
 * HealthKit writes; impossible dates and offsets refused). Writes the UTC
 * instant in epoch milliseconds and the offset in minutes (east positive).
 * Returns 0, or -1 when s is not such a date.
 */
int apple_export_date_parse(const char *s, int64_t *ms, int *offset_min);

/*
 * The content key of a sample without a sync identifier (the version-8 UUID
 * described under "Deduplication" above), written to out (at least 37
 * bytes). hk_type is the HealthKit identifier in full
 * ("HKQuantityTypeIdentifierStepCount"), value the value as text (the
 * export's attribute; for a category its HKCategoryValue… name), unit and
 * source as the export writes them ("" when absent). Another path that
 * receives the same samples (the app's sync, ingest/app_sample.h) derives
 * its keys here too, so a sync and an import of one sample store it once.
 */
void apple_export_content_key(const char *hk_type, int64_t start_ms, int64_t end_ms, const char *value,
                              const char *unit, const char *source, char *out, size_t cap);

#endif
