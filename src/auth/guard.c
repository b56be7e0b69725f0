/*
 * guard.c — authentication, rate limiting and access rules. See guard.h.
 */
#include "auth/guard.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "store/store.h"

#define MAX_PROXIES 32

struct guard {
    const struct config *cfg;
    const struct jwt_signer *signer;
    struct oidc *oidc;
    struct store *store;
    struct limiter *buckets;
    struct rate_rule rules[GUARD_RATE_COUNT];
    char proxies[MAX_PROXIES][64];
    int nproxies;
};

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
    {PERM_READ_OWN, "read:own_data"},     {PERM_WRITE_OWN, "write:own_data"}, {PERM_READ_ALL, "read:all_data"},
    {PERM_AUDIT, "read:audit_log"},       {PERM_MANAGE_USERS, "manage:users"},
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
    /* Defaults from the identity issue: auth 5/min, upload 60/min,
     * insights 20/h, chat 30/min, other API 100/min. */
    rules[GUARD_RATE_NONE] = (struct rate_rule){0, 0};
    rules[GUARD_RATE_API] = (struct rate_rule){100, 60};
    rules[GUARD_RATE_AUTH] = (struct rate_rule){5, 60};
    rules[GUARD_RATE_UPLOAD] = (struct rate_rule){60, 60};
    rules[GUARD_RATE_INSIGHTS] = (struct rate_rule){20, 3600};
    rules[GUARD_RATE_CHAT] = (struct rate_rule){30, 60};
    if (spec == NULL || *spec == '\0')
        return 0;
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", spec);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        char name[32];
        int count = 0, period = 0, used = 0;
        if (sscanf(item, " %31[a-z] = %d / %d %n", name, &count, &period, &used) != 3 || item[used] != '\0' ||
            count < 1 || count > 1000000 || period < 1 || period > 86400) {
            snprintf(err, errlen, "RATE_LIMITS: \"%.40s\" is not CLASS=COUNT/SECONDS", item);
            return -1;
        }
        int found = 0;
        for (int c = GUARD_RATE_API; c < GUARD_RATE_COUNT; c++)
            if (strcmp(name, class_names[c]) == 0) {
                rules[c] = (struct rate_rule){count, period};
                found = 1;
            }
        if (!found) {
            snprintf(err, errlen, "RATE_LIMITS: unknown class \"%s\" (api, auth, upload, insights, chat)", name);
            return -1;
        }
    }
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
    g->cfg = cfg;
    g->signer = signer;
    g->oidc = oidc;
    g->store = store;
    if (guard_rate_rules_parse(cfg->rate_limits, g->rules, err, errlen) != 0)
        goto fail;
    json_error_t je;
    json_t *list = json_loads(cfg->trusted_proxies != NULL ? cfg->trusted_proxies : "[]", 0, &je);
    if (!json_is_array(list) || json_array_size(list) > MAX_PROXIES) {
        json_decref(list);
        snprintf(err, errlen, "TRUSTED_PROXIES: expected a JSON list of at most %d IP addresses", MAX_PROXIES);
        goto fail;
    }
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        const char *ip = json_string_value(v);
        unsigned char tmp[16];
        if (ip == NULL || (inet_pton(AF_INET, ip, tmp) != 1 && inet_pton(AF_INET6, ip, tmp) != 1)) {
            json_decref(list);
            snprintf(err, errlen, "TRUSTED_PROXIES: item %zu is not an IP address", i);
            goto fail;
        }
        snprintf(g->proxies[g->nproxies++], sizeof(g->proxies[0]), "%s", ip);
    }
    json_decref(list);
    g->buckets = limiter_new(1u << 16);
    if (g->buckets == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
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

/* First use of an external identity links it to a local user by email. */
static int link_external(struct guard *g, const struct jwt_claims *c, struct principal *p)
{
    struct store_tx *tx = NULL;
    struct store_user u;
    if (c->email[0] == '\0' || g->store == NULL)
        return -1;
    char email[256];
    snprintf(email, sizeof(email), "%s", c->email);
    for (char *q = email; *q; q++)
        if (*q >= 'A' && *q <= 'Z')
            *q = (char)(*q - 'A' + 'a');
    if (store_tx_begin(g->store, STORE_TX_WRITE, &tx) != 0)
        return -1;
    int rc = store_user_get_by_email(tx, email, &u);
    if (rc == STORE_ENOTFOUND) {
        memset(&u, 0, sizeof(u));
        uuid_v7(u.id);
        snprintf(u.email, sizeof(u.email), "%s", email);
        /* No local password: only the external provider can sign this user in. */
        snprintf(u.password_hash, sizeof(u.password_hash), "!external");
        snprintf(u.first_name, sizeof(u.first_name), "%s", "");
        snprintf(u.role, sizeof(u.role), "patient");
        snprintf(u.status, sizeof(u.status), "active");
        rc = store_user_insert(tx, &u);
    }
    if (rc != 0 || store_tx_commit(tx) != 0) {
        if (rc != 0)
            store_tx_rollback(tx);
        return -1;
    }
    snprintf(p->user_id, sizeof(p->user_id), "%s", u.id);
    snprintf(p->role, sizeof(p->role), "%s", u.role);
    return 0;
}

static int authenticate(struct guard *g, struct http_request *req, struct http_response *res)
{
    const char *h = http_request_header(req, "Authorization");
    const char *token = NULL;
    if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0)
        token = h + 7;
    else if (h == NULL)
        token = http_request_query(req, "token"); /* WebSocket clients cannot set headers */
    if (token == NULL || *token == '\0')
        return unauthorized(res, "A bearer token is required.");

    struct principal *p = arena_alloc(req->arena, sizeof(*p));
    if (p == NULL) {
        http_respond_problem(res, 500, NULL, "The server could not complete the request.");
        return -1;
    }
    memset(p, 0, sizeof(*p));
    struct jwt_claims c;
    char why[128] = "";
    int64_t now = time_now_ms() / 1000;
    /* A token whose kid is not Clarity's own may be the provider's. */
    char kid[128];
    int external = g->oidc != NULL &&
                   (jwt_peek_kid(token, kid, sizeof(kid)) != 0 || strcmp(kid, jwt_signer_kid(g->signer)) != 0) &&
                   oidc_owns(g->oidc, token, now);
    if (external) {
        if (oidc_verify(g->oidc, token, now, &c, why, sizeof(why)) != 0)
            goto bad;
        if (link_external(g, &c, p) != 0) {
            snprintf(why, sizeof(why), "external identity without a usable email");
            goto bad;
        }
        p->external = 1;
    } else {
        if (jwt_verify(g->signer, token, g->cfg->jwt_issuer, g->cfg->jwt_audience, now, &c, why, sizeof(why)) != 0)
            goto bad;
        if (strlen(c.sub) >= sizeof(p->user_id)) {
            snprintf(why, sizeof(why), "subject too long");
            goto bad;
        }
        snprintf(p->user_id, sizeof(p->user_id), "%.63s", c.sub);
        snprintf(p->role, sizeof(p->role), "%s", c.role[0] ? c.role : "patient");
    }
    p->perms = guard_role_perms(p->role);
    if (p->perms == 0) {
        snprintf(why, sizeof(why), "unknown role");
        goto bad;
    }
    snprintf(p->jti, sizeof(p->jti), "%s", c.jti);
    p->exp = c.exp;
    req->principal = p;
    return 0;
bad:
    log_info("authentication failed", LOG_STR, "request_id", req->request_id, LOG_STR, "reason", why, LOG_END);
    return unauthorized(res, "The bearer token is invalid or expired.");
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
    char key[160];
    if (p != NULL)
        snprintf(key, sizeof(key), "%s:user:%s", class_names[cls], p->user_id);
    else
        snprintf(key, sizeof(key), "%s:ip:%s", class_names[cls], req->client_ip);
    struct rate_result r;
    limiter_take(g->buckets, key, &g->rules[cls], time_now_ms(), &r);
    char v[32];
    /* RateLimit header fields (IETF httpapi draft, the widely deployed form). */
    snprintf(v, sizeof(v), "%d", r.limit);
    http_response_header(res, "RateLimit-Limit", v);
    snprintf(v, sizeof(v), "%d", r.remaining);
    http_response_header(res, "RateLimit-Remaining", v);
    snprintf(v, sizeof(v), "%d", r.reset_s);
    http_response_header(res, "RateLimit-Reset", v);
    if (!r.allowed) {
        struct problem *pr = http_respond_problem(res, 429, "rate-limit-exceeded",
                                                  "Too many requests; retry after %d seconds.", r.retry_after_s);
        pr->retry_after = r.retry_after_s;
        return -1;
    }
    return 0;
}

const struct principal *access_principal(const struct http_request *req) { return req->principal; }

int access_user_path(const struct http_request *req, struct http_response *res, const char *user_id, int write)
{
    const struct principal *p = req->principal;
    if (p == NULL) {
        unauthorized(res, "A bearer token is required.");
        return -1;
    }
    if (user_id != NULL && strcasecmp(p->user_id, user_id) == 0)
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
    return strcasecmp(p->user_id, owner_id) == 0 || (p->perms & PERM_READ_ALL) != 0;
}
