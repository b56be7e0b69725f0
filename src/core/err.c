/*
 * err.c — names of the codes in err.h.
 */
#include "core/err.h"

const char *clarity_strerror(int rc)
{
    switch ((enum clarity_err)rc) {
    case CLARITY_OK: return "ok";

    case STORE_ENOTFOUND: return "not found";
    case STORE_ECONFLICT: return "conflict";
    case STORE_EUNAVAILABLE: return "database unavailable";
    case STORE_EBUSY: return "database busy";
    case STORE_EINVAL: return "invalid argument";
    case STORE_ENOMEM: return "out of memory";
    case STORE_EINTERNAL: return "internal database error";
    case STORE_EMIGRATION: return "schema migrations pending or changed";
    case STORE_EUNSUPPORTED: return "not supported by this backend";

    case ENVELOPE_EINVAL: return "invalid argument";
    case ENVELOPE_ENOMEM: return "out of memory";
    case ENVELOPE_EAUTH: return "authentication failed (wrong key, or data or binding altered)";
    case ENVELOPE_EINIT: return "libsodium initialisation failed";

    case KEYRING_EINVAL: return "invalid argument or key";
    case KEYRING_EAUTH: return "authentication failed (wrong ENCRYPTION_KEY, or encrypted data altered)";
    case KEYRING_ENOKEY: return "no encryption key configured";
    case KEYRING_EIO: return "key file I/O error";
    case KEYRING_ENOMEM: return "out of memory";
    case KEYRING_ESTATE: return "key ring unusable";

    case PAT_ERR_IO: return "i/o error";
    case PAT_ERR_FORMAT: return "bad file format";
    case PAT_ERR_SHAPE: return "bad weight shape";
    case PAT_ERR_CHECKSUM: return "checksum mismatch";
    case PAT_ERR_NOMEM: return "out of memory";
    case PAT_ERR_ARG: return "bad argument";
    case PAT_ERR_INPUT: return "bad input";

    case COMPUTE_EREJECTED: return "the data cannot be analysed";
    case COMPUTE_ENOMEM: return "out of memory";
    case COMPUTE_EINTERNAL: return "internal analysis error";

    case WORKER_ERELEASED: return "released at shutdown";

    case ANALYSIS_EINVAL: return "invalid analysis input";
    case ANALYSIS_ETOOMANY: return "too many data points";
    case ANALYSIS_EINTERNAL: return "internal analysis error";
    case ANALYSIS_ESPAN: return "the points span too many minutes";

    case APPLE_EXPORT_EINVAL: return "invalid argument";
    case APPLE_EXPORT_EFORMAT: return "not a readable Apple Health export";
    case APPLE_EXPORT_EIO: return "export file I/O error";
    case APPLE_EXPORT_ENOMEM: return "out of memory";
    case APPLE_EXPORT_ECALLBACK: return "storing a batch failed";
    case APPLE_EXPORT_ESTOPPED: return "import stopped for shutdown";

    case HK_EINVAL: return "missing HealthKit field";
    case HK_EUNKNOWN_TYPE: return "unknown HealthKit type";
    case HK_EUNIT: return "unknown or unfit HealthKit unit";
    case HK_EVALUE: return "unusable HealthKit value";

    case INGEST_EINVAL: return "ingest step out of order or invalid";
    case INGEST_ENOMEM: return "out of memory";
    case INGEST_EINVALID: return "the input is invalid";
    case INGEST_EOWNER: return "the input belongs to another user";

    case JOBS_EPAYLOAD: return "not a job message";
    case JOBS_ENOMEM: return "out of memory";

    case JSON_EINVALID: return "not valid JSON";
    case JSON_ENOMEM: return "out of memory";

    case TOKEN_EINVALID: return "token refused";
    case TOKEN_ENOMEM: return "out of memory";
    case TOKEN_EUNAVAILABLE: return "identity provider keys unavailable";
    }
    return "unknown error";
}
