"""trainer/averaging.py: the greedy policy's weights averaged over recent env steps."""

import math

import numpy as np
import pytest
import tensorflow as tf

from trainer import averaging


def _weights(*values):
    return [tf.Variable(np.full((2, 2), v, np.float32)) for v in values]


def test_the_average_starts_at_the_weights_and_moves_by_env_steps_not_calls():
    live = _weights(0.0, 1.0)
    average = averaging.PolicyAverage(live, horizon=1000)
    for var in live:
        var.assign_add(tf.ones_like(var))  # an update: every weight up by 1
    average.update(300)
    average.update(700)  # two iterations of 300 and 700 steps: as one of 1,000
    once_live = _weights(0.0, 1.0)
    once = averaging.PolicyAverage(once_live, horizon=1000)
    for var in once_live:
        var.assign_add(tf.ones_like(var))
    once.update(1000)
    moved = 1 - math.exp(-1)
    for mean, single, start in zip(average.average, once.average, (0.0, 1.0), strict=True):
        np.testing.assert_allclose(mean.numpy(), start + moved, rtol=1e-6)
        np.testing.assert_allclose(mean.numpy(), single.numpy(), rtol=1e-6)


def test_the_actor_holds_the_average_inside_and_its_own_weights_after_an_error():
    live = _weights(0.0)
    average = averaging.PolicyAverage(live, horizon=100)
    live[0].assign(tf.fill((2, 2), 5.0))
    with pytest.raises(RuntimeError), average.swapped_in():
        np.testing.assert_array_equal(live[0].numpy(), 0.0)
        raise RuntimeError("an export failed")
    np.testing.assert_array_equal(live[0].numpy(), 5.0)


def test_no_horizon_is_no_average_and_the_current_weights_are_greedy():
    assert averaging.create(_weights(1.0), 0, 600_000) is None
    with averaging.greedy_weights(None):
        pass
    assert averaging.tracked({"agent": 1}, None) == {"agent": 1}
    with pytest.raises(ValueError, match="positive horizon"):
        averaging.PolicyAverage(_weights(1.0), -5)


def test_a_checkpoint_keeps_the_average(tmp_path):
    live = _weights(0.0)
    average = averaging.PolicyAverage(live, horizon=10)
    live[0].assign(tf.fill((2, 2), 4.0))
    average.update(10)
    path = tf.train.Checkpoint(**averaging.tracked({}, average)).save(str(tmp_path / "ckpt"))
    restored = averaging.PolicyAverage(_weights(0.0), horizon=10)
    tf.train.Checkpoint(**averaging.tracked({}, restored)).restore(path).assert_consumed()
    np.testing.assert_allclose(restored.average[0].numpy(), average.average[0].numpy())


def test_a_short_run_averages_over_a_tenth_of_its_steps_at_most():
    live = _weights(0.0)
    short = averaging.create(live, 20_000, total_steps=50_000)  # horizon 5,000
    live[0].assign(tf.fill((2, 2), 1.0))
    short.update(5_000)
    np.testing.assert_allclose(short.average[0].numpy(), 1 - math.exp(-1), rtol=1e-6)
    assert averaging.create(live, 20_000, total_steps=5) is not None  # at least 1 step
