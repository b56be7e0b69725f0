/*
 * block.h — sample blocks: one user's samples (a day, a delta of a day)
 * encoded column by column the way time-series databases do (issue #19).
 *
 * Pure functions over buffers: no I/O, no clock, no locks, no logging. The
 * store seals the bytes (keyring_block_seal) before they reach the database
 * and opens them before block_reader_open; the decoder still treats its
 * input as untrusted (tests/fuzz/block_fuzz.c): every length is checked
 * against the bytes left, every allocation is bounded by the input size, and
 * bytes that are not a block answer BLOCK_ECORRUPT, never a crash.
 *
 * What a sample is reduced to:
 *   - a series: the tuple (metric type, unit, source, device, upload id,
 *     validation status, processing version), each string once in a string
 *     table and each tuple once in a series table; a sample names its series
 *     by index (one varint, usually one byte);
 *   - its id, as the difference from the previous sample's id (ids are
 *     sequential within an insert: one byte);
 *   - start_ms as delta-of-delta against the previous sample of its series
 *     (Gorilla, Pelkonen et al., VLDB 2015, section 4.1.1; minute data has a
 *     delta-of-delta of 0: one byte), end_ms as the change of its duration;
 *     both in wrapping 64-bit arithmetic, so any int64 round-trips;
 *   - value, value2: per series either scaled integers (when every value of
 *     the series is exactly k / 10^s for one s in 0..9: steps, heart rate,
 *     kg with one decimal…), coded as the varint change of k, or else the
 *     XOR of the value's bits with the previous value's (Gorilla, section
 *     4.1.2, byte-aligned: a header byte with the count of leading and
 *     trailing zero bytes, then the middle bytes); quality the XOR way;
 *   - the UTC offset only where it changes within its series;
 *   - flags (value present, payload present…), one byte;
 *   - hk_uuid only where there is one: 16 bytes for a UUID in canonical
 *     lower- or upper-case text, else the text. Since format 2 a series
 *     whose UUID keys are all content keys of their own sample (version 8,
 *     the first 48 bits the sample's start_ms: apple_export_content_key)
 *     keeps only their last 10 bytes, and one whose text keys are all
 *     "h:" and 32 lower-case hex digits (ingest/hk_upload.c) keeps 16
 *     bytes of each;
 *   - payloads only where a sample has one, each distinct payload once in
 *     a table (format 1: the string table; format 2: a payload table of
 *     its own, zstd-compressed where shorter, since the export's per-sample
 *     JSON payloads repeat most of their text), named by its index (format
 *     2: the change from the index of its series' last payload); a payload
 *     that is exactly {"tz_offset_min":N} with the sample's offset N is a
 *     flag alone.
 * Varints are LEB128 (unsigned) over zigzag-mapped signed values.
 *
 * Layout (all varints unless said):
 *   "CB" (2 bytes), u8 version (BLOCK_FORMAT; 1 is still read), u8 0,
 *   n_samples, n_strings, then per string: length, bytes (no NUL inside),
 *   format 2 only, the payload table: n_payloads (<= n_samples), its
 *     plain length raw, zlen, then either (zlen 0) raw bytes: per payload
 *     length, bytes (no NUL), checked when the block is opened; or one
 *     zstd frame of zlen bytes (Collet and Kucherawy, RFC 8878: the current
 *     frame magic, its content size stated and equal to raw, nothing after
 *     it; zlen < raw <= 256 zlen + 4096) inflating to those raw bytes,
 *     inflated and checked only when a payload is first read, so the
 *     analysis window's read (block_reader_skip_text) never inflates it,
 *   n_series, then per series: 6 string indexes (type, unit, source, device,
 *     upload, validation), zigzag processing_version, u8 value mode,
 *     u8 value2 mode (mode: 0xFF XOR, else the scale s), in format 2 u8 key
 *     mode (bit 0: UUID keys are 10-byte content-key tails, bit 1: text
 *     keys are 16-byte hex keys),
 *   u8 run mask, BLOCK_COLUMNS column lengths, then the columns in order:
 *   series, flags, id, start, duration, value, value2, quality, offset,
 *   hk_uuid, payload. The first five hold one number per sample and are
 *   written plainly or, where shorter, as (number, run length - 1) pairs
 *   (bit c of the run mask): ids +1, a delta-of-delta of 0, the same flags
 *   cost almost nothing. In format 2 the payload column (one number per
 *   sample with a payload) may be runs too (bit 5).
 * Every column must be consumed exactly; trailing bytes are corruption.
 *
 * Values: NaN means "none" (as in struct store_sample; NaN is never stored
 * as a value, any NaN reads back as the NAN constant); ±infinity is refused.
 */
