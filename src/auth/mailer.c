/*
 * mailer.c — SMTP through libcurl. See mailer.h.
 */
#include "auth/mailer.h"

#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"

struct reader {
    const char *data;
    size_t len, off;
};

static size_t on_read(char *out, size_t size, size_t n, void *ctx)
{
    struct reader *r = ctx;
    size_t want = size * n, left = r->len - r->off;
    size_t k = want < left ? want : left;
    memcpy(out, r->data + r->off, k);
    r->off += k;
    return k;
}

int mailer_configured(const struct config *cfg)
{
    return cfg->smtp_url != NULL && cfg->smtp_url[0] != '\0' && cfg->smtp_from != NULL && cfg->smtp_from[0] != '\0';
}

static int header_safe(const char *s) { return s != NULL && strpbrk(s, "\r\n") == NULL && strlen(s) < 512; }

int mailer_send(const struct config *cfg, const char *to, const char *subject, const char *body, char *err,
                size_t errlen)
{
    if (!mailer_configured(cfg)) {
        snprintf(err, errlen, "SMTP_URL / SMTP_FROM are not set");
        return -1;
    }
    if (!header_safe(to) || !header_safe(subject) || !header_safe(cfg->smtp_from)) {
        snprintf(err, errlen, "address or subject holds a line break");
        return -1;
    }
    struct buf msg;
    buf_init(&msg, 64 * 1024);
    char date[64], mid[128], line[1200];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    unsigned char rnd[12];
    char hex[25];
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
    const char *at = strrchr(cfg->smtp_from, '@');
    snprintf(mid, sizeof(mid), "<%s%.60s>", hex, at != NULL ? at : "@clarity.invalid");
    int n = snprintf(line, sizeof(line),
                     "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: %s\r\n"
                     "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Transfer-Encoding: 8bit\r\n\r\n",
                     cfg->smtp_from, to, subject, date, mid);
    int rc = -1;
    CURL *c = NULL;
    struct curl_slist *rcpt = NULL;
    if (n <= 0 || (size_t)n >= sizeof(line) || buf_append(&msg, line, (size_t)n) != 0)
        goto done;
    /* Body lines end in CRLF (RFC 5322 §2.1); curl dot-stuffs. */
    for (const char *p = body; *p; p++) {
        if (*p == '\n' && (p == body || p[-1] != '\r')) {
            if (buf_append(&msg, "\r\n", 2) != 0)
                goto done;
        } else if (buf_append(&msg, p, 1) != 0)
            goto done;
    }
    c = curl_easy_init();
    if (c == NULL)
        goto done;
    struct reader r = {msg.data, msg.len, 0};
    char from[600], to_angle[600];
    snprintf(from, sizeof(from), "<%s>", cfg->smtp_from);
    snprintf(to_angle, sizeof(to_angle), "<%s>", to);
    rcpt = curl_slist_append(NULL, to_angle);
    curl_easy_setopt(c, CURLOPT_URL, cfg->smtp_url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &r);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)MAILER_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (cfg->smtp_username != NULL)
        curl_easy_setopt(c, CURLOPT_USERNAME, cfg->smtp_username);
    if (cfg->smtp_password != NULL)
        curl_easy_setopt(c, CURLOPT_PASSWORD, cfg->smtp_password);
    CURLcode cr = curl_easy_perform(c);
    if (cr != CURLE_OK) {
        snprintf(err, errlen, "SMTP: %s", curl_easy_strerror(cr));
        goto done;
    }
    rc = 0;
done:
    if (rc != 0 && err[0] == '\0')
        snprintf(err, errlen, "cannot build the message");
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(c);
    buf_free(&msg);
    return rc;
}
