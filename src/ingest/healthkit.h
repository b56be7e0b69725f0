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

/* Canonical metric types (store's metric_type) and their units. */
#define HK_T_STEPS "steps"                         /* count */
#define HK_T_HEART_RATE "heart_rate"               /* count/min */
#define HK_T_RESTING_HEART_RATE "resting_heart_rate" /* count/min */
#define HK_T_HRV "heart_rate_variability"          /* ms (SDNN) */
#define HK_T_RESPIRATORY_RATE "respiratory_rate"   /* count/min */
#define HK_T_BLOOD_OXYGEN "blood_oxygen"           /* % (0–100) */
#define HK_T_BODY_TEMPERATURE "body_temperature"   /* degC */
#define HK_T_BP_SYSTOLIC "blood_pressure_systolic" /* mmHg */
#define HK_T_BP_DIASTOLIC "blood_pressure_diastolic" /* mmHg */
#define HK_T_BLOOD_PRESSURE "blood_pressure"       /* mmHg: value systolic, value2 diastolic */
#define HK_T_BLOOD_GLUCOSE "blood_glucose"         /* mg/dL */
#define HK_T_ACTIVE_ENERGY "active_energy"         /* kcal */
#define HK_T_BASAL_ENERGY "basal_energy"           /* kcal */
#define HK_T_DISTANCE "distance"                   /* km */
#define HK_T_FLIGHTS "flights_climbed"             /* count */
#define HK_T_EXERCISE_MINUTES "exercise_minutes"   /* min */
#define HK_T_VO2MAX "vo2max"                       /* mL/(kg·min) */
#define HK_T_SLEEP "sleep_stage"                   /* min; the stage is in `category` */
#define HK_T_MINDFUL "mindful_minutes"             /* min */
#define HK_T_WORKOUT "workout"                     /* min; energy/distance in the payload */

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
int hk_map_category(const char *identifier, const char *value, double duration_min, struct hk_mapped *out,
                    char *err, size_t errlen);

/* Convert a value between two units of the same dimension (both HealthKit
 * unit strings). 0, or HK_EUNIT when either is unknown, they are
 * incompatible, or the value is not finite. */
int hk_unit_convert(const char *from, const char *to, double value, double *out);

#endif
