#!/usr/bin/env bash
# Roll a Cloud Run service back to an earlier revision (docs/deployment.md).
#
# usage: scripts/rollback.sh [--dry-run] {staging|production} [REVISION]
#
# Without REVISION the target is the revision created just before the one
# that serves now. All traffic moves to the target at once (a rollback is no
# time for a canary), then `clarity smoke --read-only` from the target's own
# image verifies /liveness, /readiness and /health on the public URL; the
# script exits 1 if that check fails. Migrations are not reversed: they are
# expand-only, so an older revision runs on the newer schema.
#
# --dry-run prints the exact command sequence and runs nothing. Settings as
# for scripts/deploy.sh (GOOGLE_CLOUD_PROJECT, GOOGLE_CLOUD_REGION,
# CLOUD_RUN_SERVICE, SMOKE_TOKEN).
set -euo pipefail

SCRIPT_NAME=rollback.sh
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy-lib.sh
. "$HERE/deploy-lib.sh"
exec 3>&1

usage() {
    echo "usage: scripts/rollback.sh [--dry-run] {staging|production} [REVISION]" >&2
    exit 2
}

ENVIRONMENT=""
TARGET=""
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h | --help) usage ;;
        -*) log "unknown option $arg"; usage ;;
        *)
            if [ -z "$ENVIRONMENT" ]; then
                ENVIRONMENT="$arg"
            elif [ -z "$TARGET" ]; then
                TARGET="$arg"
            else
                usage
            fi
            ;;
    esac
done
case "$ENVIRONMENT" in
    staging | production) env_settings "$ENVIRONMENT" ;;
    *) log "rollback is for staging and production, not '$ENVIRONMENT'"; usage ;;
esac
case "$TARGET" in
    *[!a-z0-9-]*) die "REVISION '$TARGET' is not a Cloud Run revision name" ;;
esac
GCLOUD_WHERE=(--region "$REGION" --project "$PROJECT")
NL=$'\n'

if [ -z "$TARGET" ]; then
    CURRENT="$(capture "$SERVICE-current" gcloud run services describe "$SERVICE" "${GCLOUD_WHERE[@]}" \
        --format 'value(status.traffic[0].revisionName)')"
    REVISIONS="$(capture "$SERVICE-current$NL$SERVICE-previous" gcloud run revisions list \
        --service "$SERVICE" "${GCLOUD_WHERE[@]}" --sort-by '~metadata.creationTimestamp' \
        --limit 20 --format 'value(metadata.name)')"
    seen=0
    for rev in $REVISIONS; do
        if [ "$seen" = 1 ]; then
            TARGET="$rev"
            break
        fi
        [ "$rev" = "$CURRENT" ] && seen=1
    done
    [ -n "$TARGET" ] || die "no revision older than $CURRENT to roll back to"
fi

log "rolling $SERVICE ($ENVIRONMENT) back to $TARGET"
run gcloud auth configure-docker "$REGION-docker.pkg.dev" --quiet
run gcloud run services update-traffic "$SERVICE" "${GCLOUD_WHERE[@]}" --to-revisions "$TARGET=100" --quiet

# Verify with the smoke test of the version now serving.
URL="$(capture "https://$SERVICE-dry-run.a.run.app" gcloud run services describe "$SERVICE" \
    "${GCLOUD_WHERE[@]}" --format 'value(status.url)')"
if [ -n "$API_DOMAIN" ]; then
    URL="https://$API_DOMAIN" # production: only the load balancer reaches it
fi
IMAGE="$(capture "$REGISTRY/clarity:rollback-target" gcloud run revisions describe "$TARGET" \
    "${GCLOUD_WHERE[@]}" --format 'value(spec.containers[0].image)')"
if ! smoke "$IMAGE" "$URL" --read-only; then
    die "traffic is on $TARGET but its smoke test fails: see the report above and docs/deployment.md"
fi
log "rolled back to $TARGET; /health is healthy"
