"""Controllers' own admission and matching rules, written from their sources as test code.

Each module here encodes one controller's rules at a named release (JobSet, Katib, Kubeflow
Trainer, Kueue) and cites the repository, path and function it reads them from. This package
also renders the manifests those rules are applied to, with the real `kubectl kustomize`.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from deploy import overlay

# The user's values every written overlay starts from; extra arguments override them
# (argparse keeps an option's last value).
DEFAULTS = [
    "--run=ppo-test-1",
    "--namespace=team-a",
    "--image=us-central1-docker.pkg.dev/my-project/kuka/kuka-trainer",
    "--tag=v1.2.3",
    "--bucket=my-kuka-runs",
]


def render(path) -> list[dict]:
    """The objects `kubectl kustomize path` renders (the test is skipped without kubectl)."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def write_overlay(tmp_path, kind: str, *extra_args: str) -> list[dict]:
    """Writes a `kind` overlay with deploy.overlay.main into tmp_path and renders it.

    `extra_args` follow the defaults above, so they override them; after a "--" they are
    trainer flags, as on overlay's command line.
    """
    out = os.fspath(tmp_path)
    name = f"{kind}-{len(os.listdir(out)) if os.path.isdir(out) else 0}"
    argv = [f"--kind={kind}", f"--name={name}", f"--out={out}", *DEFAULTS, *extra_args]
    code = overlay.main(argv)
    assert code == 0, f"deploy.overlay refused {argv}"
    return render(os.path.join(out, name))
