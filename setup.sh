#!/usr/bin/env bash
# The cluster set-up, as `make setup` runs it (deploy/gke_setup.py), for those who
# follow the 2018 tutorial's `sh setup.sh`. It reads the same variables as make:
#   PROJECT=my-project BUCKET=my-kuka-runs sh setup.sh
#   optional: LOCATION (us-central1; a zone only for a Standard zonal cluster), CLUSTER
#   (kuka), NAMESPACE (rl), AUTH (workload-identity, or key-file), REPOSITORY (kuka),
#   DRY_RUN=1 (print the commands, run none).
# `sh` may be dash, so this hands itself to bash first.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
cd "$(dirname "$0")"

die() { echo "setup.sh: $*" >&2; exit 2; }
[ "$#" -eq 0 ] || die "takes no arguments, only variables: PROJECT=... BUCKET=... sh setup.sh"
[ -n "${PROJECT:-}" ] || die "PROJECT is not set: PROJECT=... BUCKET=... sh setup.sh"
[ -n "${BUCKET:-}" ] || die "BUCKET is not set: PROJECT=... BUCKET=... sh setup.sh"

# The Makefile's defaults (tests/test_deploy.py checks both print the same commands).
exec "${PY3:-python3}" -m deploy.gke_setup --project="$PROJECT" \
  --location="${LOCATION:-${ZONE:-us-central1}}" --cluster="${CLUSTER:-kuka}" \
  --bucket="$BUCKET" --namespace="${NAMESPACE:-rl}" --auth="${AUTH:-workload-identity}" \
  --repository="${REPOSITORY:-kuka}" ${DRY_RUN:+--dry-run}
