/*
 * users.c — `clarity users`: the operator's account commands (create, list,
 * show, disable, unlock, set-role, reset-password) without SQL.
 *
 * Each change is one transaction with its audit row: action "cli.user.<verb>",
 * resource the user's id, actor "" (no API caller) and request_id
 * "cli:<operator>" (the OS user running the command, from $USER / getlogin),
 * ip "cli". Passwords never appear on the command line: create generates a
 * temporary password and prints it once on stdout (or reads one from stdin
 * with --password-stdin); reset-password prints a one-time reset code
 * (auth/reset.h) once, which the user redeems with a new password of their
 * own at POST /api/v1/auth/reset-password — the current password stops
 * working at once. Reset and disable also end every session of the user
 * (refresh tokens deleted, access tokens revoked: running servers refuse them
 * within the guard's poll). The code is never in the audit row.
 */
#include "cli/users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "api/guard.h"
#include "auth/reset.h"
#include "cli/cli.h"
#include "cli/migrate.h"
#include "core/config.h"
#include "core/err.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "crypto/password.h"
#include "store/store.h"

static const char usage[] =
    "usage: clarity users create EMAIL --first-name NAME --last-name NAME [--role ROLE] [--password-stdin]\n"
    "       clarity users list [--limit N]\n"
    "       clarity users show EMAIL\n"
    "       clarity users disable EMAIL\n"
    "       clarity users unlock EMAIL\n"
    "       clarity users set-role EMAIL ROLE\n"
    "       clarity users reset-password EMAIL\n";

static const char *const roles[] = {"patient", "clinician", "researcher", "admin"};

static int valid_role(const char *r)
{
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (strcmp(roles[i], r) == 0)
            return 1;
    return 0;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* Who runs the command, for the audit row. */
static void operator_id(char out[64])
{
    const char *u = getenv("USER");
    if (u == NULL || u[0] == '\0')
        u = getlogin();
    snprintf(out, 64, "cli:%.59s", u != NULL && u[0] != '\0' ? u : "unknown");
}

static int audit(struct store_tx *tx, const char *verb, const char *user_id, const char *outcome)
{
    struct store_audit a;
    memset(&a, 0, sizeof(a));
    snprintf(a.action, sizeof(a.action), "cli.user.%s", verb);
    snprintf(a.resource_type, sizeof(a.resource_type), "user");
    snprintf(a.resource_id, sizeof(a.resource_id), "%s", user_id);
    snprintf(a.outcome, sizeof(a.outcome), "%s", outcome);
    snprintf(a.ip, sizeof(a.ip), "cli");
    operator_id(a.request_id);
    return store_audit_insert(tx, &a);
}

/*
 * A temporary password that meets the policy (password_policy_check): 16
 * random URL-safe base64 characters (96 bits) and a fixed "Aa1!" tail for the
 * character classes.
 */
static int temporary_password(char out[32])
{
    unsigned char raw[12];
    char b64[32];
    if (random_bytes(raw, sizeof(raw)) != 0)
        return -1;
    sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(out, 32, "%.16sAa1!", b64);
    return password_policy_check(out) == NULL ? 0 : -1;
}

static json_t *user_json(const struct store_user *u)
{
    char created[40], last[40], locked[40];
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "id", u->id, "email", u->email, "first_name",
                  u->first_name, "last_name", u->last_name, "role", u->role, "status", u->status, "failed_logins",
                  u->failed_logins, "created_at", time_format_rfc3339_ms(u->created_at_ms, created, sizeof(created)));
    json_object_set_new(o, "last_login_at",
                        u->last_login_ms ? json_string(time_format_rfc3339_ms(u->last_login_ms, last, sizeof(last)))
                                         : json_null());
    json_object_set_new(o, "locked_until",
                        u->locked_until_ms
                            ? json_string(time_format_rfc3339_ms(u->locked_until_ms, locked, sizeof(locked)))
                            : json_null());
    return o;
}

static void print_json(json_t *o)
{
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s != NULL) {
        puts(s);
        sodium_memzero(s, strlen(s)); /* it may hold a password or a reset code */
    }
    free(s);
    json_decref(o);
}

