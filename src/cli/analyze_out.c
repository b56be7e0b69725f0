/*
 * analyze_out.c — per-epoch CSV and the double-plotted actogram of
 * `clarity analyze` (contracts in analyze.h).
 */
#include "cli/analyze.h"

#include <math.h>
#include <stdio.h>

#include "analysis/analysis_json.h"

int analyze_epochs_write(FILE *f, int64_t start_local_min, const double *values, size_t n,
                         const struct analysis_report *r)
{
    char t[64];
    if (!f || (n && !values) || !r || r->n_minutes != n)
        return -1;
    if (fputs("time,value,wear,sleep\n", f) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        analysis_json_local_time(start_local_min + (int64_t)i, t, sizeof(t));
        const char *wear = r->nonwear[i] ? "0" : isnan(values[i]) ? "" : "1";
        uint8_t s = r->state[i];
        const char *sl = s == SLEEP_STATE_SLEEP ? "1" : s == SLEEP_STATE_WAKE ? "0" : "";
        int w = isnan(values[i]) ? fprintf(f, "%s,,%s,%s\n", t, wear, sl)
                                 : fprintf(f, "%s,%.10g,%s,%s\n", t, values[i], wear, sl);
        if (w < 0)
            return -1;
    }
    return 0;
}

/* Actogram geometry: 5-minute bars, 2 px each; two days (576 bars) a row. */
#define AG_BIN 5
#define AG_BINS_DAY (1440 / AG_BIN)
#define AG_PX 2
#define AG_ROW_H 36
#define AG_LEFT 90
#define AG_TOP 30

/* Mean of the valid minutes of bin b (NaN when none), sleep and non-wear
 * shares of the bin. */
static void ag_bin(const double *v, const struct analysis_report *r, size_t n, long b, double *mean, double *sleep,
                   double *off)
{
    double s = 0.0;
    int k = 0, sl = 0, nw = 0, tot = 0;
    for (long i = b * AG_BIN; i < (b + 1) * AG_BIN; i++) {
        if (i < 0 || (size_t)i >= n)
            continue;
        tot++;
        sl += r->state[i] == SLEEP_STATE_SLEEP;
        nw += r->nonwear[i] != 0;
        if (!isnan(v[i])) {
            s += v[i];
            k++;
        }
    }
    *mean = k ? s / k : NAN;
    *sleep = tot ? (double)sl / tot : 0.0;
    *off = tot ? (double)nw / tot : 0.0;
}

int analyze_actogram_write(FILE *f, int64_t start_local_min, const double *values, size_t n,
                           const struct analysis_report *r)
{
    if (!f || !n || !values || !r || r->n_minutes != n)
        return -1;
    /* rows start at local midnight; bin -lead is the first day's midnight */
    int64_t day0 = start_local_min >= 0 ? start_local_min / 1440 : -((-start_local_min + 1439) / 1440);
    long lead = (long)((start_local_min - day0 * 1440) / AG_BIN);
    long lead_min = (long)(start_local_min - day0 * 1440);
    size_t days = (size_t)((lead_min + (long)n + 1439) / 1440);
    /* scale: the largest 5-minute mean */
    double top = 0.0;
    for (long b = -lead; b * AG_BIN < (long)n; b++) {
        double m, s, o;
        ag_bin(values, r, n, b, &m, &s, &o);
        if (!isnan(m) && m > top)
            top = m;
    }
    if (top <= 0.0)
        top = 1.0;
    int width = AG_LEFT + 2 * AG_BINS_DAY * AG_PX + 20, height = AG_TOP + (int)days * AG_ROW_H + 30;
    if (fprintf(f,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                "font-family=\"sans-serif\" font-size=\"11\">\n"
                "<title>Double-plotted actogram (Clarity)</title>\n"
                "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n",
                width, height, width, height) < 0)
        return -1;
    for (int h = 0; h <= 48; h += 6)
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%02d:00</text>\n", AG_LEFT + h * 60 / AG_BIN * AG_PX,
                AG_TOP - 10, h % 24);
    for (size_t d = 0; d < days; d++) {
        char date[64];
        analysis_json_local_time((day0 + (int64_t)d) * 1440, date, sizeof(date));
        date[10] = '\0';
        int y0 = AG_TOP + (int)d * AG_ROW_H, base = y0 + AG_ROW_H - 2;
        fprintf(f, "<text x=\"4\" y=\"%d\">%s</text>\n", base - 10, date);
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\" stroke-width=\"0.5\"/>\n", AG_LEFT,
                base, AG_LEFT + 2 * AG_BINS_DAY * AG_PX, base);
        /* shading: sleep (blue) and non-wear (grey), then activity bars */
        for (int pass = 0; pass < 3; pass++) {
            const char *style = pass == 0 ? "fill=\"#cfe0f7\"" : pass == 1 ? "fill=\"#d9d9d9\"" : NULL;
            if (pass == 2)
                fprintf(f, "<path stroke=\"#222\" stroke-width=\"%d\" d=\"", AG_PX);
            for (int half = 0; half < 2; half++) {
                for (long k = 0; k < AG_BINS_DAY; k++) {
                    long b = (long)(d + (size_t)half) * AG_BINS_DAY + k - lead;
                    if ((b + 1) * AG_BIN <= 0 || b * AG_BIN >= (long)n)
                        continue;
                    double m, s, o;
                    ag_bin(values, r, n, b, &m, &s, &o);
                    int x = AG_LEFT + (int)((half * AG_BINS_DAY + k) * AG_PX);
                    if (pass == 0 && s >= 0.5)
                        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" %s/>\n", x, y0 + 2, AG_PX,
                                AG_ROW_H - 4, style);
                    else if (pass == 1 && o >= 0.5)
                        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" %s/>\n", x, y0 + 2, AG_PX,
                                AG_ROW_H - 4, style);
                    else if (pass == 2 && !isnan(m) && m > 0.0) {
                        int hgt = (int)lround(fmin(m / top, 1.0) * (AG_ROW_H - 6));
                        if (hgt > 0)
                            fprintf(f, "M%d %dv-%d", x + AG_PX / 2, base, hgt);
                    }
                }
            }
            if (pass == 2)
                fputs("\"/>\n", f);
        }
    }
    fprintf(f,
            "<text x=\"%d\" y=\"%d\">activity (5-min mean, scale to %.6g); blue: sleep/rest; grey: "
            "non-wear</text>\n</svg>\n",
            AG_LEFT, height - 8, top);
    return ferror(f) ? -1 : 0;
}
