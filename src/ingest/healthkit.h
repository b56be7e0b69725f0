/*
 * healthkit.h — from HealthKit identifiers and unit strings to Clarity's
 * canonical metric types and units.
 *
 * HealthKit names each sample type (HKQuantityTypeIdentifierHeartRate,
 * HKCategoryTypeIdentifierSleepAnalysis, HKWorkoutTypeIdentifier, …) and
 * gives quantity values in a unit string of its own grammar ("count/min",
 * "ms", "%", "degF", "mg/dL", "mmol<180.1558800000541>/L", "kcal", "kJ",
 * "km", "mi"). Clarity stores one canonical type and unit per metric, so the
 * same quantity from the API, a native upload or an export import compares
 * directly. An identifier or unit this table does not know is an error the
 * caller reports — never silently dropped.
 *
 * Pure lookups and arithmetic: no allocation, no I/O, reentrant.
 */
#ifndef CLARITY_INGEST_HEALTHKIT_H
#define CLARITY_INGEST_HEALTHKIT_H

#include <stddef.h>

#include "core/err.h"
#include "core/metric_types.h"

/* The canonical metric types (HK_T_*) are core/metric_types.h's. */

enum hk_kind { HK_QUANTITY = 0, HK_CATEGORY, HK_WORKOUT, HK_CORRELATION };

struct hk_mapped {
    const char *metric_type; /* static canonical type */
    const char *unit;        /* static canonical unit */
    double value;            /* in the canonical unit */
    const char *category;    /* static: sleep stage ("in_bed", "asleep_unspecified", "asleep_core",
                                "asleep_deep", "asleep_rem", "awake") or NULL */
};

/*
 * Map one quantity sample: identifier (e.g. "HKQuantityTypeIdentifierHeartRate",
 * the "HKQuantityTypeIdentifier" prefix optional), unit string, value.
 * Returns 0 and fills *out, or a code with a client-safe reason in err:
 * HK_EUNKNOWN_TYPE (an identifier we do not map: report it, do not refuse the
 * upload), HK_EUNIT (unknown or incompatible unit), HK_EVALUE (non-finite
 * value), HK_EINVAL (identifier or unit missing).
 */
int hk_map_quantity(const char *identifier, const char *unit, double value, struct hk_mapped *out, char *err,
                    size_t errlen);

/*
 * Map one category sample. value is HealthKit's value: for sleep analysis
 * either the integer code (0 inBed, 1 asleepUnspecified, 2 awake, 3 asleepCore,
 * 4 asleepDeep, 5 asleepREM) given as text, or the export's name
 * ("HKCategoryValueSleepAnalysisAsleepCore"). duration_min is (end - start)
 * in minutes, which becomes the stored value (sleep, mindful minutes).
 * Returns 0, or HK_EUNKNOWN_TYPE, HK_EVALUE (unknown value, negative
 * duration) or HK_EINVAL, with a client-safe reason in err.
 */
int hk_map_category(const char *identifier, const char *value, double duration_min, struct hk_mapped *out, char *err,
                    size_t errlen);

/*
 * 0 when value (in metric_type's canonical unit) is finite and within what
 * one sample of that type can hold; -1 with a client-safe reason in err
 * (the reason names the bounds, never the value). Types without bounds
 * (workouts) only need to be finite. hk_map_quantity and hk_map_category
 * apply it after converting.
 */
int hk_value_plausible(const char *metric_type, double value, char *err, size_t errlen);

/* Convert a value between two units of the same dimension (both HealthKit
 * unit strings). 0, or HK_EUNIT when either is unknown, they are
 * incompatible, or the value is not finite. */
int hk_unit_convert(const char *from, const char *to, double value, double *out);

#endif
