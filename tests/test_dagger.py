"""trainer/dagger.py: DAgger rounds, their files, resume and the whole camera run (issue 28).

Tiny values in-process: 32-pixel frames, an untrained teacher, two episodes a round.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from trainer import agents, dagger, labelling
from trainer.config import Config, VisionConfig


@pytest.fixture(scope="module")
def teacher():
    """An untrained state policy: the rounds' mechanics, not their success, are tested."""
    return agents.actor_params(labelling.state_agent(Config()))


@pytest.mark.slow
def test_rounds_save_their_frames_and_a_resume_goes_on_from_the_last(teacher, tmp_path):
    lines = []
    tiny = VisionConfig(dagger_iterations=2, dagger_episodes=2, image_size=32, student_epochs=1)
    saved = []  # what a gs:// run's Syncer is asked for: an upload once each round is saved

    def on_round():
        saved.append(json.loads((tmp_path / "dagger.json").read_text())["rounds"])

    result = dagger.teach(
        tiny, teacher, str(tmp_path), 2, 0, 2, log=lines.append, on_round=on_round
    )
    assert saved == [1, 2]
    state = json.loads((tmp_path / "dagger.json").read_text())
    assert state["rounds"] == 2 and len(state["success"]) == 2
    for part in ("play_seconds", "fit_seconds"):  # where a round's time went
        assert len(state[part]) == 2 and all(seconds >= 0 for seconds in state[part])
    first = np.load(tmp_path / "frames" / "round-000.npz")
    assert first["image"].shape[1:] == (32, 32, 3) and first["image"].dtype == np.uint8
    assert first["arm"].shape[1:] == (6,) and first["label"].shape[1:] == (3,)
    assert np.all(np.abs(first["label"]) <= 1.0)
    assert state["frames"][0] == len(first["label"])
    assert result["episodes"] == 2 and os.path.exists(tmp_path / "eval.json")
    assert lines[0].startswith("round 1/2 | teacher drove")

    assert state["student"] == os.path.join("student", "round-001", "weights")
    assert os.listdir(tmp_path / "student") == ["round-001"]  # the older one went

    lines.clear()
    # One episode for two env processes: one of them plays none this round.
    more = VisionConfig(dagger_iterations=3, dagger_episodes=1, image_size=32, student_epochs=1)
    dagger.teach(more, teacher, str(tmp_path), 2, 0, 2, log=lines.append)
    assert lines[0] == f"Resumed after round 2 ({state['frames'][1]:,} frames)"
    assert lines[1].startswith("round 3/3 | student drove")
    after = json.loads((tmp_path / "dagger.json").read_text())
    assert after["rounds"] == 3 and after["frames"][2] > state["frames"][1]


@pytest.mark.slow
def test_a_camera_run_trains_its_teacher_first_and_says_when_it_is_done(tmp_path):
    """`make train ENV_ID=KukaGraspCam-v0` with no teacher, at tiny values: the state
    policy trains in RUN/teacher, then the rounds; the student is exported; a second
    start says the run is finished instead of evaluating again."""
    cfg = Config(
        env_id="KukaGraspCam-v0",
        total_steps=512,
        collect_steps=256,
        eval_interval=0,
        eval_episodes=2,
        checkpoint_interval=512,
        logdir=str(tmp_path),
        run="cam",
    )
    tiny = VisionConfig(dagger_iterations=1, dagger_episodes=2, image_size=32, student_epochs=1)
    run_dir = tmp_path / "cam"
    run_dir.mkdir()
    lines = []
    result = dagger.train(cfg, tiny, str(run_dir), log=lines.append)
    assert json.loads((run_dir / "teacher" / "eval.json").read_text())["env_steps"] >= 512
    assert result["env_id"] == "KukaGraspCam-v0" and result["episodes"] == 2
    loaded = tf.saved_model.load(str(run_dir / "policy"))
    action = loaded.signatures["action"](
        image=tf.zeros([1, 32, 32, 3], tf.uint8), arm=tf.zeros([1, 6], tf.float32)
    )["action"]
    assert action.shape == (1, 3)
    assert json.loads((run_dir / "vision.json").read_text())["image_size"] == 32

    lines.clear()
    again = dagger.train(cfg, VisionConfig(), str(run_dir), log=lines.append)
    assert lines == [f"Run {run_dir} already finished its 1 rounds (eval.json)"]
    assert again == result


@pytest.mark.slow
def test_make_eval_plays_a_camera_runs_student(tiny_camera_run, tmp_path):
    """`make eval RUN=...` of a camera run: its student, not a state policy."""
    import shutil

    from trainer import commands

    shutil.copytree(tiny_camera_run, tmp_path / "cam")
    assert commands.evaluate(Config(logdir=str(tmp_path), run="cam", eval_episodes=2)) == 0
    frames = json.loads((tmp_path / "cam" / "dagger.json").read_text())["frames"][-1]
    written = json.loads((tmp_path / "cam" / f"eval-{frames}.json").read_text())
    assert written["env_id"] == "KukaGraspCam-v0" and written["episodes"] == 2


def test_make_eval_of_a_camera_run_without_a_round_says_so(tmp_path):
    with pytest.raises(ValueError, match="no DAgger round has finished"):
        dagger.evaluate_run(Config(), str(tmp_path))


@pytest.mark.slow
def test_a_camera_setting_resumes_a_camera_run_and_is_refused_for_a_state_run(
    tiny_camera_run, tiny_run, tmp_path
):
    """The run's own env decides, which a resume need not name (commands._flags_it_reads)."""
    import shutil

    from tests.conftest import run_task

    shutil.copytree(tiny_camera_run, tmp_path / "cam")
    shutil.copytree(tiny_run, tmp_path / "tiny")
    done = run_task(f"--logdir={tmp_path}", "--run=cam", "--dagger_iterations=2")
    assert done.returncode == 0 and "already" in done.stderr, done.stderr[-2000:]
    refused = run_task(
        f"--logdir={tmp_path}", "--run=tiny", "--total_steps=1200", "--image_size=32"
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: --image_size is a setting of KukaGraspCam-v0 runs, and this run trains "
        "KukaGrasp-v0; leave it out or add --env_id=KukaGraspCam-v0"
    )
