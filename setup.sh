#!/usr/bin/env bash
# The tutorial's cluster set-up, automated and safe to re-run: credentials for the
# cluster, the namespace, and bucket access for the pods through Workload Identity
# (default) or a key-file Secret. --dry-run prints the commands instead.
#   PROJECT=p ZONE=z CLUSTER=c BUCKET=b [NAMESPACE=rl] ./setup.sh [--auth=key-file] [--dry-run]
set -euo pipefail

die() { echo "setup.sh: $*" >&2; exit 2; }
run() { if [ -n "$dry_run" ]; then printf '%q ' "$@"; echo; else "$@"; fi; }

project="${PROJECT:?PROJECT is not set}"
zone="${ZONE:?ZONE is not set}"
cluster="${CLUSTER:?CLUSTER is not set}"
bucket="${BUCKET:?BUCKET is not set}"
namespace="${NAMESPACE:-rl}"
auth="workload-identity" dry_run="${DRY_RUN:-}"
for arg in "$@"; do
  case "$arg" in
    --auth=*) auth="${arg#--auth=}" ;;
    --dry-run) dry_run=1 ;;
    -h | --help) sed -n '2,6p' "$0"; exit 0 ;;
    *) die "unknown argument '$arg'" ;;
  esac
done
[ "$auth" = workload-identity ] || [ "$auth" = key-file ] || die "--auth is workload-identity or key-file"
if [ -z "$dry_run" ]; then
  for tool in gcloud kubectl; do
    command -v "$tool" >/dev/null || die "$tool is not installed (see the README's cluster section)"
  done
fi

gsa="kuka-trainer@$project.iam.gserviceaccount.com"
run gcloud container clusters get-credentials "$cluster" --zone="$zone" --project="$project"
# Idempotent: render the namespace and apply it.
if [ -n "$dry_run" ]; then
  echo "kubectl create namespace $namespace --dry-run=client -o yaml | kubectl apply -f -"
else
  kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f -
fi
if [ -n "$dry_run" ] || ! gcloud iam service-accounts describe "$gsa" --project="$project" >/dev/null 2>&1; then
  run gcloud iam service-accounts create kuka-trainer --project="$project" \
    --display-name="Kuka trainer pods"
fi
run gcloud storage buckets add-iam-policy-binding "gs://$bucket" \
  --member="serviceAccount:$gsa" --role=roles/storage.objectAdmin

if [ "$auth" = workload-identity ]; then
  run gcloud iam service-accounts add-iam-policy-binding "$gsa" --project="$project" \
    --role=roles/iam.workloadIdentityUser \
    --member="serviceAccount:$project.svc.id.goog[$namespace/kuka-trainer]"
else
  key="$(mktemp -d)/key.json"
  run gcloud iam service-accounts keys create "$key" --iam-account="$gsa"
  if [ -n "$dry_run" ]; then
    echo "kubectl -n $namespace create secret generic gcp-credentials --from-file=key.json=$key --dry-run=client -o yaml | kubectl apply -f -"
  else
    kubectl -n "$namespace" create secret generic gcp-credentials --from-file=key.json="$key" \
      --dry-run=client -o yaml | kubectl apply -f -
    rm -f "$key"
  fi
fi
echo "Cluster $cluster is ready: namespace $namespace, bucket gs://$bucket via $auth." >&2
