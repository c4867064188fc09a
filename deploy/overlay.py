"""Writes one run's kustomize overlay: k8s/overlays/local/NAME/kustomization.yaml.

The overlay holds the user's values (namespace, image, bucket, run, trainer flags)
so that no tracked manifest changes at deploy time. It is JSON, which is YAML, so
no YAML library is needed: this runs with any Python 3.9+, before .venv exists.

    python3 -m deploy.overlay --kind=job --name=NAME --run=RUN --bucket=B --image=I \\
        --tag=T [--dry-run] -- [TRAINER FLAGS...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from deploy import commands
from deploy.kinds import (
    AUTHS,
    DEADLINES,
    GPU_JOBS,
    GPU_PODS,
    KINDS,
    POD_SPECS,
    QUEUE_LABELS,
    ROLES,
    RUN_JOBS,
    Kind,
    check_env,
    check_queue,
    check_run,
    folder,
    runtime_name,
)
from trainer.config import RoleConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K8S = os.path.join(ROOT, "k8s")
# The image name the tracked manifests use; `images:` replaces it.
TEMPLATE_IMAGE = "ghcr.io/example/kuka-trainer"


def _patches(args, spec: Kind, flags: list[str]) -> list[dict]:
    patches = []
    if args.kind in ROLES:
        kind, name, job = ROLES[args.kind]
        counts = [
            {"op": "replace", "path": f"{job}/{field}", "value": args.collectors}
            for field in ("parallelism", "completions")
        ]
        patches.append(_json_patch(kind, name, counts))
    elif args.kind == "tune":  # the trial keeps its parameter flags; the user's are added
        rename = {"op": "replace", "path": "/metadata/name", "value": f"{spec.prefix}-{args.run}"}
        logdir = {
            "op": "replace",
            "path": f"{spec.args_path}/1",
            "value": f"--logdir=gs://{args.bucket}/runs",
        }
        added = [{"op": "add", "path": f"{spec.args_path}/-", "value": flag} for flag in flags]
        counts = [
            {"op": "replace", "path": "/spec/maxTrialCount", "value": args.max_trials},
            {"op": "replace", "path": "/spec/parallelTrialCount", "value": args.parallel_trials},
        ]
        patches.append(_json_patch(spec.resource, spec.prefix, [rename, logdir, *added, *counts]))
    else:
        container_args = [
            spec.command,
            f"--logdir=gs://{args.bucket}/runs",
            f"--run={args.run}",
            "--staging_dir=/scratch/runs",
            *flags,
        ]
        patches.append(
            _json_patch(
                spec.resource,
                spec.prefix,
                [
                    {
                        "op": "replace",
                        "path": "/metadata/name",
                        "value": f"{spec.prefix}-{args.run}",
                    },
                    {"op": "replace", "path": spec.args_path, "value": container_args},
                ],
            )
        )
    # Workload Identity needs no annotation: `make setup` grants the bucket role to the
    # ServiceAccount itself (its principal:// identity), not to a Google service account.
    return patches


def _json_patch(kind: str, name: str, operations: list[dict]) -> dict:
    return {"target": {"kind": kind, "name": name}, "patch": json.dumps(operations)}


def _run_target(kind: str, jobs: str = "") -> dict:
    """The patch target of the run's objects of `kind` (its Jobs by their name label)."""
    return {"kind": kind, "labelSelector": jobs or RUN_JOBS} if kind == "Job" else {"kind": kind}


def _setting_patches(args) -> list[dict]:
    """DEADLINE, ACCELERATOR, QUEUE and PRIORITY_CLASS over the components' defaults."""
    ops: dict[str, list[dict]] = {kind: [] for kind in [*POD_SPECS, *DEADLINES]}
    if args.deadline:
        for kind, paths in DEADLINES.items():
            ops[kind] += [{"op": "replace", "path": p, "value": args.deadline} for p in paths]
    if args.priority_class:
        for kind, pods in POD_SPECS.items():
            ops[kind] += [
                {"op": "replace", "path": f"{pod}/priorityClassName", "value": args.priority_class}
                for pod in pods
            ]
        # A TrainJob runs its class's own runtime, named after it (components/priority).
        runtime = runtime_name(args.priority_class)
        ops["TrainingRuntime"].append({"op": "replace", "path": "/metadata/name", "value": runtime})
        ops["TrainJob"].append({"op": "replace", "path": "/spec/runtimeRef/name", "value": runtime})
    patches = [
        {"target": _run_target(kind), "patch": json.dumps(operations)}
        for kind, operations in ops.items()
        if operations
    ]
    if args.gpu and args.accelerator:  # only the pods the gpu component gives a GPU
        for kind, pods in GPU_PODS.items():
            key = "nodeSelector/cloud.google.com~1gke-accelerator"
            operations = [
                {"op": "replace", "path": f"{pod}/{key}", "value": args.accelerator} for pod in pods
            ]
            patches.append({"target": _run_target(kind, GPU_JOBS), "patch": json.dumps(operations)})
    if args.queue:
        for kind, path in QUEUE_LABELS.items():
            label = [{"op": "replace", "path": path, "value": args.queue}]
            patches.append({"target": {"kind": kind}, "patch": json.dumps(label)})
    return patches


