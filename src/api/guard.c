/*
 * guard.c — authentication, rate limiting and access rules. See guard.h.
 */
#include "api/guard.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "store/store.h"

#define MAX_PROXIES 32
#define TCACHE_SLOTS 4096u /* power of two */
#define TCACHE_STRIPES 64u
#define TCACHE_KEY_BYTES 32
#define RV_KEY_BYTES 16
#define RV_INITIAL_CAP 1024u /* power of two */

struct tc_slot {
    unsigned char key[TCACHE_KEY_BYTES];
    int used;
    struct principal p;
};

struct rv_entry {
    unsigned char key[RV_KEY_BYTES];
    int used;
    int64_t revoked_at_ms;
    int64_t expires_at_ms;
};

struct guard {
    struct tc_slot *tc;
    pthread_mutex_t tc_lock[TCACHE_STRIPES];
    uint64_t tc_hits, tc_misses;
    pthread_rwlock_t rv_lock;
    struct rv_entry *rv;
    size_t rv_cap, rv_n;
    int64_t rv_high_ms;
    int64_t rv_polled_ms;
    pthread_mutex_t rv_poll_lock;
    const struct config *cfg;
    const struct jwt_signer *signer;
    struct oidc *oidc;
    struct store *store;
    struct limiter *buckets;
    struct rate_rule rules[GUARD_RATE_COUNT];
    char proxies[MAX_PROXIES][64];
    int nproxies;
    int locks_ready;
};

static int rv_poll(struct guard *g, int64_t now_ms);

static const char *const class_names[GUARD_RATE_COUNT] = {"none", "api", "auth", "upload", "insights", "chat"};

static const struct {
    const char *role;
    unsigned perms;
} roles[] = {
    {"patient", PERM_READ_OWN | PERM_WRITE_OWN},
    {"clinician", PERM_READ_OWN | PERM_WRITE_OWN},
    {"researcher", PERM_READ_OWN | PERM_WRITE_OWN},
    {"admin", PERM_READ_OWN | PERM_WRITE_OWN | PERM_READ_ALL | PERM_AUDIT | PERM_MANAGE_USERS},
};

static const struct {
    unsigned perm;
    const char *name;
} perm_names[] = {
    {PERM_READ_OWN, "read:own_data"}, {PERM_WRITE_OWN, "write:own_data"},  {PERM_READ_ALL, "read:all_data"},
    {PERM_AUDIT, "read:audit_log"},   {PERM_MANAGE_USERS, "manage:users"},
};

unsigned guard_role_perms(const char *role)
{
    for (size_t i = 0; role != NULL && i < sizeof(roles) / sizeof(roles[0]); i++)
        if (strcmp(roles[i].role, role) == 0)
            return roles[i].perms;
    return 0;
}

int guard_perm_names(unsigned perms, const char **out, int max)
{
    int n = 0;
    for (size_t i = 0; i < sizeof(perm_names) / sizeof(perm_names[0]) && n < max; i++)
        if (perms & perm_names[i].perm)
            out[n++] = perm_names[i].name;
    return n;
}

int guard_rate_rules_parse(const char *spec, struct rate_rule rules[GUARD_RATE_COUNT], char *err, size_t errlen)
{
    /* One parser for serve and `config check` (core/config.h). */
    _Static_assert(GUARD_RATE_COUNT == CONFIG_RATE_CLASSES, "rate classes differ from core/config.h");
    struct config_rate r[CONFIG_RATE_CLASSES];
    if (config_rate_limits_parse(spec, r, err, errlen) != 0)
        return -1;
    for (int c = 0; c < GUARD_RATE_COUNT; c++)
        rules[c] = (struct rate_rule){r[c].count, r[c].period_s};
    return 0;
}