/* Read one line (the password) from stdin, newline removed. */
static int read_stdin_password(char *out, size_t n)
{
    if (fgets(out, (int)n, stdin) == NULL)
        return -1;
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

static int cmd_create(struct store *st, const struct config *cfg, int argc, char **argv)
{
    const char *first = NULL, *last = NULL, *role = "patient";
    int from_stdin = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--first-name") == 0 && i + 1 < argc)
            first = argv[++i];
        else if (strcmp(argv[i], "--last-name") == 0 && i + 1 < argc)
            last = argv[++i];
        else if (strcmp(argv[i], "--role") == 0 && i + 1 < argc)
            role = argv[++i];
        else if (strcmp(argv[i], "--password-stdin") == 0)
            from_stdin = 1;
        else {
            fprintf(stderr, "clarity users create: unexpected argument '%s'\n%s", argv[i], usage);
            return CLI_EXIT_USAGE;
        }
    }
    if (first == NULL || last == NULL || strlen(first) < 1 || strlen(first) > 50 || strlen(last) < 1 ||
        strlen(last) > 50) {
        fprintf(stderr, "clarity users create: --first-name and --last-name (1 to 50 characters) are required\n");
        return CLI_EXIT_USAGE;
    }
    if (!valid_role(role)) {
        fprintf(stderr, "clarity users create: role must be patient, clinician, researcher or admin\n");
        return CLI_EXIT_USAGE;
    }
    const char *email = argv[2];
    if (strlen(email) > 254 || strchr(email, '@') == NULL) {
        fprintf(stderr, "clarity users create: '%s' is not an email address\n", email);
        return CLI_EXIT_USAGE;
    }
    char pw[160];
    if (from_stdin) {
        if (read_stdin_password(pw, sizeof(pw)) != 0) {
            fprintf(stderr, "clarity users create: no password on stdin\n");
            return CLI_EXIT_USAGE;
        }
        const char *why = password_policy_check(pw);
        if (why != NULL) {
            fprintf(stderr, "clarity users create: password: %s\n", why);
            sodium_memzero(pw, sizeof(pw));
            return CLI_EXIT_USAGE;
        }
    } else if (temporary_password(pw) != 0) {
        fprintf(stderr, "clarity users create: cannot generate a password\n");
        return CLI_EXIT_FAILURE;
    }
    struct store_user u;
    memset(&u, 0, sizeof(u));
    uuid_v7(u.id);
    snprintf(u.email, sizeof(u.email), "%s", email);
    lower(u.email);
    snprintf(u.first_name, sizeof(u.first_name), "%s", first);
    snprintf(u.last_name, sizeof(u.last_name), "%s", last);
    snprintf(u.role, sizeof(u.role), "%s", role);
    snprintf(u.status, sizeof(u.status), "active");
    u.created_at_ms = time_now_ms();
    enum password_profile prof =
        strcmp(cfg->password_hash_profile, "interactive") == 0 ? PASSWORD_INTERACTIVE : PASSWORD_MODERATE;
    if (password_hash(pw, prof, u.password_hash) != 0) {
        sodium_memzero(pw, sizeof(pw));
        fprintf(stderr, "clarity users create: cannot hash the password\n");
        return CLI_EXIT_FAILURE;
    }
    struct store_tx *tx = NULL;
    int rc = store_tx_begin(st, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = store_user_insert(tx, &u);
    if (rc == 0)
        rc = audit(tx, "create", u.id, "success");
    if (rc == 0)
        rc = store_tx_commit(tx);
    else
        store_tx_rollback(tx);
    if (rc != 0) {
        sodium_memzero(pw, sizeof(pw));
        fprintf(stderr, "clarity users create: %s\n",
                rc == STORE_ECONFLICT ? "an account with this email already exists" : clarity_strerror(rc));
        return rc == STORE_ECONFLICT ? CLI_EXIT_FAILURE : CLI_EXIT_FAILURE;
    }
    json_t *o = user_json(&u);
    if (!from_stdin)
        json_object_set_new(o, "temporary_password", json_string(pw));
    sodium_memzero(pw, sizeof(pw));
    print_json(o);
    return CLI_EXIT_OK;
}

static int cmd_list(struct store *st, int argc, char **argv)
{
    long limit = 100;
    if (argc == 4 && strcmp(argv[2], "--limit") == 0) {
        char *end;
        limit = strtol(argv[3], &end, 10);
        if (*end != '\0' || limit < 1 || limit > STORE_PAGE_MAX) {
            fprintf(stderr, "clarity users list: --limit takes 1 to %d\n", STORE_PAGE_MAX);
            return CLI_EXIT_USAGE;
        }
    } else if (argc != 2) {
        fputs(usage, stderr);
        return CLI_EXIT_USAGE;
    }
    struct store_tx *tx = NULL;
    struct store_user *users = NULL;
    size_t n = 0;
    struct store_cursor next;
    int rc = store_tx_begin(st, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_user_list(tx, NULL, (size_t)limit, &users, &n, &next);
    store_tx_rollback(tx);
    if (rc != 0) {
        fprintf(stderr, "clarity users list: %s\n", clarity_strerror(rc));
        return CLI_EXIT_FAILURE;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, user_json(&users[i]));
    free(users);
    print_json(arr);
    return CLI_EXIT_OK;
}

/*
 * The reset code's instructions: the documented request with the code in
 * it, for the operator to pass on (over a separate channel). The base URL is
 * this configuration's own listener in development; elsewhere a placeholder
 * for the API's public address (Clarity has no setting that knows it).
 */
static json_t *reset_instructions(const struct config *cfg, const char *email, const char *code)
{
    char base[128];
    if (cfg->environment == CONFIG_ENV_DEVELOPMENT)
        snprintf(base, sizeof(base), "http://%s:%d",
                 strcmp(cfg->host, "0.0.0.0") == 0 || strcmp(cfg->host, "::") == 0 ? "127.0.0.1" : cfg->host,
                 cfg->port);
    else
        snprintf(base, sizeof(base), "https://API-HOST");
    json_t *body = json_pack("{s:s, s:s, s:s}", "email", email, "code", code, "new_password", "NEW-PASSWORD");
    char *doc = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (doc == NULL)
        return NULL;
    /* Single-quoted for a POSIX shell: each ' becomes '\''. */
    size_t n = strlen(doc), cap = 256 + strlen(base) + 4 * n;
    char *cmd = malloc(cap);
    json_t *out = NULL;
    if (cmd != NULL) {
        size_t k = (size_t)snprintf(cmd, cap,
                                    "curl -sS -X POST %s/api/v1/auth/reset-password"
                                    " -H 'Content-Type: application/json' -d '",
                                    base);
        for (size_t i = 0; i < n && k + 5 < cap; i++) {
            if (doc[i] == '\'') {
                memcpy(cmd + k, "'\\''", 4);
                k += 4;
            } else
                cmd[k++] = doc[i];
        }
        snprintf(cmd + k, cap - k, "'");
        out = json_string(cmd);
        sodium_memzero(cmd, cap);
        free(cmd);
    }
    sodium_memzero(doc, n);
    free(doc);
    return out;
}

/* The verbs that change one user by email. */
static int cmd_change(struct store *st, const struct config *cfg, const char *verb, const char *email, const char *role)
{
    char key[256], code[RESET_CODE_LEN + 1] = "";
    int64_t code_expires_ms = 0;
    snprintf(key, sizeof(key), "%s", email);
    lower(key);
    struct store_tx *tx = NULL;
    struct store_user u;
    int rc = store_tx_begin(st, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = store_user_get_by_email(tx, key, &u);
    if (rc == STORE_ENOTFOUND) {
        store_tx_rollback(tx);
        fprintf(stderr, "clarity users %s: no user with email %s\n", verb, key);
        return CLI_EXIT_FAILURE;
    }
    if (rc == 0) {
        if (strcmp(verb, "disable") == 0) {
            snprintf(u.status, sizeof(u.status), "disabled");
        } else if (strcmp(verb, "unlock") == 0) {
            if (strcmp(u.status, "locked") == 0)
                snprintf(u.status, sizeof(u.status), "active");
        } else if (strcmp(verb, "set-role") == 0) {
            snprintf(u.role, sizeof(u.role), "%s", role);
        } else if (strcmp(verb, "reset-password") == 0) {
            if (strcmp(u.status, "disabled") == 0) {
                store_tx_rollback(tx);
                fprintf(stderr, "clarity users reset-password: %s is disabled; nothing changed\n", key);
                return CLI_EXIT_FAILURE;
            }
            /* The current password stops working now (a reset is also what
             * follows a stolen password); the code sets the next one. */
            snprintf(u.password_hash, sizeof(u.password_hash), "%s", RESET_PENDING_HASH);
            if (strcmp(u.status, "locked") == 0)
                snprintf(u.status, sizeof(u.status), "active");
            rc = reset_code_issue(tx, u.id, time_now_ms(), code, &code_expires_ms);
            if (rc == -1)
                rc = STORE_EINTERNAL;
        }
    }
    if (rc == 0)
        rc = store_user_update(tx, &u);
    if (rc == 0 && (strcmp(verb, "unlock") == 0 || strcmp(verb, "reset-password") == 0))
        rc = store_user_login_update(tx, u.id, 0, 0, u.last_login_ms);
    if (rc == 0 && (strcmp(verb, "disable") == 0 || strcmp(verb, "reset-password") == 0)) {
        int64_t ended = 0; /* every session of the user ends: refresh tokens go, and */
        rc = store_token_delete_by_user(tx, u.id, &ended);
        if (rc == 0) /* access tokens already issued are revoked (api/guard.h) */
            rc = guard_revoke_user_row(tx, u.id, time_now_ms());
    }
    if (rc == 0)
        rc = audit(tx, verb, u.id, "success");
    if (rc == 0)
        rc = store_tx_commit(tx);
    else
        store_tx_rollback(tx);
    if (rc != 0) {
        sodium_memzero(code, sizeof(code));
        fprintf(stderr, "clarity users %s: %s\n", verb, clarity_strerror(rc));
        return CLI_EXIT_FAILURE;
    }
    u.failed_logins = strcmp(verb, "unlock") == 0 || strcmp(verb, "reset-password") == 0 ? 0 : u.failed_logins;
    u.locked_until_ms = strcmp(verb, "unlock") == 0 || strcmp(verb, "reset-password") == 0 ? 0 : u.locked_until_ms;
    json_t *o = user_json(&u);
    if (code[0] != '\0') {
        char when[40];
        json_object_set_new(o, "reset_code", json_string(code));
        json_object_set_new(o, "reset_code_expires_at",
                            json_string(time_format_rfc3339_ms(code_expires_ms, when, sizeof(when))));
        json_object_set_new(o, "reset_with", reset_instructions(cfg, u.email, code));
    }
    sodium_memzero(code, sizeof(code));
    print_json(o);
    return CLI_EXIT_OK;
}

static int cmd_show(struct store *st, const char *email)
{
    char key[256];
    snprintf(key, sizeof(key), "%s", email);
    lower(key);
    struct store_tx *tx = NULL;
    struct store_user u;
    int rc = store_tx_begin(st, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_user_get_by_email(tx, key, &u);
    store_tx_rollback(tx);
    if (rc != 0) {
        fprintf(stderr, "clarity users show: %s\n",
                rc == STORE_ENOTFOUND ? "no user with this email" : clarity_strerror(rc));
        return CLI_EXIT_FAILURE;
    }
    print_json(user_json(&u));
    return CLI_EXIT_OK;
}

int cli_users(int argc, char **argv)
{
    const char *verb = argc >= 2 ? argv[1] : "";
    int ok = (strcmp(verb, "create") == 0 && argc >= 3) || (strcmp(verb, "list") == 0) ||
             ((strcmp(verb, "show") == 0 || strcmp(verb, "disable") == 0 || strcmp(verb, "unlock") == 0 ||
               strcmp(verb, "reset-password") == 0) &&
              argc == 3) ||
             (strcmp(verb, "set-role") == 0 && argc == 4);
    if (!ok) {
        fputs(usage, stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(verb, "set-role") == 0 && !valid_role(argv[3])) {
        fprintf(stderr, "clarity users set-role: role must be patient, clinician, researcher or admin\n");
        return CLI_EXIT_USAGE;
    }
    struct config cfg;
    int rc = cli_config_load(&cfg);
    if (rc != 0)
        return rc;
    if (password_init() != 0) {
        config_free(&cfg);
        fprintf(stderr, "clarity users: libsodium initialisation failed\n");
        return CLI_EXIT_FAILURE;
    }
    struct store *st = NULL;
    if (cli_store_open(&cfg, &st) != 0) {
        config_free(&cfg);
        return CLI_EXIT_FAILURE;
    }
    if (strcmp(verb, "create") == 0)
        rc = cmd_create(st, &cfg, argc, argv);
    else if (strcmp(verb, "list") == 0)
        rc = cmd_list(st, argc, argv);
    else if (strcmp(verb, "show") == 0)
        rc = cmd_show(st, argv[2]);
    else
        rc = cmd_change(st, &cfg, verb, argv[2], argc == 4 ? argv[3] : NULL);
    store_close(st);
    config_free(&cfg);
    return rc;
}
