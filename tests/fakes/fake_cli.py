"""A stand-in for gcloud, kubectl and docker: records each call, answers as the real tool.

Invoked as `fake_cli.py TOOL ARGS...` by small wrappers named gcloud, kubectl and
docker (tests/test_walkthrough.py writes them). Every call is appended to $FAKE_LOG
as one JSON line: the tool, its argv, what it read on stdin and, for `kubectl apply
-k`, the objects the real `kubectl kustomize` ($REAL_KUBECTL) renders there. Queries
are answered the way the real tools print them; what one call creates (a service
account, a repository) is kept in $FAKE_STATE so that the next `describe` finds it.
A command the fake does not model exits 2, so a new command in a script is noticed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROJECT_NUMBER = "123456789012"
OK_VERBS = (["auth", "login"], ["auth", "application-default"], ["config", "set"])
OK_COMMANDS = (
    "services enable container.googleapis.com",
    "container clusters get-credentials",
    "storage buckets add-iam-policy-binding",
    "iam service-accounts add-iam-policy-binding",
    "artifacts repositories add-iam-policy-binding",
    "iam service-accounts keys",
    "builds submit .",
)


def _flag(argv: list[str], name: str) -> str:
    return next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")), "")


def _state() -> dict:
    path = os.environ["FAKE_STATE"]
    return json.load(open(path)) if os.path.exists(path) else {"created": []}


def _remember(key: str) -> None:
    state = _state()
    state["created"].append(key)
    with open(os.environ["FAKE_STATE"], "w") as f:
        json.dump(state, f)


def gcloud(argv: list[str]) -> int:
    words = [a for a in argv if not a.startswith("-")]
    command = " ".join(words[:3])
    if command == "container clusters describe":
        # Workload Identity on, unless FAKE_NO_WORKLOAD_IDENTITY asks for a cluster without it.
        if not os.environ.get("FAKE_NO_WORKLOAD_IDENTITY"):
            print(f"{_flag(argv, 'project')}.svc.id.goog")
    elif command == "container node-pools list":
        # FAKE_NO_POOL_WORKLOAD_IDENTITY: a node pool made before Workload Identity was on.
        mode = (
            "GCE_METADATA" if os.environ.get("FAKE_NO_POOL_WORKLOAD_IDENTITY") else "GKE_METADATA"
        )
        print(f"default-pool\t{mode}\tdefault")
    elif command.startswith("projects describe"):
        print(PROJECT_NUMBER)
    elif command == "storage buckets describe":
        # Uniform bucket-level access, as `make bucket` creates it, unless asked otherwise.
        print("False" if os.environ.get("FAKE_FINE_GRAINED_BUCKET") else "True")
    elif command in ("iam service-accounts describe", "artifacts repositories describe"):
        if f"{command.rsplit(' ', 1)[0]} {words[3]}" not in _state()["created"]:
            print(f"ERROR: (gcloud.{words[0]}) NOT_FOUND: {words[3]}", file=sys.stderr)
            return 1
        print(f"name: {words[3]}")
    elif command in ("iam service-accounts create", "artifacts repositories create"):
        account = f"{words[3]}@{_flag(argv, 'project')}.iam.gserviceaccount.com"
        name = account if words[0] == "iam" else words[3]
        _remember(f"{command.rsplit(' ', 1)[0]} {name}")
        print(f"Created [{name}].", file=sys.stderr)
    elif (
        words[:2] in OK_VERBS
        or command in OK_COMMANDS
        or words[:2] in (["auth", "configure-docker"], ["projects", "add-iam-policy-binding"])
    ):
        pass  # these print nothing the scripts read
    else:
        print(f"fake gcloud: not modelled: {' '.join(argv)}", file=sys.stderr)
        return 2
    return 0


def kubectl(argv: list[str], record: dict) -> int:
    if argv[:1] == ["create"] and "--dry-run=client" in argv:
        kind, name = ("Namespace", argv[2]) if argv[1] == "namespace" else ("Secret", argv[3])
        print(f"apiVersion: v1\nkind: {kind}\nmetadata:\n  name: {name}")
        return 0
    if argv[:3] == ["apply", "-f", "-"]:
        return 0  # stdin is in the record
    if argv[:2] == ["apply", "-k"]:
        rendered = subprocess.run(
            [os.environ["REAL_KUBECTL"], "kustomize", argv[2]], capture_output=True, text=True
        )
        if rendered.returncode != 0:
            print(rendered.stderr, file=sys.stderr, end="")
            return 1
        record["rendered"] = rendered.stdout
        return 0
    if argv == ["api-resources", "-o", "name"]:
        # A cluster with every optional controller (as tests/fakes/discovery.py lists them).
        from discovery import ALL_CRDS, BUILTIN  # beside this script, on its sys.path

        print("\n".join(sorted({r.name for r in BUILTIN} | ALL_CRDS)))
        return 0
    if argv[:2] == ["label", "namespace"] and "--overwrite" in argv:
        print(f"namespace/{argv[2]} labeled")  # as the real kubectl says it
        return 0
    verb = argv[argv.index("-n") + 2] if "-n" in argv else argv[0]
    if verb in ("get", "logs", "delete", "port-forward"):
        return 0
    print(f"fake kubectl: not modelled: {' '.join(argv)}", file=sys.stderr)
    return 2


def main() -> int:
    tool, argv = sys.argv[1], sys.argv[2:]
    record: dict = {"tool": tool, "argv": argv}
    if tool == "kubectl" and argv[:3] == ["apply", "-f", "-"]:
        record["stdin"] = sys.stdin.read()
    if tool == "gcloud":
        code = gcloud(argv)
    elif tool == "kubectl":
        code = kubectl(argv, record)
    elif tool == "docker" and argv[:1] in (["build"], ["push"]):
        code = 0
    else:
        print(f"fake {tool}: not modelled: {' '.join(argv)}", file=sys.stderr)
        code = 2
    record["exit"] = code
    with open(os.environ["FAKE_LOG"], "a") as f:
        f.write(json.dumps(record) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