struct guard *guard_new(const struct config *cfg, const struct jwt_signer *signer, struct oidc *oidc,
                        struct store *store, char *err, size_t errlen)
{
    struct guard *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < TCACHE_STRIPES; i++)
        pthread_mutex_init(&g->tc_lock[i], NULL);
    pthread_rwlock_init(&g->rv_lock, NULL);
    pthread_mutex_init(&g->rv_poll_lock, NULL);
    g->locks_ready = 1;
    g->tc = calloc(TCACHE_SLOTS, sizeof(*g->tc));
    g->rv_cap = RV_INITIAL_CAP;
    g->rv = calloc(g->rv_cap, sizeof(*g->rv));
    if (g->tc == NULL || g->rv == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    g->cfg = cfg;
    g->signer = signer;
    g->oidc = oidc;
    g->store = store;
    if (guard_rate_rules_parse(cfg->rate_limits, g->rules, err, errlen) != 0)
        goto fail;
    _Static_assert(MAX_PROXIES == CONFIG_MAX_PROXIES, "proxy list size differs from core/config.h");
    if (config_proxies_parse(cfg->trusted_proxies, g->proxies, &g->nproxies, err, errlen) != 0)
        goto fail;
    g->buckets = limiter_new(1u << 16);
    if (g->buckets == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* Revocations survive a restart: load the set before the first request. */
    if (rv_poll(g, time_now_ms()) != 0) {
        snprintf(err, errlen, "cannot read the session revocation set");
        goto fail;
    }
    g->rv_polled_ms = time_now_ms();
    return g;
fail:
    guard_free(g);
    return NULL;
}

void guard_free(struct guard *g)
{
    if (g == NULL)
        return;
    limiter_free(g->buckets);
    if (g->locks_ready) {
        for (size_t i = 0; i < TCACHE_STRIPES; i++)
            pthread_mutex_destroy(&g->tc_lock[i]);
        pthread_rwlock_destroy(&g->rv_lock);
        pthread_mutex_destroy(&g->rv_poll_lock);
    }
    if (g->tc != NULL)
        sodium_memzero(g->tc, TCACHE_SLOTS * sizeof(*g->tc));
    free(g->tc);
    free(g->rv);
    free(g);
}

static int trusted(const struct guard *g, const char *ip)
{
    for (int i = 0; i < g->nproxies; i++)
        if (strcmp(g->proxies[i], ip) == 0)
            return 1;
    return 0;
}

/*
 * Behind trusted proxies the client is the rightmost X-Forwarded-For entry
 * that is not itself a trusted proxy (entries to its left are client-chosen
 * and may be forged).
 */
static void client_address(const struct guard *g, struct http_request *req)
{
    if (g->nproxies == 0 || !trusted(g, req->client_ip))
        return;
    const char *xff = http_request_header(req, "X-Forwarded-For");
    if (xff == NULL)
        return;
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", xff);
    for (;;) {
        char *comma = strrchr(buf, ',');
        char *item = comma != NULL ? comma + 1 : buf;
        while (*item == ' ')
            item++;
        size_t n = strlen(item);
        while (n > 0 && item[n - 1] == ' ')
            item[--n] = '\0';
        unsigned char tmp[16];
        int valid = inet_pton(AF_INET, item, tmp) == 1 || inet_pton(AF_INET6, item, tmp) == 1;
        if (!valid)
            return; /* garbage: keep the proxy's address */
        if (!trusted(g, item) || comma == NULL) {
            snprintf(req->client_ip, sizeof(req->client_ip), "%.63s", item); /* a valid IP fits */
            return;
        }
        *comma = '\0';
    }
}

static int unauthorized(struct http_response *res, const char *detail)
{
    http_respond_problem(res, 401, "authentication-required", "%s", detail);
    http_response_header(res, "WWW-Authenticate", "Bearer realm=\"clarity\", error=\"invalid_token\"");
    return -1;
}

/* ---- verified-token cache (issue #22) -------------------------------------
 * Direct-mapped, TCACHE_SLOTS entries, keyed by BLAKE2b-256 of the token (the
 * token itself is never kept). An entry is used only until the token's exp
 * (no leeway) and is never a substitute for the revocation check, which runs
 * on every request after the lookup. Striped mutexes keep threads apart. */

static void token_key(const char *token, unsigned char key[TCACHE_KEY_BYTES])
{
    crypto_generichash(key, TCACHE_KEY_BYTES, (const unsigned char *)token, strlen(token), NULL, 0);
}

static int cache_get(struct guard *g, const unsigned char key[TCACHE_KEY_BYTES], int64_t now_s, struct principal *out)
{
    uint64_t h;
    memcpy(&h, key, sizeof(h));
    size_t i = (size_t)(h & (TCACHE_SLOTS - 1));
    pthread_mutex_t *m = &g->tc_lock[i % TCACHE_STRIPES];
    int hit = 0;
    pthread_mutex_lock(m);
    struct tc_slot *sl = &g->tc[i];
    if (sl->used && now_s <= sl->p.exp && memcmp(sl->key, key, TCACHE_KEY_BYTES) == 0) {
        *out = sl->p;
        hit = 1;
    }
    pthread_mutex_unlock(m);
    __atomic_add_fetch(hit ? &g->tc_hits : &g->tc_misses, 1, __ATOMIC_RELAXED);
    return hit ? 0 : -1;
}

static void cache_put(struct guard *g, const unsigned char key[TCACHE_KEY_BYTES], const struct principal *p)
{
    uint64_t h;
    memcpy(&h, key, sizeof(h));
    size_t i = (size_t)(h & (TCACHE_SLOTS - 1));
    pthread_mutex_t *m = &g->tc_lock[i % TCACHE_STRIPES];
    pthread_mutex_lock(m);
    g->tc[i].used = 1;
    memcpy(g->tc[i].key, key, TCACHE_KEY_BYTES);
    g->tc[i].p = *p;
    pthread_mutex_unlock(m);
}

void guard_cache_stats(struct guard *g, uint64_t *hits, uint64_t *misses)
{
    *hits = __atomic_load_n(&g->tc_hits, __ATOMIC_RELAXED);
    *misses = __atomic_load_n(&g->tc_misses, __ATOMIC_RELAXED);
}

/* ---- revocation set (issue #16) --------------------------------------------
 * Keys "sid:<session>" (one login, or one external token) and "user:<id>"
 * (every token of the user issued at or before revoked_at), held in memory as
 * 16-byte BLAKE2b digests in an open-addressing table, loaded from
 * revoked_sessions at start and polled every GUARD_REVOCATION_POLL_MS
 * (single-flight: one request thread polls, the others go on). Entries leave
 * the table when it is rebuilt after their expiry. */

static void rv_key(const char *kind, const char *id, unsigned char out[RV_KEY_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, RV_KEY_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)kind, strlen(kind));
    crypto_generichash_update(&st, (const unsigned char *)id, strlen(id));
    crypto_generichash_final(&st, out, RV_KEY_BYTES);
}

