#!/usr/bin/env bash
# Deploy Clarity to Cloud Run (docs/deployment.md).
#
# usage: scripts/deploy.sh [--dry-run] {development|staging|production} [VERSION]
#
#   1. build and push the image REGISTRY/clarity:VERSION (SKIP_BUILD=1: the
#      image is already pushed, as in CI);
#   2. note the revision now serving (the rollback target);
#   3. run `clarity migrate up` as a one-off Cloud Run job with the new image
#      (migrations are expand-only, so the old revision keeps working);
#   4. development and staging: deploy with all traffic, then `clarity smoke`
#      (full: registers a throw-away account, uploads, cleans up); a failed
#      smoke test rolls back;
#   5. production: deploy with --no-traffic under the tag "candidate", smoke
#      test the candidate's own URL (read-only), then shift 10 % → 50 % →
#      100 % with a health gate after each step — error rate and p99 from the
#      candidate's /metrics over GATE_SECONDS, and a smoke test of the public
#      URL. A failed gate runs scripts/rollback.sh and exits 1. Production is
#      reached through the load balancer (API_DOMAIN, default
#      api.clarity.example.com; the candidate at candidate.API_DOMAIN), and
#      /metrics with the bearer token from the clarity-metrics-token secret
#      (METRICS_TOKEN, if set, is used instead), sent from a header file so
#      that it never appears in the trace;
#   6. print the service, health and docs URLs.
#
# --dry-run prints the exact command sequence and runs nothing. Settings come
# from the environment: GOOGLE_CLOUD_PROJECT, GOOGLE_CLOUD_REGION,
# CLOUD_RUN_SERVICE, REGISTRY, RUN_SERVICE_ACCOUNT, VPC_NETWORK, VPC_SUBNET,
# SKIP_BUILD, SMOKE_ARGS (development/staging; default --register),
# SMOKE_TOKEN (production: adds an auth round trip), API_DOMAIN, METRICS_TOKEN,
# GATE_SECONDS (default
# 120), GATE_MAX_ERROR_RATE (default 0.01), GATE_MAX_P99_SECONDS (default 1.0),
# CANARY_STEPS (default "10 50 100"), SAMPLE_BLOCK_FORMAT (1 or 2: set on the
# new revision with --update-env-vars; 1 while a release that reads only
# format-1 sample blocks still serves or is the rollback target, see
# docs/operations.md "Block format 2"; unset leaves the service's setting).
set -euo pipefail

SCRIPT_NAME=deploy.sh
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=deploy-lib.sh
. "$HERE/deploy-lib.sh"
exec 3>&1

usage() {
    echo "usage: scripts/deploy.sh [--dry-run] {development|staging|production} [VERSION]" >&2
    exit 2
}

ENVIRONMENT=""
VERSION=""
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h | --help) usage ;;
        -*) log "unknown option $arg"; usage ;;
        *)
            if [ -z "$ENVIRONMENT" ]; then
                ENVIRONMENT="$arg"
            elif [ -z "$VERSION" ]; then
                VERSION="$arg"
            else
                usage
            fi
            ;;
    esac
done
[ -n "$ENVIRONMENT" ] || usage
env_settings "$ENVIRONMENT" || { log "unknown environment '$ENVIRONMENT'"; usage; }
if [ -z "$VERSION" ]; then
    VERSION="$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null)" ||
        die "no VERSION given and no git checkout to take it from"
fi
case "$VERSION" in
    *[!A-Za-z0-9._-]* | "") die "VERSION '$VERSION' may hold only letters, digits, '.', '_' and '-'" ;;
esac

# The sample block format the new revision writes, when told.
ENV_FLAGS=()
case "${SAMPLE_BLOCK_FORMAT:-}" in
    "") ;;
    1 | 2) ENV_FLAGS=(--update-env-vars "SAMPLE_BLOCK_FORMAT=$SAMPLE_BLOCK_FORMAT") ;;
    *) die "SAMPLE_BLOCK_FORMAT '$SAMPLE_BLOCK_FORMAT' must be 1 or 2" ;;
esac

IMAGE="$REGISTRY/clarity:$VERSION"
REVISION="$SERVICE-$(revision_suffix "$VERSION")"
GATE_SECONDS="${GATE_SECONDS:-120}"
GATE_MAX_ERROR_RATE="${GATE_MAX_ERROR_RATE:-0.01}"
GATE_MAX_P99_SECONDS="${GATE_MAX_P99_SECONDS:-1.0}"
CANARY_STEPS="${CANARY_STEPS:-10 50 100}"
GCLOUD_WHERE=(--region "$REGION" --project "$PROJECT")
ROLLBACK_FLAGS=()
if [ "$DRY_RUN" = 1 ]; then
    ROLLBACK_FLAGS=(--dry-run)
fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

log "deploying $IMAGE to $SERVICE ($ENVIRONMENT, project $PROJECT, region $REGION)"

# 1. Image.
run gcloud auth configure-docker "$REGION-docker.pkg.dev" --quiet
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    run docker build --label "org.opencontainers.image.version=$VERSION" -t "$IMAGE" "$ROOT"
    run docker push "$IMAGE"
else
    run docker pull "$IMAGE"
fi

# 2. The revision serving now: where a failed rollout returns to.
PREVIOUS="$(capture "$SERVICE-previous" gcloud run services describe "$SERVICE" "${GCLOUD_WHERE[@]}" \
    --format 'value(status.latestReadyRevisionName)')"
[ -n "$PREVIOUS" ] || die "cannot tell which revision serves $SERVICE now"

