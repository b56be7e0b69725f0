/*
 * healthkit.c — HealthKit identifier and unit mapping. See healthkit.h.
 *
 * Units follow HealthKit's HKUnit string grammar (Apple developer
 * documentation, "HKUnit"): "%" is a fraction (0.97 means 97 %), molar
 * glucose is written "mmol<180.1558800000541>/L" with glucose's molar mass
 * in g/mol, so 1 mmol/L = 18.01558800000541 mg/dL.
 */
#include "ingest/healthkit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum dim { D_COUNT, D_RATE, D_TIME, D_FRACTION, D_TEMP, D_GLUCOSE, D_ENERGY, D_LENGTH, D_PRESSURE, D_VO2 };

/* A unit: its dimension and the factor and offset to the dimension's base
 * (count, count/min, ms, %, degC, mg/dL, kcal, km, mmHg, mL/(kg·min)):
 * base = value * factor + offset. */
struct unit {
    const char *name;
    enum dim dim;
    double factor, offset;
};

static const struct unit units[] = {
    {"count", D_COUNT, 1, 0},
    {"count/min", D_RATE, 1, 0},
    {"count/s", D_RATE, 60, 0},
    {"ms", D_TIME, 1, 0},
    {"s", D_TIME, 1000, 0},
    {"min", D_TIME, 60000, 0},
    {"hr", D_TIME, 3600000, 0},
    {"%", D_FRACTION, 100, 0}, /* HealthKit percent values are fractions */
    {"degC", D_TEMP, 1, 0},
    {"degF", D_TEMP, 5.0 / 9.0, -32.0 * 5.0 / 9.0},
    {"K", D_TEMP, 1, -273.15},
    {"mg/dL", D_GLUCOSE, 1, 0},
    {"mmol<180.1558800000541>/L", D_GLUCOSE, 18.01558800000541, 0},
    {"mmol/L", D_GLUCOSE, 18.01558800000541, 0},
    {"kcal", D_ENERGY, 1, 0},
    {"Cal", D_ENERGY, 1, 0},
    {"cal", D_ENERGY, 0.001, 0},
    {"kJ", D_ENERGY, 1.0 / 4.184, 0}, /* thermochemical calorie: 4.184 J */
    {"J", D_ENERGY, 1.0 / 4184.0, 0},
    {"km", D_LENGTH, 1, 0},
    {"m", D_LENGTH, 0.001, 0},
    {"cm", D_LENGTH, 0.00001, 0},
    {"mi", D_LENGTH, 1.609344, 0}, /* international mile */
    {"yd", D_LENGTH, 0.0009144, 0},
    {"ft", D_LENGTH, 0.0003048, 0},
    {"mmHg", D_PRESSURE, 1, 0},
    {"mL/min·kg", D_VO2, 1, 0},
    {"ml/(kg*min)", D_VO2, 1, 0},
    {"mL/(kg*min)", D_VO2, 1, 0},
    {"ml/kg*min", D_VO2, 1, 0},
};

/* The canonical unit's name per dimension (what is stored). */
static const char *base_name(enum dim d)
{
    switch (d) {
    case D_COUNT: return "count";
    case D_RATE: return "count/min";
    case D_TIME: return "ms";
    case D_FRACTION: return "%";
    case D_TEMP: return "degC";
    case D_GLUCOSE: return "mg/dL";
    case D_ENERGY: return "kcal";
    case D_LENGTH: return "km";
    case D_PRESSURE: return "mmHg";
    case D_VO2: return "mL/(kg*min)";
    }
    return "";
}

static const struct unit *find_unit(const char *name)
{
    for (size_t i = 0; name != NULL && i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(units[i].name, name) == 0)
            return &units[i];
    return NULL;
}

struct quantity {
    const char *id; /* without the HKQuantityTypeIdentifier prefix */
    const char *type;
    enum dim dim;
    double scale; /* base unit → stored unit (e.g. ms → min for exercise time) */
    const char *stored_unit;
};