static void rv_key_of_row(const char *row_sid, unsigned char out[RV_KEY_BYTES])
{
    /* Rows hold "sid:<…>" or "user:<…>"; the digest is over kind + id. */
    const char *colon = strchr(row_sid, ':');
    char kind[8] = "";
    if (colon != NULL && (size_t)(colon - row_sid) < sizeof(kind) - 1)
        snprintf(kind, sizeof(kind), "%.*s", (int)(colon - row_sid + 1), row_sid);
    rv_key(kind, colon != NULL ? colon + 1 : row_sid, out);
}

/* Insert or raise an entry; called with rv_lock held for writing. */
static int rv_insert_locked(struct guard *g, const unsigned char key[RV_KEY_BYTES], int64_t revoked_at_ms,
                            int64_t expires_at_ms, int64_t now_ms)
{
    if ((g->rv_n + 1) * 2 > g->rv_cap) {
        /* Rebuild: drop expired entries, grow when still half full. */
        size_t live = 0;
        for (size_t i = 0; i < g->rv_cap; i++)
            live += g->rv[i].used && g->rv[i].expires_at_ms >= now_ms;
        size_t cap = g->rv_cap;
        while ((live + 1) * 2 > cap)
            cap *= 2;
        struct rv_entry *v = calloc(cap, sizeof(*v));
        if (v == NULL)
            return -1;
        for (size_t i = 0; i < g->rv_cap; i++) {
            const struct rv_entry *e = &g->rv[i];
            if (!e->used || e->expires_at_ms < now_ms)
                continue;
            uint64_t h;
            memcpy(&h, e->key, sizeof(h));
            size_t j = (size_t)(h & (cap - 1));
            while (v[j].used)
                j = (j + 1) & (cap - 1);
            v[j] = *e;
        }
        free(g->rv);
        g->rv = v;
        g->rv_cap = cap;
        g->rv_n = live;
    }
    uint64_t h;
    memcpy(&h, key, sizeof(h));
    size_t j = (size_t)(h & (g->rv_cap - 1));
    while (g->rv[j].used && memcmp(g->rv[j].key, key, RV_KEY_BYTES) != 0)
        j = (j + 1) & (g->rv_cap - 1);
    struct rv_entry *e = &g->rv[j];
    if (!e->used) {
        e->used = 1;
        memcpy(e->key, key, RV_KEY_BYTES);
        g->rv_n++;
    }
    if (revoked_at_ms > e->revoked_at_ms)
        e->revoked_at_ms = revoked_at_ms;
    if (expires_at_ms > e->expires_at_ms)
        e->expires_at_ms = expires_at_ms;
    return 0;
}

