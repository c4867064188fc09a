"""Cluster queries for the Makefile's kubectl targets, with the standard library only.

    python3 -m deploy.cluster served --namespace=NS [--dry-run] VERB TYPES [KUBECTL ARGS...]
        kubectl -n NS VERB TYPES ... with the types this cluster does not serve left out
        (the JobSet CRD is optional: LAYOUT=jobs exists for clusters without it)
    python3 -m deploy.cluster absent --namespace=NS --hint=TEXT [--selector=SEL]
            [--require=TYPE] [--dry-run] TARGET...
        exit 2 with one line (the object, its state, HINT) if a TARGET (TYPE/NAME, or
        TYPES with --selector) is already in NS: kubectl apply would leave a run's
        object as it is, or refuse the change, since their specs are immutable; exit 1
        if the cluster lacks the type of a TYPE/NAME or --require (before a build)
    python3 -m deploy.cluster label --namespace=NS [--dry-run] KEY=VALUE
        kubectl label namespace NS KEY=VALUE, unless NS has that label already (a
        Kubeflow profile's namespace has Katib's; its users may not patch namespaces)

With --dry-run each prints the kubectl command and contacts nothing. A kubectl that
fails passes its own one-line error and exit code on.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys

from deploy.commands import Failed, fail


def served_types() -> set[str]:
    """The resource types the cluster serves, as kubectl names them (jobs.batch, pods)."""
    result = subprocess.run(
        ["kubectl", "api-resources", "-o", "name"], capture_output=True, text=True
    )
    # kubectl lists what it found and exits 1 when an aggregated API (metrics.k8s.io, say)
    # does not answer (kubectl v0.32.4, pkg/cmd/apiresources): the list is what counts.
    if not result.stdout.strip():
        lines = result.stderr.strip().splitlines() or [f"exit {result.returncode}"]
        raise Failed(f"kubectl api-resources: {lines[-1]}")
    return set(result.stdout.split())


def keep_served(types: list[str], served: set[str]) -> list[str]:
    """`types` without those the cluster lacks; a bare plural (deployments) matches its group's."""
    plurals = {name.split(".", 1)[0] for name in served}
    return [t for t in types if t in served or ("." not in t and t in plurals)]


def state(obj: dict) -> str:
    """A run object's state: its newest true condition (Complete, Failed, Running ...)."""
    status = obj.get("status") or {}
    true = [c.get("type", "") for c in status.get("conditions") or [] if c.get("status") == "True"]
    if true:
        return true[-1]
    if status.get("active"):
        return f"{status['active']} active pods" if status["active"] > 1 else "1 active pod"
    return "no status yet"


def _echo(argv: list[str], dry_run: bool) -> None:
    print(("" if dry_run else "+ ") + shlex.join(argv), flush=True)


def served(args: argparse.Namespace) -> int:
    types = args.types.split(",")
    if not args.dry_run:
        have = keep_served(types, served_types())
        for missing in (t for t in types if t not in have):
            print(f"note: the cluster has no {missing} (its controller is not installed)")
        types = have
        if not types:
            return 0
    argv = ["kubectl", "-n", args.namespace, args.verb, ",".join(types), *args.rest]
    _echo(argv, args.dry_run)
    return 0 if args.dry_run else subprocess.run(argv).returncode


def absent(args: argparse.Namespace) -> int:
    targets = args.targets
    if not args.dry_run:
        have = served_types()
        needed = [args.require] if args.require else []
        if args.selector:
            targets = [",".join(keep_served(t.split(","), have)) for t in targets]
        else:
            needed += [t.split("/", 1)[0] for t in targets]
        for missing in (t for t in needed if not keep_served([t], have)):
            raise Failed(
                f"the cluster serves no {missing}: its controller is not installed "
                "(kubectl api-resources lists what it serves)"
            )
        targets = [t for t in targets if t]
        if not targets:
            return 0  # the cluster holds none of these types
    selector = ["-l", args.selector] if args.selector else []
    argv = ["kubectl", "-n", args.namespace, "get", *targets, *selector, "--ignore-not-found"]
    argv += ["-o", "json"]
    _echo(argv, args.dry_run)
    if args.dry_run:
        return 0
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit {result.returncode}"]
        raise Failed(f"cannot check the cluster for the run: {lines[-1]}")
    found = json.loads(result.stdout) if result.stdout.strip() else {"items": []}
    items = found.get("items", [found])  # one TYPE/NAME: the object itself
    if not items:
        return 0
    obj = items[0]
    return fail(
        args.prog,
        f"{obj['kind']} {obj['metadata']['name']} is already in namespace {args.namespace} "
        f"({state(obj)}); {args.hint}",
    )


def label(args: argparse.Namespace) -> int:
    key, _, value = args.label.partition("=")
    if not args.dry_run:
        get = ["kubectl", "get", "namespace", args.namespace, "-o", "json"]
        result = subprocess.run(get, capture_output=True, text=True)
        found = json.loads(result.stdout) if result.returncode == 0 and result.stdout else {}
        if (found.get("metadata", {}).get("labels") or {}).get(key) == value:
            print(f"namespace {args.namespace} has {args.label} already")
            return 0
    argv = ["kubectl", "label", "namespace", args.namespace, args.label, "--overwrite"]
    _echo(argv, args.dry_run)
    return 0 if args.dry_run else subprocess.run(argv).returncode


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m deploy.cluster")
    parser.add_argument("--prog", default="deploy.cluster", help="names the target in errors")
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("served", help="kubectl VERB on the served TYPES only")
    two = commands.add_parser("absent", help="fail if the run's object exists")
    three = commands.add_parser("label", help="label the namespace unless it has the label")
    for sub in (one, two, three):
        sub.add_argument("--namespace", required=True)
        sub.add_argument("--dry-run", action="store_true")
    one.add_argument("verb", choices=("get", "delete"))
    one.add_argument("types", help="comma-separated resource types")
    one.add_argument("rest", nargs=argparse.REMAINDER, help="more kubectl arguments")
    two.add_argument("--hint", required=True, help="what to do instead (the message's end)")
    two.add_argument("--selector", default="", help="a label selector; TARGETs are TYPES then")
    two.add_argument("--require", default="", help="a type the cluster must serve")
    two.add_argument("targets", nargs="+", help="TYPE/NAME, or TYPES with --selector")
    three.add_argument("label", help="KEY=VALUE")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    try:
        return {"served": served, "absent": absent, "label": label}[args.command](args)
    except Failed as e:
        print(f"{args.prog}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
