"""The README's cluster set-up, automated and safe to re-run (`make setup`, `sh setup.sh`).

In order: the tools it needs, the Google Cloud APIs, kubectl credentials for the
cluster, a check that Workload Identity is on for the cluster and every node pool
(and, for it, that the bucket has uniform bucket-level access), the namespace, the
pods' access to the bucket (deploy/access.py: their Kubernetes ServiceAccount bound
directly, or with --auth=key-file a Google service account and a key Secret), the
Artifact Registry repository that `make push` pushes to, readable by the nodes, and
the service account CLOUD_BUILD=1 builds run as.

    python3 -m deploy.gke_setup --project=P --location=us-central1 --cluster=kuka \\
        --bucket=B [--namespace=rl] [--auth=key-file] [--dry-run]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from deploy import access, commands
from deploy.commands import Failed, query, run
from deploy.kinds import AUTHS

APIS = [
    "container.googleapis.com",  # the cluster
    "artifactregistry.googleapis.com",  # the image
    "cloudbuild.googleapis.com",  # CLOUD_BUILD=1
    "iam.googleapis.com",  # the service account
    "iamcredentials.googleapis.com",  # Workload Identity's tokens
    "storage.googleapis.com",  # the bucket
]
# Nodes pull the image with their own service account.
REGISTRY_ROLE = "roles/artifactregistry.reader"
# `gcloud components install` refuses where gcloud came from a package manager (apt,
# Cloud Shell): there the tools are packages of Google's apt repository.
TOOLS = {
    "gcloud": "https://cloud.google.com/sdk/docs/install",
    "kubectl": "gcloud components install kubectl, or sudo apt-get install kubectl",
    "gke-gcloud-auth-plugin": "gcloud components install gke-gcloud-auth-plugin, or sudo "
    "apt-get install google-cloud-cli-gke-gcloud-auth-plugin",
}


def region(location: str) -> str:
    """us-central1-a -> us-central1; a region stays as it is."""
    parts = location.split("-")
    return "-".join(parts[:-1]) if len(parts) == 3 and len(parts[-1]) == 1 else location


def check_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise Failed(f"{missing[0]} is not installed (install it with: {TOOLS[missing[0]]})")


def check_workload_identity(args) -> list[str]:
    """The node pools' service accounts; Failed, with the fix, if Workload Identity is off."""
    where = [f"--location={args.location}", f"--project={args.project}"]
    pool = f"{args.project}.svc.id.goog"
    code, found = query(
        [
            "gcloud",
            "container",
            "clusters",
            "describe",
            args.cluster,
            *where,
            "--format=value(workloadIdentityConfig.workloadPool)",
        ]
    )
    if code != 0:
        raise Failed(
            f"cannot read cluster {args.cluster} in {args.location} (project {args.project})"
        )
    if args.auth == "workload-identity" and found != pool:
        raise Failed(
            f"Workload Identity is off for cluster {args.cluster}: run `gcloud container clusters "
            f"update {args.cluster} {' '.join(where)} --workload-pool={pool}`, or use AUTH=key-file"
        )
    code, pools = query(
        [
            "gcloud",
            "container",
            "node-pools",
            "list",
            f"--cluster={args.cluster}",
            *where,
            "--format=value(name,config.workloadMetadataConfig.mode,config.serviceAccount)",
        ]
    )
    accounts = []
    for line in pools.splitlines():
        name, mode, account = (line.split("\t") + ["", "", ""])[:3]
        if args.auth == "workload-identity" and mode != "GKE_METADATA":
            raise Failed(
                f"node pool {name} does not give pods Workload Identity: run `gcloud container "
                f"node-pools update {name} --cluster={args.cluster} {' '.join(where)} "
                "--workload-metadata=GKE_METADATA`"
            )
        accounts.append(account or "default")
    return sorted(set(accounts))


def project_number(args) -> str:
    code, number = query(
        ["gcloud", "projects", "describe", args.project, "--format=value(projectNumber)"]
    )
    if code != 0 or not number:
        raise Failed(f"cannot read the number of project {args.project}")
    return number


def check_uniform_access(args) -> None:
    """Workload Identity's principals may be granted roles on a bucket only with uniform access."""
    code, found = query(
        [
            "gcloud",
            "storage",
            "buckets",
            "describe",
            f"gs://{args.bucket}",
            f"--project={args.project}",
            "--format=value(uniform_bucket_level_access)",
        ]
    )
    if code != 0:
        raise Failed(f"cannot read bucket gs://{args.bucket}: create it first with `make bucket`")
    if found.lower() != "true":
        raise Failed(
            f"bucket gs://{args.bucket} has fine-grained access control, and Workload Identity "
            f"needs uniform access: run `gcloud storage buckets update gs://{args.bucket} "
            "--uniform-bucket-level-access`, or use AUTH=key-file"
        )


