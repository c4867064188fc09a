"""What both training loops share: turning collected segments into gradient steps.

The local loop (train.py) gets its segments from env processes over pipes; the
distributed learner (distributed.py) gets the same segments from Reverb. Both call
`Learner.learn`, so they run one PPO (or SAC) update.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_agents.replay_buffers import tf_uniform_replay_buffer
from tf_agents.trajectories import trajectory
from tf_agents.utils import common

from trainer.config import Config


def to_trajectory(segments, data_spec):
    """Stacks per-env numpy segments into a [num_envs, T] Trajectory of tensors.

    Fields the segments lack (PPO's value predictions, which the learner adds) are
    left out of the result.
    """
    stacked = {
        name: tf.nest.map_structure(lambda *xs: np.stack(xs), *[s[name] for s in segments])
        for name in segments[0]
    }
    experience = trajectory.Trajectory(**stacked)
    spec = data_spec.replace(
        policy_info={k: data_spec.policy_info[k] for k in stacked["policy_info"]}
        if stacked["policy_info"]
        else ()
    )
    return tf.nest.map_structure(
        lambda x, s: tf.convert_to_tensor(x, dtype=s.dtype), experience, spec
    )


class Learner:
    """Turns collected segments into gradient steps for either agent."""

    def __init__(self, cfg: Config, agent):
        self._cfg, self._agent = cfg, agent
        self._train = common.function(agent.train)
        self.replay_buffer = None
        if cfg.agent == "ppo":
            self._prepare = tf.function(self._ppo_prepare, autograph=False)
            self._epoch = tf.function(self._ppo_epoch)
        else:
            self.replay_buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
                agent.collect_data_spec,
                batch_size=cfg.num_envs,
                max_length=max(cfg.replay_capacity // cfg.num_envs, 2),
            )
            self._add = tf.function(self._add_segments)
            dataset = (
                self.replay_buffer.as_dataset(num_steps=2)
                # A pair starting at an episode's last step is no transition.
                .filter(lambda item, _: ~item.is_boundary()[0])
                .batch(cfg.batch_size, drop_remainder=True)
                .prefetch(2)
            )
            self._iterator = iter(dataset)
            self._debt = 0.0

    def _ppo_prepare(self, experience):
        """Normalizer updates, value predictions, returns and advantages; flat [N, 1] steps."""
        agent = self._agent
        experience = experience.replace(reward=experience.reward * self._cfg.reward_scale)
        agent.update_observation_normalizer(experience.observation)
        agent.update_reward_normalizer(experience.reward)
        values, _ = agent.collect_policy.apply_value_network(
            experience.observation, experience.step_type, value_state=(), training=False
        )
        info = dict(experience.policy_info, value_prediction=tf.stop_gradient(values))
        processed = agent.preprocess_sequence(experience.replace(policy_info=info))
        # Each segment's last step only bootstraps the one before it.
        return tf.nest.map_structure(
            lambda x: tf.reshape(x[:, :-1], tf.concat([[-1, 1], tf.shape(x)[2:]], 0)),
            processed,
        )

    def _ppo_epoch(self, steps):
        """One shuffled pass over `steps` in minibatches; returns the last loss."""
        size = self._cfg.minibatch_size
        count = tf.shape(steps.reward)[0]
        order = tf.random.shuffle(tf.range(count))
        batches = tf.maximum(count // size, 1)
        take = lambda i: tf.nest.map_structure(
            lambda x: tf.gather(x, order[i * size : (i + 1) * size]), steps
        )
        loss = self._agent.train(take(0))
        for i in tf.range(1, batches):
            loss = self._agent.train(take(i))
        return loss

    def _add_segments(self, experience):
        for t in tf.range(tf.shape(experience.reward)[1]):
            self.replay_buffer.add_batch(tf.nest.map_structure(lambda x, t=t: x[:, t], experience))

    def learn(self, experience, new_steps: int):
        if self._cfg.agent == "ppo":
            steps = self._prepare(experience)
            for _ in range(self._cfg.num_epochs):
                loss = self._epoch(steps)
            return loss
        self._add(experience)
        self._debt += self._cfg.train_ratio * new_steps
        loss = None
        while self._debt >= 1:
            self._debt -= 1
            batch, _ = next(self._iterator)
            loss = self._train(batch)
        return loss
