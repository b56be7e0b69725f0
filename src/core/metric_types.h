/*
 * metric_types.h — the canonical metric types of stored samples.
 *
 * A sample's metric_type (store.h) is one of these names, whichever way it
 * came in (ingest/ maps HealthKit identifiers and the HealthDataUpload
 * fields onto them) and whoever reads it (pipeline/compute.c builds minute
 * series by them). They are the data model's vocabulary, so they live in
 * core where every layer may name them; the comment gives the stored unit.
 */
#ifndef CLARITY_CORE_METRIC_TYPES_H
#define CLARITY_CORE_METRIC_TYPES_H

#define HK_T_STEPS "steps"                           /* count */
#define HK_T_HEART_RATE "heart_rate"                 /* count/min */
#define HK_T_RESTING_HEART_RATE "resting_heart_rate" /* count/min */
#define HK_T_HRV "heart_rate_variability"            /* ms (SDNN) */
#define HK_T_RESPIRATORY_RATE "respiratory_rate"     /* count/min */
#define HK_T_BLOOD_OXYGEN "blood_oxygen"             /* % (0–100) */
#define HK_T_BODY_TEMPERATURE "body_temperature"     /* degC */
#define HK_T_BP_SYSTOLIC "blood_pressure_systolic"   /* mmHg */
#define HK_T_BP_DIASTOLIC "blood_pressure_diastolic" /* mmHg */
#define HK_T_BLOOD_PRESSURE "blood_pressure"         /* mmHg: value systolic, value2 diastolic */
#define HK_T_BLOOD_GLUCOSE "blood_glucose"           /* mg/dL */
#define HK_T_ACTIVE_ENERGY "active_energy"           /* kcal */
#define HK_T_BASAL_ENERGY "basal_energy"             /* kcal */
#define HK_T_DISTANCE "distance"                     /* km */
#define HK_T_FLIGHTS "flights_climbed"               /* count */
#define HK_T_EXERCISE_MINUTES "exercise_minutes"     /* min */
#define HK_T_VO2MAX "vo2max"                         /* mL/(kg·min) */
#define HK_T_SLEEP "sleep_stage"                     /* min; the stage is in `category` */
#define HK_T_MINDFUL "mindful_minutes"               /* min */
#define HK_T_WORKOUT "workout"                       /* min; energy/distance in the payload */
#define HK_T_ACTIVITY_COUNT "activity_count"         /* count per epoch (research recordings) */

#endif
