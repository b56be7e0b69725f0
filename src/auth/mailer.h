/*
 * mailer.h — one plain-text e-mail over SMTP (libcurl), for e-mail
 * verification codes. Configured by SMTP_URL (smtp://host:port, or smtps://
 * for implicit TLS; smtp:// upgrades with STARTTLS when the server offers
 * it), SMTP_FROM, SMTP_USERNAME and SMTP_PASSWORD.
 */
#ifndef CLARITY_AUTH_MAILER_H
#define CLARITY_AUTH_MAILER_H

#include <stddef.h>

#include "core/config.h"

#define MAILER_TIMEOUT_S 10

/* 1 when SMTP_URL and SMTP_FROM are set. */
int mailer_configured(const struct config *cfg);

/*
 * Send one message (RFC 5322: From, To, Subject, Date, Message-ID headers,
 * CRLF lines). to and subject must hold no CR or LF (refused: header
 * injection). Blocks for at most MAILER_TIMEOUT_S. 0, or -1 with a reason in
 * err that never holds the password.
 */
int mailer_send(const struct config *cfg, const char *to, const char *subject, const char *body, char *err,
                size_t errlen);

#endif