static const struct quantity quantities[] = {
    {"StepCount", HK_T_STEPS, D_COUNT, 1, "count"},
    {"HeartRate", HK_T_HEART_RATE, D_RATE, 1, "count/min"},
    {"RestingHeartRate", HK_T_RESTING_HEART_RATE, D_RATE, 1, "count/min"},
    {"WalkingHeartRateAverage", HK_T_HEART_RATE, D_RATE, 1, "count/min"},
    {"HeartRateVariabilitySDNN", HK_T_HRV, D_TIME, 1, "ms"},
    {"RespiratoryRate", HK_T_RESPIRATORY_RATE, D_RATE, 1, "count/min"},
    {"OxygenSaturation", HK_T_BLOOD_OXYGEN, D_FRACTION, 1, "%"},
    {"BodyTemperature", HK_T_BODY_TEMPERATURE, D_TEMP, 1, "degC"},
    {"BloodPressureSystolic", HK_T_BP_SYSTOLIC, D_PRESSURE, 1, "mmHg"},
    {"BloodPressureDiastolic", HK_T_BP_DIASTOLIC, D_PRESSURE, 1, "mmHg"},
    {"BloodGlucose", HK_T_BLOOD_GLUCOSE, D_GLUCOSE, 1, "mg/dL"},
    {"ActiveEnergyBurned", HK_T_ACTIVE_ENERGY, D_ENERGY, 1, "kcal"},
    {"BasalEnergyBurned", HK_T_BASAL_ENERGY, D_ENERGY, 1, "kcal"},
    {"DistanceWalkingRunning", HK_T_DISTANCE, D_LENGTH, 1, "km"},
    {"FlightsClimbed", HK_T_FLIGHTS, D_COUNT, 1, "count"},
    {"AppleExerciseTime", HK_T_EXERCISE_MINUTES, D_TIME, 1.0 / 60000.0, "min"},
    {"VO2Max", HK_T_VO2MAX, D_VO2, 1, "mL/(kg*min)"},
};

#define QPREFIX "HKQuantityTypeIdentifier"
#define CPREFIX "HKCategoryTypeIdentifier"

static const char *strip(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(s, prefix, n) == 0 ? s + n : s;
}

int hk_unit_convert(const char *from, const char *to, double value, double *out)
{
    const struct unit *a = find_unit(from), *b = find_unit(to);
    if (a == NULL || b == NULL || a->dim != b->dim || !isfinite(value))
        return HK_EUNIT;
    double base = value * a->factor + a->offset;
    *out = (base - b->offset) / b->factor;
    return 0;
}

/* What a single HealthKit sample can physically hold, in the canonical
 * unit: applied after unit conversion, so 1e308 (or a value the conversion
 * overflows to inf) is refused whatever unit it came in (#16.9). The bounds
 * are wide on purpose: they catch garbage, not unusual physiology (a daily
 * step total, a marathon's energy). */
static const struct {
    const char *type;
    double lo, hi;
} ranges[] = {
    {HK_T_STEPS, 0, 200000},
    {HK_T_HEART_RATE, 20, 300},
    {HK_T_RESTING_HEART_RATE, 20, 300},
    {HK_T_HRV, 0, 1000},
    {HK_T_RESPIRATORY_RATE, 1, 100},
    {HK_T_BLOOD_OXYGEN, 0, 100},
    {HK_T_BODY_TEMPERATURE, 25, 45},
    {HK_T_BP_SYSTOLIC, 20, 300},
    {HK_T_BP_DIASTOLIC, 10, 250},
    {HK_T_BLOOD_GLUCOSE, 10, 1500},
    {HK_T_ACTIVE_ENERGY, 0, 20000},
    {HK_T_BASAL_ENERGY, 0, 20000},
    {HK_T_DISTANCE, 0, 1000},
    {HK_T_FLIGHTS, 0, 10000},
    {HK_T_EXERCISE_MINUTES, 0, 2880},
    {HK_T_VO2MAX, 1, 100},
    {HK_T_SLEEP, 0, 2880},
    {HK_T_MINDFUL, 0, 2880},
};

int hk_value_plausible(const char *metric_type, double value, char *err, size_t errlen)
{
    if (!isfinite(value)) {
        snprintf(err, errlen, "value must be a finite number");
        return -1;
    }
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
        if (strcmp(ranges[i].type, metric_type) == 0 && (value < ranges[i].lo || value > ranges[i].hi)) {
            snprintf(err, errlen, "value is outside what a %s sample can hold (%g to %g in its canonical unit)",
                     metric_type, ranges[i].lo, ranges[i].hi);
            return -1;
        }
    return 0;
}