def kustomization(args, flags: list[str], directory: str) -> dict:
    """The kustomization.yaml of the overlay in `directory`, as a dict."""
    k8s = lambda path: os.path.relpath(os.path.join(K8S, path), directory)  # noqa: E731
    components = [k8s("components/common")]
    if args.auth == "key-file":
        components.append(k8s("components/key-file"))
    if args.gpu and args.kind != "render":
        components.append(k8s("components/gpu"))
    if args.spot and args.kind != "render":
        components.append(k8s("components/spot"))
    if args.queue:
        components.append(k8s("components/kueue"))
    if args.priority_class:
        components.append(k8s("components/priority"))
    images = [{"name": TEMPLATE_IMAGE, "newName": args.image, "newTag": args.tag}]
    if args.gpu:
        images.append(
            {"name": "kuka-trainer-gpu", "newName": args.image, "newTag": f"{args.tag}-gpu"}
        )
    result: dict = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": args.namespace,
        "resources": [k8s(folder(args.kind))],
        "components": components,
        "images": images,
        "patches": _patches(args, KINDS[args.kind], flags) + _setting_patches(args),
    }
    generators = []
    if args.kind != "render":
        generators.append(
            {
                "name": "kuka-run",
                "behavior": "replace",
                "literals": [f"logdir=gs://{args.bucket}/runs"],
            }
        )
    if args.kind in ROLES:
        generators.append({"name": "kuka-flags", "behavior": "replace", "files": ["flags.txt"]})
    if generators:
        result["configMapGenerator"] = generators
    return result


def files(args, flags: list[str], directory: str) -> dict[str, str]:
    """Every file of the overlay in `directory`: name -> text."""
    out = {
        "kustomization.yaml": "# Generated by deploy/overlay.py; not tracked by git.\n"
        + json.dumps(kustomization(args, flags, directory), indent=2)
        + "\n"
    }
    if args.kind in ROLES:
        # Every role reads the run's flags from this file (a ConfigMap), one per line.
        lines = [
            f"--logdir=gs://{args.bucket}/runs",
            f"--run={args.run}",
            "--staging_dir=/scratch/runs",
        ]
        out["flags.txt"] = "\n".join([*lines, *flags]) + "\n"
    return out


def write(directory: str, contents: dict[str, str], dry_run: bool) -> None:
    """Writes the overlay's files, or with `dry_run` prints them and writes nothing."""
    for name, text in contents.items():
        path = os.path.join(directory, name)
        if dry_run:
            print(f"# would write {path}:\n{text}", end="")
            continue
        os.makedirs(directory, exist_ok=True)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m deploy.overlay",
        description="Write one run's kustomize overlay under k8s/overlays/local/NAME. "
        "Arguments after -- are trainer flags.",
    )
    p.add_argument("--kind", required=True, choices=sorted(KINDS), help="the run's flavour")
    p.add_argument("--name", required=True, help="the overlay's directory name")
    p.add_argument("--run", required=True, help="the run id (names the job and the bucket folder)")
    p.add_argument("--namespace", default="rl", help="the namespace to deploy into")
    p.add_argument("--image", required=True, help="the trainer image, without the tag")
    p.add_argument("--tag", required=True, help="the image tag")
    p.add_argument("--bucket", required=True, help="the bucket; runs go to gs://BUCKET/runs")
    p.add_argument("--auth", default="workload-identity", choices=AUTHS, help="bucket access")
    p.add_argument("--gpu", action="store_true", help="one GPU for the trainer or the learner")
    p.add_argument(
        "--accelerator", default="", help="with --gpu: the GKE accelerator (default nvidia-l4)"
    )
    p.add_argument("--spot", action="store_true", help="the trainer or collectors on Spot VMs")
    p.add_argument("--queue", default="", help="the Kueue LocalQueue that admits the run")
    p.add_argument("--priority-class", default="", help="the pods' PriorityClass")
    p.add_argument(
        "--deadline", type=int, default=0, help="seconds a run may last (default: one day)"
    )
    p.add_argument(
        "--collectors",
        type=int,
        default=RoleConfig.collectors,
        help="distributed: collector pods (default: the trainer's --collectors default)",
    )
    p.add_argument(
        "--out", default=os.path.join(K8S, "overlays", "local"), help="where overlays go"
    )
    p.add_argument("--max-trials", type=int, default=12, help="tune: trials in all")
    p.add_argument("--parallel-trials", type=int, default=3, help="tune: trials at a time")
    p.add_argument("--dry-run", action="store_true", help="print the files instead of writing")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args, flags = parser().parse_args(argv[:split]), argv[split + 1 :]
    try:
        check_run(args.run, args.kind)
        check_env(args.kind, flags)
        if args.queue:
            check_queue(args.queue)
        if args.collectors < 1:
            raise ValueError(f"COLLECTORS must be at least 1, got {args.collectors}")
        if not 1 <= args.parallel_trials <= args.max_trials:
            raise ValueError(
                f"PARALLEL_TRIALS ({args.parallel_trials}) must be 1 to "
                f"MAX_TRIALS ({args.max_trials})"
            )
        if args.deadline < 0:
            raise ValueError(f"DEADLINE must be seconds (1 or more), got {args.deadline}")
    except ValueError as e:
        return commands.fail("overlay", str(e))
    directory = os.path.join(args.out, args.name)
    write(directory, files(args, flags, directory), args.dry_run)
    if not args.dry_run:
        print(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
