"""The demo notebook, executed top to bottom with tiny parameters, and `make plot`."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import ROOT, run_module, run_task

pytestmark = pytest.mark.slow

TINY = """
STEPS = 600
NUM_ENVS = 2
SEED = 0
LOGDIR = {logdir!r}
RUN = "nbtest"
TRAIN_ARGS = ["--collect_steps=300", "--checkpoint_interval=300", "--eval_interval=0",
              "--eval_episodes=2", "--actor_layers=16", "--value_layers=16"]
EPISODES = 1
WIDTH, HEIGHT = 96, 72
CLUSTER = False
PROJECT, BUCKET = "my-project", "my-kuka-runs"
"""


def _outputs(cell) -> list[dict]:
    return [output.get("data", {}) for output in cell.get("outputs", [])]


def test_notebook_runs_with_tiny_parameters(tmp_path):
    import nbclient  # requirements-dev.txt: a missing one fails here, never skips
    import nbformat

    notebook = nbformat.read(os.path.join(ROOT, "demo", "demo.ipynb"), as_version=4)
    params = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    params.source = TINY.format(logdir=str(tmp_path / "runs"))
    nbclient.NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": ROOT}}
    ).execute()
    for name in ("nbtest", "render-nbtest"):  # the cluster cells' dry run writes nothing
        assert not os.path.exists(os.path.join(ROOT, "k8s", "overlays", "local", name))
    data = [d for cell in notebook.cells for d in _outputs(cell)]
    assert any("image/png" in d for d in data), "no learning curve plotted"
    tables = [d["text/html"] for d in data if "<table>" in d.get("text/html", "")]
    assert tables and "grasp success" in tables[0]
    assert any("<video" in d.get("text/html", "") for d in data), "no video shown"
    text = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "kubectl apply -k k8s/overlays/local/nbtest" in text  # the cluster cells, dry run


def test_make_plot_writes_the_learning_curve(tiny_run, tmp_path):
    shutil.copytree(tiny_run, tmp_path / "tiny")  # the shared run stays as trained
    result = run_task("plot", f"--logdir={tmp_path}", "--run=tiny")
    assert result.returncode == 0, result.stderr[-2000:]
    path = tmp_path / "tiny" / "learning_curve.png"
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    missing = run_task("plot", f"--logdir={tiny_run}-nowhere")
    assert missing.returncode == 2 and "no run with TensorBoard events" in missing.stderr


def test_use_policy_plays_the_exported_policy(tiny_run):
    policy = os.path.join(tiny_run, "policy")
    out = run_module("demo.use_policy", policy, "--episodes=1", timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    first, last = out.stdout.splitlines()
    assert first.startswith("episode 1: return ") and first.endswith(("lifted the block", "missed"))
    assert last in ("lifted 0 of 1", "lifted 1 of 1")
    assert "WARNING" not in out.stderr


def test_use_policy_plays_a_camera_policy_in_the_camera_env(tiny_camera_run):
    """Issue 28: the exported student takes the frame and the arm's state."""
    policy = os.path.join(tiny_camera_run, "policy")
    out = run_module("demo.use_policy", policy, "--episodes=1", timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[-1] in ("lifted 0 of 1", "lifted 1 of 1")


def test_the_camera_policys_inputs_are_the_ones_the_readme_shows(tiny_camera_run):
    import tensorflow as tf

    signature = tf.saved_model.load(os.path.join(tiny_camera_run, "policy")).signatures["action"]
    _, inputs = signature.structured_input_signature
    assert inputs["image"].shape.as_list() == [None, 32, 32, 3]
    assert inputs["image"].dtype == tf.uint8
    assert inputs["arm"].shape.as_list() == [None, 6] and inputs["arm"].dtype == tf.float32
    assert signature.structured_outputs["action"].shape.as_list() == [None, 3]