#ifndef CLARITY_STORE_BLOCK_H
#define CLARITY_STORE_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#define BLOCK_FORMAT 2 /* the codec's version, in each block's header */
/* The sealed day row's binding "block/<day>/v<n>" (src/store/days.c): the
 * row's layout, not the codec's; blocks of any format sit in a v1 row. */
#define BLOCK_SEAL_FORMAT 1
#define BLOCK_COLUMNS 11
#define BLOCK_MAX_SAMPLES ((size_t)1 << 20) /* 1 Mi samples: far above a day */
#define BLOCK_MAX_STRING ((size_t)1 << 24)  /* longest string or payload: 16 MiB */

#define BLOCK_OK 0
#define BLOCK_EINVAL (-1) /* a sample the format cannot hold (±inf, end < start, no type…) */
#define BLOCK_ENOMEM (-2)
#define BLOCK_ECORRUPT (-3) /* bytes that are not a valid block */

/* One sample as the codec sees it. On encode every pointer is borrowed
 * (NULL means "" for the strings, none for hk_uuid and payload); on decode
 * they point into the reader and stay valid until the next block_reader_next
 * (hk_uuid, an offset-only payload) or block_reader_free (the dictionary
 * strings, other payloads). */
struct block_sample {
    int64_t id;
    int64_t start_ms;
    int64_t end_ms; /* >= start_ms */
    double value;   /* NaN: none */
    double value2;  /* NaN: none */
    double quality; /* NaN: none */
    int32_t utc_offset_min;
    int32_t processing_version;
    const char *metric_type; /* required, non-empty */
    const char *unit;
    const char *source;
    const char *device;
    const char *upload_id;
    const char *validation_status;
    const char *hk_uuid; /* NULL or "": none */
    const char *payload; /* NULL: none */
};

/* A series of a decoded block (its strings belong to the reader). */
struct block_series {
    const char *metric_type, *unit, *source, *device, *upload_id, *validation_status;
    int32_t processing_version;
};

/*
 * Encode n samples (1..BLOCK_MAX_SAMPLES) in the given order, which the
 * decoder gives back unchanged. *out is a new malloc'd buffer of *out_len
 * bytes (caller frees). BLOCK_EINVAL for n out of range or a sample the
 * format cannot hold (±inf in a value, end_ms < start_ms, an empty metric
 * type, a string longer than BLOCK_MAX_STRING); nothing is written then.
 */
int block_encode(const struct block_sample *s, size_t n, unsigned char **out, size_t *out_len);

/*
 * The format block_encode writes from now on, process-wide: BLOCK_FORMAT
 * (the default), or 1 while a release that reads only format 1 still runs
 * beside this one (SAMPLE_BLOCK_FORMAT; docs/operations.md). 0, or
 * BLOCK_EINVAL for a format this codec cannot write.
 */
int block_set_write_format(int format);

struct block_reader;

/*
 * Parse a block's header, dictionary and column table (borrowing p, which
 * must outlive the reader). 0 and *out, BLOCK_ECORRUPT or BLOCK_ENOMEM.
 * Samples are then decoded one by one with block_reader_next.
 */
int block_reader_open(const unsigned char *p, size_t len, struct block_reader **out);
/* Samples in the block. */
size_t block_reader_count(const struct block_reader *r);
/* With skip non-zero, block_reader_next leaves hk_uuid and payload NULL
 * (their columns are stepped over, not formatted or copied; a text hk_uuid
 * is then not checked for NUL bytes): the analysis window's read, which
 * needs neither for most types. */
void block_reader_skip_text(struct block_reader *r, int skip);
/* The series table: count, and series i (NULL when out of range). */
size_t block_reader_series_count(const struct block_reader *r);
const struct block_series *block_reader_series(const struct block_reader *r, size_t i);
/*
 * The next sample into *out and its series index into *series (may be
 * NULL). Returns 1 for a sample, 0 after the last one (when every column
 * was consumed exactly), or BLOCK_ECORRUPT.
 */
int block_reader_next(struct block_reader *r, struct block_sample *out, uint32_t *series);
/* Free; accepts NULL. */
void block_reader_free(struct block_reader *r);

/* Short English text for a BLOCK_E* code. */
const char *block_strerror(int rc);

#endif