def apply_stdin(argv: list[str], dry_run: bool) -> None:
    """`ARGV | kubectl apply -f -`: kubectl renders an object, the cluster gets it."""
    print(("" if dry_run else "+ ") + " ".join(argv) + " | kubectl apply -f -", flush=True)
    if dry_run:
        return
    rendered = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    run(["kubectl", "apply", "-f", "-"], dry_run=False, stdin=rendered, echo=False)


def pods_access(args, number: str) -> None:
    """The pods' role on the bucket: as their Kubernetes ServiceAccount, or through a key."""
    gsa = ""
    if args.auth == "workload-identity":
        member = access.principal(number, args.project, args.namespace)
    else:
        gsa = access.service_account(access.POD_GSA, args.project, "Kuka pods", args.dry_run)
        member = f"serviceAccount:{gsa}"
    access.retrying(access.bucket_binding(args.bucket, member, access.BUCKET_ROLE), args.dry_run)
    if gsa:
        key_secret(args, gsa)


def key_secret(args, gsa: str) -> None:
    """AUTH=key-file: a key of the GSA, straight into the gcp-credentials Secret."""
    with tempfile.TemporaryDirectory() as tmp:  # the key never leaves this directory
        key = os.path.join(tmp, "key.json")
        access.retrying(
            ["gcloud", "iam", "service-accounts", "keys", "create", key, f"--iam-account={gsa}"],
            args.dry_run,
        )
        apply_stdin(
            [
                "kubectl",
                "-n",
                args.namespace,
                "create",
                "secret",
                "generic",
                "gcp-credentials",
                f"--from-file=key.json={key}",
                "--dry-run=client",
                "-o",
                "yaml",
            ],
            args.dry_run,
        )


def registry(args, node_accounts: list[str], where: list[str]) -> None:
    exists = not args.dry_run and (
        query(["gcloud", "artifacts", "repositories", "describe", args.repository, *where])[0] == 0
    )
    if not exists:
        run(
            [
                "gcloud",
                "artifacts",
                "repositories",
                "create",
                args.repository,
                *where,
                "--repository-format=docker",
                "--description=Kuka trainer images",
            ],
            args.dry_run,
        )
    for account in node_accounts:
        member = f"serviceAccount:{account}"
        run(access.repository_binding(args.repository, where, member, REGISTRY_ROLE), args.dry_run)


def setup(args) -> None:
    """Every step, in order; Failed stops at the first that cannot go on."""
    if not args.dry_run:
        check_tools()
    run(["gcloud", "services", "enable", *APIS, f"--project={args.project}"], args.dry_run)
    run(
        [
            "gcloud",
            "container",
            "clusters",
            "get-credentials",
            args.cluster,
            f"--location={args.location}",
            f"--project={args.project}",
        ],
        args.dry_run,
    )
    # A dry run contacts nothing, so it names what it would read instead.
    accounts, number = ["NODE_SERVICE_ACCOUNT"], "PROJECT_NUMBER"
    if not args.dry_run:
        pools, number = check_workload_identity(args), project_number(args)
        default = f"{number}-compute@developer.gserviceaccount.com"
        accounts = sorted({default if a == "default" else a for a in pools})
        if args.auth == "workload-identity":
            check_uniform_access(args)
    apply_stdin(
        ["kubectl", "create", "namespace", args.namespace, "--dry-run=client", "-o", "yaml"],
        args.dry_run,
    )
    pods_access(args, number)
    where = [f"--location={region(args.location)}", f"--project={args.project}"]
    registry(args, accounts, where)
    access.builder(args, where)
    if not args.dry_run:
        print(
            f"Cluster {args.cluster} is ready: namespace {args.namespace}, bucket "
            f"gs://{args.bucket} via {args.auth}, images in {region(args.location)}"
            f"-docker.pkg.dev/{args.project}/{args.repository}.",
            file=sys.stderr,
        )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m deploy.gke_setup", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--project", required=True, help="the Google Cloud project")
    p.add_argument(
        "--location", required=True, help="the cluster's region (Autopilot), or zone (Standard)"
    )
    p.add_argument("--cluster", required=True, help="the GKE cluster's name")
    p.add_argument("--bucket", required=True, help="the bucket the runs go to")
    p.add_argument("--namespace", default="rl", help="the namespace the pods run in")
    p.add_argument("--auth", default="workload-identity", choices=AUTHS, help="bucket access")
    p.add_argument("--repository", default="kuka", help="the Artifact Registry repository")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run none")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        setup(args)
    except Failed as e:
        return commands.fail("setup", str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