/* revoked_at of key, or -1 when absent; rv_lock held for reading. */
static int64_t rv_find_locked(const struct guard *g, const unsigned char key[RV_KEY_BYTES])
{
    uint64_t h;
    memcpy(&h, key, sizeof(h));
    size_t j = (size_t)(h & (g->rv_cap - 1));
    while (g->rv[j].used) {
        if (memcmp(g->rv[j].key, key, RV_KEY_BYTES) == 0)
            return g->rv[j].revoked_at_ms;
        j = (j + 1) & (g->rv_cap - 1);
    }
    return -1;
}

/* Load revocations from the store newer than the last poll (with an overlap
 * for transactions that committed late). 0, or -1 when the store failed. */
static int rv_poll(struct guard *g, int64_t now_ms)
{
    if (g->store == NULL)
        return 0;
    enum { BATCH = 256 };
    struct store_revocation *rows = calloc(BATCH, sizeof(*rows));
    if (rows == NULL)
        return -1;
    int64_t since = g->rv_high_ms > 10000 ? g->rv_high_ms - 10000 : 0;
    int rc = 0;
    for (;;) {
        struct store_tx *tx = NULL;
        size_t n = 0;
        rc = store_tx_begin(g->store, STORE_TX_WRITE, &tx);
        if (rc == 0)
            rc = store_session_revoked_since(tx, since, now_ms, rows, BATCH, &n);
        if (rc == 0)
            rc = store_tx_commit(tx);
        else
            store_tx_rollback(tx);
        if (rc != 0)
            break;
        pthread_rwlock_wrlock(&g->rv_lock);
        for (size_t i = 0; i < n; i++) {
            unsigned char key[RV_KEY_BYTES];
            rv_key_of_row(rows[i].sid, key);
            rv_insert_locked(g, key, rows[i].revoked_at_ms, rows[i].expires_at_ms, now_ms);
            if (rows[i].revoked_at_ms > g->rv_high_ms)
                g->rv_high_ms = rows[i].revoked_at_ms;
        }
        pthread_rwlock_unlock(&g->rv_lock);
        if (n < BATCH || rows[n - 1].revoked_at_ms <= since)
            break;
        since = rows[n - 1].revoked_at_ms;
    }
    free(rows);
    return rc == 0 ? 0 : -1;
}

