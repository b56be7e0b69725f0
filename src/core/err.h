/*
 * err.h — Clarity's one error space.
 *
 * Every function that fails returns a negative code from this file (0 is
 * success). Each module owns a block of 100 codes, so a code tells by itself
 * which module failed and what went wrong, and a code can cross a module
 * boundary unchanged (a keyring call passes a STORE_E* code through; the
 * ingest session passes STORE_E*, KEYRING_E* and JOBS_E* codes through) with
 * no range tests and no text matching to tell them apart.
 *
 *   block   module
 *   -1xx    store          (src/store/)
 *   -2xx    envelope       (src/crypto/envelope.c)
 *   -3xx    keyring        (src/crypto/keyring.c)
 *   -4xx    pat            (src/ml/)
 *   -5xx    compute        (src/pipeline/compute.c)
 *   -6xx    worker         (src/pipeline/worker.c)
 *   -7xx    analysis use case ("points → analysis": PAT API, chat)
 *   -8xx    apple_export   (src/ingest/apple_export.c)
 *   -9xx    healthkit      (src/ingest/healthkit.c)
 *   -10xx   ingest session (src/ingest/session.c)
 *   -11xx   jobs           (src/pipeline/jobs.c)
 *   -12xx   json           (src/core/json_load.c)
 *   -13xx   token          (src/auth/jwt.c, oidc.c; api/guard.c passes STORE_E* through)
 *
 * clarity_strerror names any code. The mapping from a code to an RFC 7807
 * status and type lives at the HTTP boundary (api_store_failure in
 * src/api/common.c), not here: core and the layers above it up to the use
 * cases do not know HTTP (docs/architecture.md, "Errors").
 *
 * Adding a code: take the next number in its module's block, name it in
 * clarity_strerror (err.c), and decide its status in api/common.c; the unit
 * test err_test checks that every code has a distinct name.
 */
#ifndef CLARITY_CORE_ERR_H
#define CLARITY_CORE_ERR_H

enum clarity_err {
    CLARITY_OK = 0,
    /* Module spellings of success, for code that reads better with them. */
    STORE_OK = 0,
    ENVELOPE_OK = 0,
    PAT_OK = 0,
    APPLE_EXPORT_OK = 0,

    /* store */
    STORE_ENOTFOUND = -101,    /* no such row (or not the caller's) */
    STORE_ECONFLICT = -102,    /* unique key taken; a queue lease was lost */
    STORE_EUNAVAILABLE = -103, /* database down, disk full, pool exhausted */
    STORE_EBUSY = -104,        /* lock or statement timeout; retry later */
    STORE_EINVAL = -105,       /* bad argument, too-long field, constraint */
    STORE_ENOMEM = -106,
    STORE_EINTERNAL = -107,    /* unexpected SQL failure: a bug */
    STORE_EMIGRATION = -108,   /* pending or tampered migrations */
    STORE_EUNSUPPORTED = -109, /* not available on this backend */

    /* envelope encryption */
    ENVELOPE_EINVAL = -201, /* bad argument: wrong length, empty or too-long id */
    ENVELOPE_ENOMEM = -202,
    ENVELOPE_EAUTH = -203, /* authentication failed: wrong key, tampered data or binding */
    ENVELOPE_EINIT = -204, /* libsodium could not initialise */

    /* key ring (also passes STORE_E* through) */
    KEYRING_EINVAL = -301, /* bad argument; malformed key text */
    KEYRING_EAUTH = -302,  /* wrong ENCRYPTION_KEY, or tampered key ring or data */
    KEYRING_ENOKEY = -303, /* no encryption key configured */
    KEYRING_EIO = -304,    /* reading or writing the development key file */
    KEYRING_ENOMEM = -305,
    KEYRING_ESTATE = -306, /* key ring unusable: no active version, unknown algorithm,
                              or an entry that does not open */

    /* PAT model and encoder */
    PAT_ERR_IO = -401,       /* file missing or unreadable */
    PAT_ERR_FORMAT = -402,   /* not HDF5, or a dataset is missing / not float */
    PAT_ERR_SHAPE = -403,    /* a dataset has a shape inconsistent with PAT */
    PAT_ERR_CHECKSUM = -404, /* SHA-256 differs from the expected one */
    PAT_ERR_NOMEM = -405,
    PAT_ERR_ARG = -406,   /* bad argument (caller bug or mismatched objects) */
    PAT_ERR_INPUT = -407, /* input values not finite / not usable */

    /* compute (also passes STORE_E* through) */
    COMPUTE_EREJECTED = -501, /* the data cannot be analysed (err says why) */
    COMPUTE_ENOMEM = -502,
    COMPUTE_EINTERNAL = -503,

    /* worker */
    WORKER_ERELEASED = -601, /* given back at shutdown */

    /* the "points → analysis" use case */
    ANALYSIS_EINVAL = -701,   /* bad content (see the reason) */
    ANALYSIS_ETOOMANY = -702, /* more than the allowed number of points */
    ANALYSIS_EINTERNAL = -703,
    ANALYSIS_ESPAN = -704, /* the points span more minutes than allowed */

    /* Apple Health export */
    APPLE_EXPORT_EINVAL = -801,  /* bad argument, or use after finish */
    APPLE_EXPORT_EFORMAT = -802, /* not well-formed XML, not a Health export, bad zip,
                                     zip without export.xml */
    APPLE_EXPORT_EIO = -803,     /* the file (or the spool) cannot be read or written */
    APPLE_EXPORT_ENOMEM = -804,
    APPLE_EXPORT_ECALLBACK = -805, /* the batch callback returned non-zero */
    APPLE_EXPORT_ESTOPPED = -806,  /* the stop flag was set (shutdown): the import was abandoned */

    /* HealthKit mapping */
    HK_EINVAL = -901,        /* a required argument is missing */
    HK_EUNKNOWN_TYPE = -902, /* an identifier this server does not know: reported, not stored */
    HK_EUNIT = -903,         /* unknown unit, or one that does not fit the type */
    HK_EVALUE = -904,        /* value not finite, unknown category value, end before start */

    /* ingest session */
    INGEST_EINVAL = -1001, /* bad argument, or a step out of order */
    INGEST_ENOMEM = -1002,
    INGEST_EINVALID = -1003, /* the input has field errors (recorded on the check) */
    INGEST_EOWNER = -1004,   /* the input names another user than the caller */

    /* jobs (queue message schema) */
    JOBS_EPAYLOAD = -1101, /* the message is not a job of this topic */
    JOBS_ENOMEM = -1102,

    /* JSON parsing (core/json_load.h) */
    JSON_EINVALID = -1201, /* the bytes are not JSON: the client's */
    JSON_ENOMEM = -1202,   /* an allocation failed while parsing: the server's */

    /* bearer tokens */
    TOKEN_EINVALID = -1301,     /* refused: malformed, forged, expired, revoked, unknown */
    TOKEN_ENOMEM = -1302,       /* an allocation failed while verifying: the server's */
    TOKEN_EUNAVAILABLE = -1303, /* the identity provider's keys cannot be had */
};

/* A short English name for rc ("not found", "out of memory"); "ok" for 0 and
 * "unknown error" for a number that is no code. Static storage. */
const char *clarity_strerror(int rc);

#endif
