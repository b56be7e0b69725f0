# shellcheck shell=bash
# Shared by scripts/deploy.sh and scripts/rollback.sh (sourced, not run).
#
# Every command that touches the outside world (docker, gcloud, curl, sleep)
# goes through `run` or `capture`, so that `--dry-run` prints the exact
# command sequence — one `+ command` line each, shell-quoted, on the script's
# standard output (file descriptor 3, so that lines printed inside `$(...)`
# keep their place) — and runs nothing. The trace is printed in real runs too.
# Secrets are never printed: the value after --token is masked.

DRY_RUN=0

log() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '%s (dry run): %s\n' "${SCRIPT_NAME:-deploy}" "$*" >&2
    else
        printf '%s: %s\n' "${SCRIPT_NAME:-deploy}" "$*" >&2
    fi
}
die() { log "error: $*"; exit 1; }

# One argument as a shell word in QUOTED: bare when it holds only safe
# characters, otherwise in single quotes. (No subshell: show runs per command.)
quote() {
    case "$1" in
        "" | *[!A-Za-z0-9_./:=,@%+-]*) QUOTED="'${1//\'/\'\\\'\'}'" ;;
        *) QUOTED="$1" ;;
    esac
}

# Print a command the way a shell would read it, with secrets masked.
show() {
    local out="+" arg mask=0
    for arg in "$@"; do
        if [ "$mask" = 1 ]; then
            arg="***"
            mask=0
        elif [ "$arg" = "--token" ]; then
            mask=1
        fi
        quote "$arg"
        out="$out $QUOTED"
    done
    printf '%s\n' "$out" >&3
}

# Run a command (or, with --dry-run, only print it).
run() {
    show "$@"
    if [ "$DRY_RUN" = 1 ]; then
        return 0
    fi
    "$@"
}

# Run a command and print its standard output, for `$(...)`. With --dry-run
# the command is only traced and PLACEHOLDER, the first argument, stands in
# for its output.
capture() {
    local placeholder="$1"
    shift
    show "$@"
    if [ "$DRY_RUN" = 1 ]; then
        printf '%s\n' "$placeholder"
        return 0
    fi
    "$@"
}

# Per-environment settings. Every one can be overridden from the environment
# (CI sets GOOGLE_CLOUD_PROJECT, for example); defaults match config/env.* and
# deploy/terraform/environments/*. Sets globals for the calling script.
# shellcheck disable=SC2034
env_settings() {
    local env="$1" short
    case "$env" in
        development) short=dev; SERVICE_DEFAULT=clarity-backend-dev ;;
        staging) short=staging; SERVICE_DEFAULT=clarity-backend-staging ;;
        production) short=prod; SERVICE_DEFAULT=clarity-backend ;;
        *) return 1 ;;
    esac
    PROJECT="${GOOGLE_CLOUD_PROJECT:-clarity-loop-$short}"
    REGION="${GOOGLE_CLOUD_REGION:-us-central1}"
    SERVICE="${CLOUD_RUN_SERVICE:-$SERVICE_DEFAULT}"
    REGISTRY="${REGISTRY:-$REGION-docker.pkg.dev/$PROJECT/clarity}"
    RUN_SA="${RUN_SERVICE_ACCOUNT:-clarity-run@$PROJECT.iam.gserviceaccount.com}"
    NETWORK="${VPC_NETWORK:-clarity-$short}"
    SUBNET="${VPC_SUBNET:-clarity-$short}"
    MIGRATE_JOB="${MIGRATE_JOB:-clarity-migrate}"
    # Production is reached only through the load balancer (deploy/terraform
    # lb.tf): the API at https://API_DOMAIN, the candidate revision at
    # https://candidate.API_DOMAIN. Empty: the run.app URLs.
    if [ "$env" = production ]; then
        API_DOMAIN="${API_DOMAIN-api.clarity.example.com}"
    else
        API_DOMAIN="${API_DOMAIN:-}"
    fi
    return 0
}

# A version string as a Cloud Run revision suffix: "v", then lowercase
# letters, digits and hyphens, at most 31 characters in all, so that
# SERVICE-SUFFIX stays within the 63 a revision name may have.
revision_suffix() {
    local s
    s="$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9-' '-')"
    s="${s:0:30}"
    while [ "${s%-}" != "$s" ]; do
        s="${s%-}"
    done
    printf 'v%s' "$s"
}

# `clarity smoke` from a given image, so the check runs the same code on any
# runner. Extra arguments are passed on (--read-only, --register). With
# SMOKE_TOKEN set, the container gets it by name (`-e SMOKE_TOKEN`), so the
# token is neither printed nor visible in a process list, and the smoke test
# adds an auth round trip with it.
smoke() {
    local image="$1" url="$2" pass=()
    shift 2
    if [ -n "${SMOKE_TOKEN:-}" ]; then
        export SMOKE_TOKEN
        pass=(-e SMOKE_TOKEN)
    fi
    if [ -n "${METRICS_TOKEN:-}" ]; then
        export METRICS_TOKEN # /health's checks (production shows them to it only)
        pass+=(-e METRICS_TOKEN)
    fi
    run docker run --rm "${pass[@]}" "$image" smoke --url "$url" "$@"
}
