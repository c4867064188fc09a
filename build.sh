#!/usr/bin/env bash
# Builds the trainer image and pushes it: with a local Docker engine, or with Cloud
# Build when there is none (--cloud-build). --dry-run prints the commands instead;
# --print-tag prints the tag it would use and exits. GPU=1 builds the GPU image
# (requirements-gpu.txt: tensorflow[and-cuda]), tagged TAG-gpu. --cloud-build needs BUCKET.
#   IMAGE=us-central1-docker.pkg.dev/PROJECT/kuka/kuka-trainer ./build.sh [--push] [--cloud-build] [--dry-run]
set -euo pipefail
cd "$(dirname "$0")"

die() { echo "build.sh: $*" >&2; exit 2; }
run() { if [ -n "$dry_run" ]; then printf '%q ' "$@"; echo; else "$@"; fi; }

# The tag names the commit; a dirty tree's tag adds a hash of its diff, so that a
# tag never names two images and pods may pull it IfNotPresent.
default_tag() {
  local described
  described="$(git describe --tags --always 2>/dev/null || echo dev)"
  if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    described+="-dirty-$(git diff HEAD | sha256sum | cut -c1-8)"
  fi
  echo "$described"
}

push="" cloud="" dry_run="${DRY_RUN:-}"
for arg in "$@"; do
  case "$arg" in
    --push) push=1 ;;
    --cloud-build) cloud=1 ;;
    --dry-run) dry_run=1 ;;
    --print-tag) default_tag; exit 0 ;;
    -h | --help) sed -n '2,6p' "$0"; exit 0 ;;
    *) die "unknown argument '$arg'" ;;
  esac
done
image="${IMAGE:?IMAGE is not set, e.g. IMAGE=us-central1-docker.pkg.dev/my-project/kuka/kuka-trainer}"
if [[ "$image" == *gcr.io/* ]]; then
  echo "build.sh: warning: Container Registry stopped accepting pushes in March 2025; gcr.io works only where Artifact Registry serves it (the default IMAGE is REGION-docker.pkg.dev/PROJECT/kuka/kuka-trainer)" >&2
fi
tag="${TAG:-$(default_tag)}" requirements=requirements.txt
if [ -n "${GPU:-}" ]; then
  tag+="-gpu" requirements=requirements-gpu.txt
fi
echo "image: $image:$tag" >&2

if [ -n "$cloud" ]; then
  # The project: PROJECT, or the one in an Artifact Registry IMAGE (HOST/PROJECT/REPO/NAME).
  project="${PROJECT:-}"
  if [ -z "$project" ] && [[ "$image" == *-docker.pkg.dev/* ]]; then
    project="$(cut -d/ -f2 <<<"$image")"
  fi
  [ -n "$project" ] || die "PROJECT is not set (the project Cloud Build runs in)"
  [ -n "${BUCKET:-}" ] || die "BUCKET is not set (Cloud Build reads the source from gs://BUCKET/cloudbuild/)"
  # The build runs as kuka-builder (make setup gives it exactly the roles a build needs:
  # deploy/access.py), since a new project's default build account may have none, or be
  # none; it reads the source from our bucket, and logs to Cloud Logging only
  # (docker/cloudbuild.yaml). Cloud Build pushes the image it built.
  run gcloud builds submit --project="$project" --config=docker/cloudbuild.yaml \
    --service-account="projects/$project/serviceAccounts/kuka-builder@$project.iam.gserviceaccount.com" \
    --gcs-source-staging-dir="gs://$BUCKET/cloudbuild/source" \
    --substitutions="_IMAGE=$image:$tag,_REQUIREMENTS=$requirements" .
  exit 0
fi
run docker build -f docker/trainer.Dockerfile --build-arg "REQUIREMENTS=$requirements" -t "$image:$tag" .
if [ -n "$push" ]; then
  # Lets docker push to Artifact Registry with gcloud's credentials (idempotent).
  [[ "$image" == *-docker.pkg.dev/* ]] && run gcloud auth configure-docker "${image%%/*}" --quiet
  run docker push "$image:$tag"
fi
