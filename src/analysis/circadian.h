/*
 * circadian.h — rest-activity rhythm measures.
 *
 * Non-parametric measures of van Someren, Swaab, Colenda, Cohen, McCall &
 * Rosenquist (1999), "Bright light therapy: improved sensitivity to its
 * effects on rest-activity rhythms in Alzheimer patients by application of
 * nonparametric methods", Chronobiology International 16(4):505-518:
 * interdaily stability (IS), intradaily variability (IV), relative amplitude
 * (RA), L5 and M10 with their onsets. And the single-component cosinor
 * (Nelson, Tong, Lee & Halberg 1979, "Methods for cosinor-rhythmometry",
 * Chronobiologia 6:305-323) fitted by least squares.
 *
 * Input: one value per minute of local time (activity counts or steps), NaN
 * when missing, and the local clock minute (0..1439) of the first value.
 * Formulas and the missing-data rules are in docs/algorithms.md.
 * Reentrant, no allocation (caller workspace), no I/O.
 */
#ifndef CLARITY_ANALYSIS_CIRCADIAN_H
#define CLARITY_ANALYSIS_CIRCADIAN_H

#include <stddef.h>

#include "analysis/metric.h"

struct circadian_npar {
    size_t bin_min;             /* bin width used */
    size_t n_bins;              /* valid bins */
    struct metric is;           /* interdaily stability, [0, 1] */
    struct metric iv;           /* intradaily variability, >= 0 */
    struct metric l5;           /* mean of the least active 5 h of the mean day */
    struct metric l5_onset_min; /* its start, minutes after local midnight */
    struct metric m10;          /* mean of the most active 10 h */
    struct metric m10_onset_min;
    struct metric ra; /* (M10 - L5) / (M10 + L5) */
};

/* Bytes of workspace circadian_npar_compute needs. */
size_t circadian_workspace_size(size_t n_minutes, size_t bin_min);

/*
 * IS, IV, L5, M10 and RA over bins of bin_min minutes aligned to the local
 * clock (60 = hourly, the published default). bin_min must divide 60. A bin's
 * value is the mean of its valid minutes and the bin counts only when at least
 * half of its minutes are valid. IS needs two days of valid bins, IV one day,
 * L5/M10/RA one day and every bin of the day represented; otherwise the
 * measure is null with the reason. A constant series makes IS and IV null
 * ("constant series"), never 0. Among equally low (high) windows the
 * earliest onset after midnight is reported.
 * Returns 0, or -1 on invalid arguments.
 */
int circadian_npar_compute(const double *x, size_t n, int start_min_of_day, size_t bin_min, void *workspace,
                           struct circadian_npar *out);

struct circadian_cosinor {
    struct metric mesor;         /* rhythm-adjusted mean */
    struct metric amplitude;     /* half the peak-to-trough difference */
    struct metric acrophase_min; /* time of the fitted peak, minutes after local midnight */
    struct metric r_squared;     /* 1 - SSE/SST */
};

/*
 * Fit y(t) = M + b cos(2 pi t / period) + g sin(2 pi t / period) by least
 * squares over the valid minutes, t in minutes after local midnight of the
 * first day; amplitude = sqrt(b^2 + g^2), acrophase = the t in [0, period)
 * where the fit peaks. Null when fewer than 3 valid minutes, when the valid
 * minutes span less than one period, or for a constant series.
 * period_min is usually 1440. Returns 0, or -1 on invalid arguments.
 */
int circadian_cosinor_fit(const double *x, size_t n, int start_min_of_day, double period_min,
                          struct circadian_cosinor *out);

/*
 * IS, IV, L5, M10, RA and onsets with pyActigraphy's default conventions
 * (Hammad et al. 2021; docs/algorithms.md, "Conventions"), on the
 * recording's own epochs: x holds n epochs of epoch_s seconds (epoch_s must
 * divide 3600: 2, 5, 10, 15, 30, 60, 120, 300 ... s), the first starting
 * start_s_of_day seconds after local midnight. Binarised (count per epoch >
 * threshold -> 1, pyActigraphy's default 4; missing stays missing); IS/IV
 * on hourly SUMS of epochs anchored at the first epoch (partial last bin
 * included, missing adds 0) with sample (ddof 1) variances: IS =
 * var(hourly profile) / var(bins), IV = mean(diff^2) / var(bins); L5/M10
 * on the mean day at the epoch's resolution (windows of 5 h / 10 h of
 * epochs), cyclic, mean per EPOCH (a 30-s recording gives about half its
 * per-minute value), the earliest extreme's onset in minutes after
 * midnight (a multiple of epoch_s / 60). The workspace size is 0 for an
 * epoch_s that does not divide 3600. Returns 0, or -1 on invalid arguments.
 */
size_t circadian_pyact_workspace_size(size_t n_epochs, unsigned epoch_s);
int circadian_npar_pyactigraphy(const double *x, size_t n, unsigned epoch_s, int start_s_of_day, double threshold,
                                void *workspace, struct circadian_npar *out);

#endif