static void rv_maybe_poll(struct guard *g, int64_t now_ms)
{
    if (now_ms - __atomic_load_n(&g->rv_polled_ms, __ATOMIC_RELAXED) < GUARD_REVOCATION_POLL_MS)
        return;
    if (pthread_mutex_trylock(&g->rv_poll_lock) != 0)
        return; /* another thread is polling */
    if (now_ms - g->rv_polled_ms >= GUARD_REVOCATION_POLL_MS) {
        if (rv_poll(g, now_ms) != 0)
            log_warning("cannot read the revocation set; retrying", LOG_END);
        __atomic_store_n(&g->rv_polled_ms, now_ms, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&g->rv_poll_lock);
}

static int is_revoked(struct guard *g, const struct principal *p)
{
    unsigned char ks[RV_KEY_BYTES], ku[RV_KEY_BYTES];
    rv_key("sid:", p->sid, ks);
    rv_key("user:", p->user_id, ku);
    pthread_rwlock_rdlock(&g->rv_lock);
    int64_t s = rv_find_locked(g, ks);
    int64_t u = rv_find_locked(g, ku);
    pthread_rwlock_unlock(&g->rv_lock);
    /* A user-wide revocation ends every token issued in or before its second
     * (iat has one-second resolution, so a token of that second is refused
     * too: the safe side). */
    return s >= 0 || (u >= 0 && p->iat * 1000 <= u);
}

int guard_revoke_user_row(struct store_tx *tx, const char *user_id, int64_t now_ms)
{
    char row[128];
    if (user_id == NULL || user_id[0] == '\0')
        return STORE_EINVAL;
    snprintf(row, sizeof(row), "user:%.100s", user_id);
    /* Long enough for any token issued before now: an access token lives at
     * most 86,400 s (config), external tokens an hour at the providers. */
    return store_session_revoke(tx, row, now_ms, now_ms + (2 * 86400 + 120) * 1000LL);
}

int guard_revoke(struct guard *g, struct store_tx *tx, const char *sid, const char *user_id, int64_t expires_at_ms)
{
    char row[128];
    if (sid != NULL)
        snprintf(row, sizeof(row), "sid:%.100s", sid);
    else if (user_id != NULL)
        snprintf(row, sizeof(row), "user:%.100s", user_id);
    else
        return STORE_EINVAL;
    int64_t now_ms = time_now_ms();
    int rc = tx != NULL ? store_session_revoke(tx, row, now_ms, expires_at_ms) : 0;
    if (rc != 0)
        return rc;
    unsigned char key[RV_KEY_BYTES];
    rv_key_of_row(row, key);
    pthread_rwlock_wrlock(&g->rv_lock);
    rc = rv_insert_locked(g, key, now_ms, expires_at_ms, now_ms);
    pthread_rwlock_unlock(&g->rv_lock);
    return rc == 0 ? 0 : STORE_ENOMEM;
}

/* ---- external identities (issue #16.1) ------------------------------------ */

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* A linkable account for an automatic e-mail link: no password, no role
 * beyond patient, active. Anything else is linked only by its owner, signed
 * in (POST /api/v1/auth/identities). */
static int auto_linkable(const struct store_user *u)
{
    return u->password_hash[0] == '!' && strcmp(u->role, "patient") == 0 && strcmp(u->status, "active") == 0;
}

/*
 * The Clarity user of an external identity, keyed by (issuer, subject). First
 * use binds it: to the account with the token's e-mail only when the
 * provider says the e-mail is verified and that account is auto_linkable;
 * otherwise to a new user of its own (a patient; roles never come from a
 * link), which takes the e-mail only when it is verified and free, so an
 * unverified address can neither take nor squat on an account.
 */
static int link_external(struct guard *g, const struct jwt_claims *c, struct principal *p)
{
    struct store_user u;
    char uid[STORE_ID_LEN];
    int rc = TOKEN_EINVALID;
    if (g->store == NULL)
        return TOKEN_EINVALID;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct store_tx *tx = NULL;
        rc = store_tx_begin(g->store, STORE_TX_WRITE, &tx);
        if (rc != 0)
            return rc;
        rc = store_identity_get(tx, c->iss, c->sub, uid);
        if (rc == 0)
            rc = store_user_get(tx, uid, &u);
        else if (rc == STORE_ENOTFOUND) {
            char email[256];
            snprintf(email, sizeof(email), "%s", c->email);
            lower(email);
            int found = 0;
            if (email[0] != '\0' && c->email_verified) {
                rc = store_user_get_by_email(tx, email, &u);
                found = rc == 0;
                if (rc == STORE_ENOTFOUND)
                    rc = 0;
            } else
                rc = 0;
            if (rc == 0 && !(found && auto_linkable(&u))) {
                int email_free = email[0] != '\0' && c->email_verified && !found;
                memset(&u, 0, sizeof(u));
                uuid_v7(u.id);
                if (email_free)
                    snprintf(u.email, sizeof(u.email), "%s", email);
                else
                    snprintf(u.email, sizeof(u.email), "ext-%s@users.invalid", u.id);
                /* No local password: only the provider can sign this user in. */
                snprintf(u.password_hash, sizeof(u.password_hash), "!external");
                snprintf(u.role, sizeof(u.role), "patient");
                snprintf(u.status, sizeof(u.status), "active");
                rc = store_user_insert(tx, &u);
                if (rc == 0)
                    rc = store_user_extra_set(tx, u.id, email_free, c->name);
            }
            if (rc == 0)
                rc = store_identity_insert(tx, c->iss, c->sub, u.id, email);
        }
        if (rc == 0)
            rc = store_tx_commit(tx);
        else
            store_tx_rollback(tx);
        if (rc != STORE_ECONFLICT)
            break; /* a conflict is a concurrent first use: read its result */
    }
    if (rc != 0)
        return rc == STORE_ECONFLICT ? STORE_EBUSY : rc; /* the store's failure: passed through */
    if (strcmp(u.status, "active") != 0)
        return TOKEN_EINVALID;
    snprintf(p->user_id, sizeof(p->user_id), "%s", u.id);
    snprintf(p->role, sizeof(p->role), "%s", u.role);
    return 0;
}

