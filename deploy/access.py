"""Who may do what, for `make setup`: the pods on the bucket, Cloud Build on the registry.

The pods reach the bucket as their Kubernetes ServiceAccount, bound in IAM directly
(Workload Identity Federation for GKE's principal identifier): no Google service
account, no key, no annotation. AUTH=key-file keeps a Google service account and a key
for clusters without Workload Identity. CLOUD_BUILD=1 builds run as their own service
account, kuka-builder, with only the roles a build needs (build.sh names it).

IAM is eventually consistent: a service account created a moment ago may not be
known to a binding yet, so bindings are retried for a bounded time.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time

from deploy.commands import Failed, query, run

# The pods list, read, write and delete the run's objects: objectAdmin has all of
# that, and the trainer needs nothing more (its bucket check lists one object).
BUCKET_ROLE = "roles/storage.objectAdmin"
KSA = "kuka-trainer"  # k8s/base/serviceaccount.yaml
POD_GSA = "kuka-trainer"  # AUTH=key-file: the Google service account whose key the pods use
BUILDER = "kuka-builder"  # build.sh passes it to `gcloud builds submit --service-account`
# A build with its own service account must log to Cloud Logging (docker/cloudbuild.yaml
# says CLOUD_LOGGING_ONLY), read the source build.sh stages in the bucket, and push.
BUILDER_LOG_ROLE = "roles/logging.logWriter"
BUILDER_SOURCE_ROLE = "roles/storage.objectViewer"
BUILDER_PUSH_ROLE = "roles/artifactregistry.writer"
# Google: a new service account can take a minute or more to be usable in bindings.
IAM_ATTEMPTS = 13
IAM_PAUSE = 10.0
# What IAM answers while it does not know an account yet (gcloud's projects, artifacts
# and storage commands word it differently).
_NOT_YET = re.compile(r"does not exist|NOT_FOUND|not found|INVALID_ARGUMENT|HTTPError 400")


def principal(project_number: str, project: str, namespace: str) -> str:
    """The IAM principal of the pods' Kubernetes ServiceAccount (Workload Identity Federation)."""
    return (
        f"principal://iam.googleapis.com/projects/{project_number}/locations/global/"
        f"workloadIdentityPools/{project}.svc.id.goog/subject/ns/{namespace}/sa/{KSA}"
    )


def email(name: str, project: str) -> str:
    return f"{name}@{project}.iam.gserviceaccount.com"


def retrying(
    argv: list[str], dry_run: bool, attempts: int = IAM_ATTEMPTS, pause: float = IAM_PAUSE
) -> None:
    """Runs an IAM command, again while IAM does not know a new account yet; Failed after."""
    print(("" if dry_run else "+ ") + shlex.join(argv), flush=True)
    if dry_run:
        return
    for attempt in range(1, attempts + 1):
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode == 0:
            return
        last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        if attempt == attempts or not _NOT_YET.search(result.stderr):
            sys.stderr.write(result.stderr)
            raise Failed(f"{argv[0]} {argv[1]} failed with exit {result.returncode}: {last}")
        print(
            f"IAM does not know the account yet ({last.strip()}); new accounts take up to a "
            f"minute or two. Retrying in {pause:.0f} s ({attempt}/{attempts - 1})",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(pause)


def service_account(name: str, project: str, display_name: str, dry_run: bool) -> str:
    """Creates the Google service account NAME unless it exists; its email."""
    address = email(name, project)
    describe = ["gcloud", "iam", "service-accounts", "describe", address, f"--project={project}"]
    if dry_run or query(describe)[0] != 0:
        run(
            [
                "gcloud",
                "iam",
                "service-accounts",
                "create",
                name,
                f"--project={project}",
                f"--display-name={display_name}",
            ],
            dry_run,
        )
    return address


def bucket_binding(bucket: str, member: str, role: str) -> list[str]:
    return [
        "gcloud",
        "storage",
        "buckets",
        "add-iam-policy-binding",
        f"gs://{bucket}",
        f"--member={member}",
        f"--role={role}",
    ]


def repository_binding(repository: str, where: list[str], member: str, role: str) -> list[str]:
    return [
        "gcloud",
        "artifacts",
        "repositories",
        "add-iam-policy-binding",
        repository,
        *where,
        f"--member={member}",
        f"--role={role}",
    ]


def builder(args, where: list[str]) -> None:
    """kuka-builder: the account CLOUD_BUILD=1 builds run as, with the three roles they need."""
    account = service_account(BUILDER, args.project, "Kuka image builds", args.dry_run)
    member = f"serviceAccount:{account}"
    for argv in (
        [
            "gcloud",
            "projects",
            "add-iam-policy-binding",
            args.project,
            f"--member={member}",
            f"--role={BUILDER_LOG_ROLE}",
            "--condition=None",  # no prompt when the project's policy has conditions
        ],
        bucket_binding(args.bucket, member, BUILDER_SOURCE_ROLE),
        repository_binding(args.repository, where, member, BUILDER_PUSH_ROLE),
    ):
        retrying(argv, args.dry_run)