int hk_map_quantity(const char *identifier, const char *unit, double value, struct hk_mapped *out, char *err,
                    size_t errlen)
{
    if (identifier == NULL || unit == NULL) {
        snprintf(err, errlen, "identifier and unit are required");
        return HK_EINVAL;
    }
    const char *id = strip(identifier, QPREFIX);
    const struct quantity *q = NULL;
    for (size_t i = 0; i < sizeof(quantities) / sizeof(quantities[0]); i++)
        if (strcmp(quantities[i].id, id) == 0)
            q = &quantities[i];
    if (q == NULL) {
        snprintf(err, errlen, "unknown HealthKit quantity type \"%.80s\"", identifier);
        return HK_EUNKNOWN_TYPE;
    }
    const struct unit *u = find_unit(unit);
    if (u == NULL) {
        snprintf(err, errlen, "unknown HealthKit unit \"%.40s\"", unit);
        return HK_EUNIT;
    }
    if (u->dim != q->dim) {
        snprintf(err, errlen, "unit \"%.40s\" does not fit %s (expected a unit like %s)", unit, id, base_name(q->dim));
        return HK_EUNIT;
    }
    if (!isfinite(value)) {
        snprintf(err, errlen, "value must be a finite number");
        return HK_EVALUE;
    }
    out->metric_type = q->type;
    out->unit = q->stored_unit;
    double v = (value * u->factor + u->offset) * q->scale;
    if (hk_value_plausible(q->type, v, err, errlen) != 0)
        return -1;
    out->value = v;
    out->category = NULL;
    return 0;
}

int hk_map_category(const char *identifier, const char *value, double duration_min, struct hk_mapped *out, char *err,
                    size_t errlen)
{
    /* HKCategoryValueSleepAnalysis raw values (HealthKit SDK): inBed 0,
     * asleepUnspecified 1 (formerly "asleep"), awake 2, asleepCore 3,
     * asleepDeep 4, asleepREM 5. */
    static const struct {
        const char *code, *name, *stage;
    } sleep[] = {
        {"0", "HKCategoryValueSleepAnalysisInBed", "in_bed"},
        {"1", "HKCategoryValueSleepAnalysisAsleepUnspecified", "asleep_unspecified"},
        {"1", "HKCategoryValueSleepAnalysisAsleep", "asleep_unspecified"},
        {"2", "HKCategoryValueSleepAnalysisAwake", "awake"},
        {"3", "HKCategoryValueSleepAnalysisAsleepCore", "asleep_core"},
        {"4", "HKCategoryValueSleepAnalysisAsleepDeep", "asleep_deep"},
        {"5", "HKCategoryValueSleepAnalysisAsleepREM", "asleep_rem"},
    };
    if (identifier == NULL) {
        snprintf(err, errlen, "identifier is required");
        return HK_EINVAL;
    }
    if (!isfinite(duration_min) || duration_min < 0) {
        snprintf(err, errlen, "end_date must not be before start_date");
        return HK_EVALUE;
    }
    const char *id = strip(identifier, CPREFIX);
    if ((strcmp(id, "SleepAnalysis") == 0 || strcmp(id, "MindfulSession") == 0) &&
        hk_value_plausible(HK_T_SLEEP, duration_min, err, errlen) != 0)
        return -1;
    if (strcmp(id, "SleepAnalysis") == 0) {
        for (size_t i = 0; value != NULL && i < sizeof(sleep) / sizeof(sleep[0]); i++)
            if (strcmp(value, sleep[i].code) == 0 || strcmp(value, sleep[i].name) == 0) {
                out->metric_type = HK_T_SLEEP;
                out->unit = "min";
                out->value = duration_min;
                out->category = sleep[i].stage;
                return 0;
            }
        snprintf(err, errlen, "unknown sleep analysis value \"%.60s\"", value != NULL ? value : "");
        return HK_EVALUE;
    }
    if (strcmp(id, "MindfulSession") == 0) {
        out->metric_type = HK_T_MINDFUL;
        out->unit = "min";
        out->value = duration_min;
        out->category = NULL;
        return 0;
    }
    snprintf(err, errlen, "unknown HealthKit category type \"%.80s\"", identifier);
    return HK_EUNKNOWN_TYPE;
}