int guard_link_identity(struct guard *g, const struct jwt_claims *c, char user_id[64], char role[16])
{
    struct principal p;
    memset(&p, 0, sizeof(p));
    int rc = link_external(g, c, &p);
    if (rc == 0) {
        snprintf(user_id, 64, "%s", p.user_id);
        snprintf(role, 16, "%s", p.role);
    }
    return rc;
}

int guard_external_verify(struct guard *g, const char *token, struct jwt_claims *c, char *provider, char *why,
                          size_t whylen)
{
    int64_t now = time_now_ms() / 1000;
    if (g->oidc == NULL || !oidc_owns(g->oidc, token, now)) {
        snprintf(why, whylen, "not a token of a configured external issuer");
        return TOKEN_EINVALID;
    }
    return oidc_verify(g->oidc, token, now, c, provider, why, whylen);
}

int guard_authenticate_token(struct guard *g, const char *token, struct principal *p, char *why, size_t whylen)
{
    struct jwt_claims c;
    int64_t now_ms = time_now_ms();
    int64_t now = now_ms / 1000;
    unsigned char key[TCACHE_KEY_BYTES];
    rv_maybe_poll(g, now_ms);
    if (strnlen(token, JWT_MAX_TOKEN_LEN + 1) > JWT_MAX_TOKEN_LEN) {
        snprintf(why, whylen, "token too long");
        return TOKEN_EINVALID;
    }
    int rc;
    token_key(token, key);
    if (cache_get(g, key, now, p) == 0)
        goto check;
    memset(p, 0, sizeof(*p));
    char provider[64] = "";
    if (g->oidc != NULL && oidc_owns(g->oidc, token, now)) {
        if ((rc = oidc_verify(g->oidc, token, now, &c, provider, why, whylen)) != 0)
            return rc;
        if ((rc = link_external(g, &c, p)) != 0) {
            snprintf(why, whylen, "external identity cannot be linked or is disabled (%s)", clarity_strerror(rc));
            return rc;
        }
        p->external = 1;
        p->email_verified = c.email_verified;
        snprintf(p->subject, sizeof(p->subject), "%s", c.sub);
        snprintf(p->provider, sizeof(p->provider), "%s", provider);
        /* The provider's session is the provider's; logout ends this token. */
        char hex[33];
        sodium_bin2hex(hex, sizeof(hex), key, 16);
        snprintf(p->sid, sizeof(p->sid), "tok:%s", hex);
    } else {
        if ((rc = jwt_verify(g->signer, token, g->cfg->jwt_issuer, g->cfg->jwt_audience, now, &c, why, whylen)) != 0)
            return rc;
        if (strlen(c.sub) >= sizeof(p->user_id)) {
            snprintf(why, whylen, "subject too long");
            return TOKEN_EINVALID;
        }
        snprintf(p->user_id, sizeof(p->user_id), "%.63s", c.sub);
        snprintf(p->role, sizeof(p->role), "%s", c.role[0] ? c.role : "patient");
        snprintf(p->provider, sizeof(p->provider), "clarity");
        /* Tokens from before sessions (no sid) are revoked by their jti. */
        if (c.sid[0] != '\0')
            snprintf(p->sid, sizeof(p->sid), "%s", c.sid);
        else
            snprintf(p->sid, sizeof(p->sid), "jti:%.60s", c.jti);
    }
    p->perms = guard_role_perms(p->role);
    if (p->perms == 0) {
        snprintf(why, whylen, "unknown role");
        return TOKEN_EINVALID;
    }
    snprintf(p->jti, sizeof(p->jti), "%s", c.jti);
    p->exp = c.exp;
    p->iat = c.iat;
    cache_put(g, key, p);
check:
    if (is_revoked(g, p)) {
        snprintf(why, whylen, "session revoked");
        return TOKEN_EINVALID;
    }
    return 0;
}