# 3. Migrations, as a one-off job with the new image. The job loads the same
# configuration as the service, and staging/production refuse to start
# without their keys, so it gets those secrets too.
JOB_SECRETS="DATABASE_URL=clarity-database-url:latest"
JOB_SECRETS="$JOB_SECRETS,JWT_PRIVATE_KEY=clarity-jwt-private-key:latest"
JOB_SECRETS="$JOB_SECRETS,ENCRYPTION_KEY=clarity-encryption-key:latest"
run gcloud run jobs deploy "$MIGRATE_JOB" --image "$IMAGE" "${GCLOUD_WHERE[@]}" \
    --service-account "$RUN_SA" --args migrate,up \
    --set-env-vars "ENVIRONMENT=$ENVIRONMENT" \
    --set-secrets "$JOB_SECRETS" \
    --network "$NETWORK" --subnet "$SUBNET" --vpc-egress private-ranges-only \
    --tasks 1 --max-retries 0 --task-timeout 30m --execute-now --wait --quiet

rollback() {
    log "$1: rolling back to $PREVIOUS"
    "$HERE/rollback.sh" "${ROLLBACK_FLAGS[@]}" "$ENVIRONMENT" "$PREVIOUS" ||
        log "ROLLBACK FAILED: restore $PREVIOUS by hand (docs/deployment.md)"
    exit 1
}

# 6. Where to look: printed last, on standard output.
urls() {
    printf 'service: %s\nhealth:  %s/health\ndocs:    %s/docs\n' "$1" "$1" "$1"
}

# A health gate: the candidate's error rate and p99 over GATE_SECONDS from its
# own /metrics, then a read-only smoke test of the public URL.
gate() {
    local step="$1"
    run curl -fsS --max-time 10 -H "@$TMP/metrics-auth" -o "$TMP/metrics-before" "$CANDIDATE_URL/metrics" || return 1
    run sleep "$GATE_SECONDS"
    run curl -fsS --max-time 10 -H "@$TMP/metrics-auth" -o "$TMP/metrics-after" "$CANDIDATE_URL/metrics" || return 1
    run python3 "$HERE/metrics-gate" --max-error-rate "$GATE_MAX_ERROR_RATE" \
        --max-p99-seconds "$GATE_MAX_P99_SECONDS" "$TMP/metrics-before" "$TMP/metrics-after" || return 1
    smoke "$IMAGE" "$SERVICE_URL" --read-only || return 1
    log "gate at $step % passed"
}

if [ "$ENVIRONMENT" != production ]; then
    # 4. Development and staging: all traffic at once, then the full smoke test.
    run gcloud run deploy "$SERVICE" --image "$IMAGE" "${GCLOUD_WHERE[@]}" "${ENV_FLAGS[@]}" \
        --revision-suffix "$(revision_suffix "$VERSION")" --quiet
    run gcloud run services update-traffic "$SERVICE" "${GCLOUD_WHERE[@]}" \
        --to-revisions "$REVISION=100" --quiet
    SERVICE_URL="$(capture "https://$SERVICE-dry-run.a.run.app" gcloud run services describe "$SERVICE" \
        "${GCLOUD_WHERE[@]}" --format 'value(status.url)')"
    read -r -a SMOKE_EXTRA <<<"${SMOKE_ARGS:---register}"
    smoke "$IMAGE" "$SERVICE_URL" "${SMOKE_EXTRA[@]}" || rollback "smoke test failed"
    log "deployed $REVISION to $ENVIRONMENT"
    urls "$SERVICE_URL"
    exit 0
fi

# 5. Production: a candidate without traffic, smoke-tested on its own URL.
run gcloud run deploy "$SERVICE" --image "$IMAGE" "${GCLOUD_WHERE[@]}" "${ENV_FLAGS[@]}" \
    --revision-suffix "$(revision_suffix "$VERSION")" --no-traffic --tag candidate --quiet
SERVICE_URL="$(capture "https://$SERVICE-dry-run.a.run.app" gcloud run services describe "$SERVICE" \
    "${GCLOUD_WHERE[@]}" --format 'value(status.url)')"
# A tag's URL is the service URL with "TAG---" in front of the host; behind
# the load balancer the candidate is candidate.API_DOMAIN.
CANDIDATE_URL="${SERVICE_URL/https:\/\//https://candidate---}"
if [ -n "$API_DOMAIN" ]; then
    SERVICE_URL="https://$API_DOMAIN"
    CANDIDATE_URL="https://candidate.$API_DOMAIN"
fi
# The gate's bearer token for /metrics, into a header file (never traced).
if [ -z "${METRICS_TOKEN:-}" ]; then
    METRICS_TOKEN="$(capture dry-run-metrics-token gcloud secrets versions access latest \
        --secret clarity-metrics-token --project "$PROJECT")"
fi
(umask 077 && printf 'Authorization: Bearer %s\n' "$METRICS_TOKEN" >"$TMP/metrics-auth")
if ! smoke "$IMAGE" "$CANDIDATE_URL" --read-only; then
    run gcloud run services update-traffic "$SERVICE" "${GCLOUD_WHERE[@]}" --remove-tags candidate --quiet || true
    die "candidate $REVISION failed its smoke test; no traffic was moved"
fi

for pct in $CANARY_STEPS; do
    run gcloud run services update-traffic "$SERVICE" "${GCLOUD_WHERE[@]}" \
        --to-revisions "$REVISION=$pct" --quiet || rollback "shifting $pct % failed"
    gate "$pct" || rollback "health gate at $pct % failed"
done
log "deployed $REVISION to production (100 %); previous revision $PREVIOUS kept for rollback"
urls "$SERVICE_URL"
