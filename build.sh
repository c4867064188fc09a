#!/usr/bin/env bash
# Builds the trainer image and pushes it: with a local Docker engine, or with Cloud
# Build when there is none (--cloud-build). --dry-run prints the commands instead.
#   IMAGE=gcr.io/PROJECT/kuka-trainer ./build.sh [--push] [--cloud-build] [--dry-run]
set -euo pipefail
cd "$(dirname "$0")"

die() { echo "build.sh: $*" >&2; exit 2; }
run() { if [ -n "$dry_run" ]; then printf '%q ' "$@"; echo; else "$@"; fi; }

image="${IMAGE:?IMAGE is not set, e.g. IMAGE=gcr.io/my-project/kuka-trainer}"
push="" cloud="" dry_run="${DRY_RUN:-}"
for arg in "$@"; do
  case "$arg" in
    --push) push=1 ;;
    --cloud-build) cloud=1 ;;
    --dry-run) dry_run=1 ;;
    -h | --help) sed -n '2,4p' "$0"; exit 0 ;;
    *) die "unknown argument '$arg'" ;;
  esac
done

# The tag names the commit; a dirty tree gets a marker so it is never mistaken for one.
tag="${TAG:-$(git describe --tags --always --dirty=-dirty 2>/dev/null || echo dev)}"
echo "image: $image:$tag" >&2

if [ -n "$cloud" ]; then
  # Cloud Build pushes the image it built.
  run gcloud builds submit --config=docker/cloudbuild.yaml --substitutions="_IMAGE=$image:$tag" .
  exit 0
fi
run docker build -f docker/trainer.Dockerfile -t "$image:$tag" .
if [ -n "$push" ]; then
  run docker push "$image:$tag"
fi
