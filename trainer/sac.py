"""SAC: tf-agents' SacAgent as this project builds it, and its learner.

One of the algorithms in `learner.ALGORITHMS`; each has `build_agent` and a
`Learner` with `learn(experience, new_steps)` and `tracked()`.

tf-agents' own SAC example samples its replay buffer through a tf.data pipeline:
here that pipeline took 26 ms per batch of 256, three times the gradient step it fed
(a profile of 320 batches on InvertedPendulumBulletEnv-v0). The learner instead
samples inside the same `tf.function` that runs the gradient steps, a whole
iteration's per call; bench/sac_speed.py compares the two loops.
"""

from __future__ import annotations

import tensorflow as tf
from tf_agents.agents.ddpg import critic_network
from tf_agents.agents.sac import sac_agent, tanh_normal_projection_network
from tf_agents.networks import actor_distribution_network
from tf_agents.replay_buffers import tf_uniform_replay_buffer

from trainer.config import Config


def _tanh_normal_projection(spec):
    return tanh_normal_projection_network.TanhNormalProjectionNetwork(
        spec, std_transform=sac_agent.std_clip_transform
    )


def build_agent(cfg: Config, time_step_spec, action_spec, optimizer, train_step, remaining):
    """(SacAgent, its actor network), not yet initialized.

    `remaining` goes unused: SAC's entropy follows its own learned temperature.
    """
    del remaining
    observation_spec = time_step_spec.observation
    actor_net = actor_distribution_network.ActorDistributionNetwork(
        observation_spec,
        action_spec,
        fc_layer_params=cfg.actor_layers,
        continuous_projection_net=_tanh_normal_projection,
    )
    critic_net = critic_network.CriticNetwork(
        (observation_spec, action_spec),
        joint_fc_layer_params=cfg.value_layers,
        kernel_initializer="glorot_uniform",
        last_kernel_initializer="glorot_uniform",
    )
    agent = sac_agent.SacAgent(
        time_step_spec,
        action_spec,
        actor_network=actor_net,
        critic_network=critic_net,
        actor_optimizer=optimizer(),
        critic_optimizer=optimizer(),
        alpha_optimizer=optimizer(),
        target_update_tau=cfg.algo.target_update_tau,
        target_update_period=1,
        td_errors_loss_fn=tf.math.squared_difference,
        gamma=cfg.discount,
        reward_scale_factor=cfg.reward_scale,
        train_step_counter=train_step,
    )
    return agent, actor_net


# The distributed loop puts transitions in a replay table (replay_table.py), not
# segments in a queue.
REPLAYS = True


class LocalReplay:
    """The local loop's replay buffer: a row per env process, each its steps in order."""

    def __init__(self, cfg: Config, data_spec):
        self.buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
            data_spec,
            batch_size=cfg.num_envs,
            max_length=max(cfg.algo.replay_capacity // cfg.num_envs, 2),
        )
        self.add = tf.function(self._add_segments)

    def _add_segments(self, experience):
        for t in tf.range(tf.shape(experience.reward)[1]):
            self.buffer.add_batch(tf.nest.map_structure(lambda x, t=t: x[:, t], experience))

    def size(self) -> int:
        return int(self.buffer.num_frames())

    def sample(self, batch_size: int):
        """`batch_size` pairs of consecutive steps of one row (in a `tf.function`)."""
        pairs, _ = self.buffer.get_next(sample_batch_size=batch_size, num_steps=2)
        return pairs

    def tracked(self) -> dict:
        """The buffer: a resumed run goes on from the same transitions."""
        return {"replay_buffer": self.buffer}


class Learner:
    """Trains on uniform samples of every collected step: `train_ratio` gradient steps
    per new env step, once `learning_starts` steps are in. The steps are in `replay`
    (distributed: replay_table.ReverbReplay, which the collectors fill), or in a
    LocalReplay of its own that `learn` fills."""

    def __init__(self, cfg: Config, agent, replay=None):
        self._cfg, self._agent = cfg, agent
        self.replay = replay or LocalReplay(cfg, agent.collect_data_spec)
        # tf-agents' train needs no AutoGraph, whose conversion slowed the first trace
        # (as ppo.py); inline, so a gradient step pays no function call.
        self._agent_train = tf.autograph.experimental.do_not_convert(agent.train)
        self._train = tf.function(self._gradient_steps)
        self._debt = 0.0

    def tracked(self) -> dict:
        """What the run's checkpoint keeps of the replay (a local buffer, whole)."""
        return self.replay.tracked()

    def sample(self):
        """A batch of transitions (pairs of steps) and their weights: 0 for a pair that is
        no transition, an episode's boundary (LAST then FIRST) or the seam of a resume
        (the env processes start new episodes where the checkpoint's rows end)."""
        pairs = self.replay.sample(self._cfg.algo.batch_size)
        joined = tf.equal(pairs.next_step_type[:, 0], pairs.step_type[:, 1])
        return pairs, tf.cast(joined & ~pairs.is_boundary()[:, 0], tf.float32)

    def _gradient_steps(self, count):
        """`count` (at least 1) gradient steps on fresh samples; returns the last LossInfo."""
        loss = self._agent_train(*self.sample())
        for _ in tf.range(1, count):
            loss = self._agent_train(*self.sample())
        return loss

    def learn(self, experience, new_steps: int):
        """Adds one iteration's [num_envs, T] segments (None: the collectors wrote them)
        and trains on what `new_steps` earn; returns the last LossInfo, or None when no
        gradient step was due."""
        if experience is not None:
            self.replay.add(experience)
        if self.replay.size() < self._cfg.algo.learning_starts:
            return None
        self._debt += self._cfg.algo.train_ratio * new_steps
        count = int(self._debt)
        if count < 1:
            return None
        self._debt -= count
        return self._train(tf.constant(count))
