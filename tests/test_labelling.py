"""trainer/labelling.py: the teacher comes from a KukaGrasp-v0 run's checkpoint (issue 28).

The env processes' playing and labelling run in tests/test_dagger.py's rounds.
"""

import numpy as np
import pytest
import tensorflow as tf

from trainer import agents, averaging, labelling
from trainer.config import Config
from trainer.rundir import RunDir


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    """A KukaGrasp-v0 run directory whose only checkpoint is an untrained agent, with its
    policy average as a run of the defaults keeps it."""
    run_dir = tmp_path_factory.mktemp("teacher")
    cfg = Config()
    RunDir(str(run_dir)).save_config(cfg)
    agent = labelling.state_agent(cfg)
    average = averaging.create(agents.actor_variables(agent), cfg.policy_average, cfg.total_steps)
    held = averaging.tracked({"agent": agent}, average)
    tf.train.Checkpoint(**held).save(str(run_dir / "checkpoints" / "ckpt"))
    return str(run_dir), agents.actor_params(agent)


def test_the_teacher_is_the_runs_newest_checkpoint(teacher_run):
    run_dir, params = teacher_run
    loaded = labelling.teacher_params(run_dir)
    for (kernel, bias), (saved_kernel, saved_bias) in zip(
        loaded["hidden"], params["hidden"], strict=True
    ):
        np.testing.assert_array_equal(kernel, saved_kernel)
        np.testing.assert_array_equal(bias, saved_bias)


def test_a_teacher_of_another_env_is_refused(tmp_path):
    RunDir(str(tmp_path)).save_config(Config(env_id="HopperBulletEnv-v0"))
    with pytest.raises(ValueError, match="learned HopperBulletEnv-v0, not KukaGrasp-v0"):
        labelling.teacher_params(str(tmp_path))


def test_a_teacher_without_a_checkpoint_is_refused(tmp_path):
    RunDir(str(tmp_path)).save_config(Config())
    with pytest.raises(ValueError, match="has no checkpoint"):
        labelling.teacher_params(str(tmp_path))