static int authenticate(struct guard *g, struct http_request *req, struct http_response *res)
{
    const char *h = http_request_header(req, "Authorization");
    const char *token = NULL;
    if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0)
        token = h + 7;
    else if (h == NULL && (req->route_flags & GUARD_QUERY_TOKEN))
        token = http_request_query(req, "token"); /* WebSocket clients cannot set headers */
    if (token == NULL || *token == '\0')
        return unauthorized(res, "A bearer token is required.");

    struct principal *p = arena_alloc(req->arena, sizeof(*p));
    if (p == NULL) {
        api_store_failure(res, TOKEN_ENOMEM);
        return -1;
    }
    char why[128] = "";
    int rc = guard_authenticate_token(g, token, p, why, sizeof(why));
    if (rc != 0) {
        log_info("authentication failed", LOG_STR, "request_id", req->request_id, LOG_STR, "reason", why, LOG_END);
        if (rc != TOKEN_EINVALID) {
            /* The server could not check the token (memory, the store, the
             * provider's keys): 503, never a 401 that tells the client to
             * sign in again (#16). */
            api_store_failure(res, rc);
            return -1;
        }
        return unauthorized(res, "The bearer token is invalid or expired.");
    }
    req->principal = p;
    return 0;
}

int guard_run(void *ctx, struct http_request *req, struct http_response *res)
{
    struct guard *g = ctx;
    client_address(g, req);
    if ((req->route_flags & GUARD_AUTH) && authenticate(g, req, res) != 0)
        return -1;
    unsigned cls = (req->route_flags & GUARD_RATE_MASK) >> GUARD_RATE_SHIFT;
    if (cls == GUARD_RATE_NONE || cls >= GUARD_RATE_COUNT)
        return 0;
    const struct principal *p = req->principal;
    /* Built without printf: this runs on every rate-limited request. */
    char key[160], v[3][24];
    struct buf kb;
    buf_init_fixed(&kb, key, sizeof(key));
    if (buf_puts(&kb, class_names[cls]) || buf_puts(&kb, p != NULL ? ":user:" : ":ip:") ||
        buf_puts(&kb, p != NULL ? p->user_id : req->client_ip))
        kb.len = sizeof(key) - 1; /* cannot happen: ids and addresses are short */
    key[kb.len] = '\0';
    struct rate_result r;
    limiter_take(g->buckets, key, &g->rules[cls], time_now_ms(), &r);
    const int vals[3] = {r.limit, r.remaining, r.reset_s};
    for (int i = 0; i < 3; i++) {
        struct buf vb;
        buf_init_fixed(&vb, v[i], sizeof(v[i]));
        buf_put_int(&vb, vals[i]);
        v[i][vb.len] = '\0';
    }
    /* RateLimit header fields (IETF httpapi draft, the widely deployed form). */
    http_response_header(res, "RateLimit-Limit", v[0]);
    http_response_header(res, "RateLimit-Remaining", v[1]);
    http_response_header(res, "RateLimit-Reset", v[2]);
    if (!r.allowed) {
        struct problem *pr = http_respond_problem(res, 429, "rate-limit-exceeded",
                                                  "Too many requests; retry after %d seconds.", r.retry_after_s);
        pr->retry_after = r.retry_after_s;
        return -1;
    }
    return 0;
}

const struct principal *access_principal(const struct http_request *req) { return req->principal; }

int auth_principal_is(const struct principal *p, const char *id)
{
    if (p == NULL || id == NULL || id[0] == '\0')
        return 0;
    if (strcasecmp(p->user_id, id) == 0)
        return 1;
    return p->external && p->subject[0] != '\0' && strcmp(p->subject, id) == 0;
}

int access_user_path(const struct http_request *req, struct http_response *res, const char *user_id, int write)
{
    const struct principal *p = req->principal;
    if (p == NULL) {
        unauthorized(res, "A bearer token is required.");
        return -1;
    }
    if (auth_principal_is(p, user_id))
        return 0;
    if (!write && (p->perms & PERM_READ_ALL))
        return 0;
    http_respond_problem(res, 403, "authorization-denied", "You may only access your own data.");
    return -1;
}

const char *access_owner_scope(const struct http_request *req)
{
    const struct principal *p = req->principal;
    return (p->perms & PERM_READ_ALL) ? NULL : p->user_id;
}

int access_can_read(const struct http_request *req, const char *owner_id)
{
    const struct principal *p = req->principal;
    if (p == NULL || owner_id == NULL)
        return 0;
    /* A stored owner is always a Clarity user id: never matched against the
     * caller's external subject (a subject is the provider's to choose). */
    return strcasecmp(p->user_id, owner_id) == 0 || (p->perms & PERM_READ_ALL) != 0;
}
