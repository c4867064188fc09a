"""PPO: tf-agents' PPOClipAgent as this project builds it, and its learner.

One of the algorithms in `learner.ALGORITHMS`; each has `build_agent` and a
`Learner` with `learn(experience, new_steps)` and `tracked()`.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf
from tf_agents.agents.ppo import ppo_clip_agent
from tf_agents.networks import actor_distribution_network, normal_projection_network, value_network

from trainer.config import Config

# ActorDistributionNetwork's default initial action spread, which our head keeps.
_INIT_ACTION_STD = 0.35


def _normal_projection(spec, mean_init: float):
    """ActorDistributionNetwork's own default head, with the mean's initial scale set."""
    return normal_projection_network.NormalProjectionNetwork(
        spec,
        init_means_output_factor=mean_init,
        std_bias_initializer_value=np.log(np.expm1(_INIT_ACTION_STD)),
        scale_distribution=False,
    )


class _DecayingEntropyAgent(ppo_clip_agent.PPOClipAgent):
    """PPOClipAgent whose entropy bonus is scaled by the share of the run still to go.

    tf-agents takes the coefficient as a Python float it compares with 0 outside the
    graph, so the schedule scales the loss it returns instead.
    """

    def __init__(self, *args, remaining, **kwargs):
        super().__init__(*args, **kwargs)
        self._remaining = remaining

    def entropy_regularization_loss(self, *args, **kwargs):
        return super().entropy_regularization_loss(*args, **kwargs) * self._remaining()


def build_agent(cfg: Config, time_step_spec, action_spec, optimizer, train_step, remaining):
    """(PPOClipAgent, its actor network), not yet initialized.

    `remaining()` is the share of the run still to go (1 to 0), or None outside a run.
    """
    agent_class, extra = ppo_clip_agent.PPOClipAgent, {}
    if cfg.algo.entropy_schedule == "linear":
        if remaining is None:
            raise ValueError("--entropy_schedule=linear needs the run's env steps (its progress)")
        agent_class, extra = _DecayingEntropyAgent, {"remaining": remaining}
    observation_spec = time_step_spec.observation
    actor_net = actor_distribution_network.ActorDistributionNetwork(
        observation_spec,
        action_spec,
        fc_layer_params=cfg.actor_layers,
        activation_fn=tf.nn.tanh,
        continuous_projection_net=functools.partial(
            _normal_projection, mean_init=cfg.algo.action_mean_init
        ),
    )
    value_net = value_network.ValueNetwork(
        observation_spec, fc_layer_params=cfg.value_layers, activation_fn=tf.nn.tanh
    )
    agent = agent_class(
        time_step_spec,
        action_spec,
        optimizer=optimizer(),
        actor_net=actor_net,
        value_net=value_net,
        importance_ratio_clipping=cfg.algo.clip_ratio,
        lambda_value=cfg.algo.gae_lambda,
        discount_factor=cfg.discount,
        entropy_regularization=cfg.algo.entropy_coef,
        # As tf-agents' PPOLearner: advantages over whole segments first, then
        # each agent.train call is one pass over one minibatch of steps.
        num_epochs=1,
        compute_value_and_advantage_in_train=False,
        update_normalizers_in_train=False,
        use_gae=True,
        use_td_lambda_return=True,
        normalize_observations=cfg.algo.normalize_observations,
        # Rewards are scaled by the learner before they get here.
        normalize_rewards=cfg.algo.normalize_rewards,
        reward_norm_clipping=cfg.algo.reward_clip,
        gradient_clipping=0.5,
        train_step_counter=train_step,
        **extra,
    )
    return agent, actor_net


# The distributed loop hands it segments from a queue, each taken once.
REPLAYS = False


class Learner:
    """Each iteration's segments: advantages once, then `num_epochs` shuffled passes."""

    def __init__(self, cfg: Config, agent):
        self._cfg, self._agent = cfg, agent
        self._prepare = tf.function(self._prepare_steps, autograph=False)
        # tf-agents' train needs no AutoGraph, and converting it took 10-15 s of a run's
        # first iteration; as a function of its own it is also traced once, not twice
        # (tiny nets: 17 s to 3.2 s; same losses and weights, same 0.24 s per update of
        # 4,096 steps; measured 2026-11-30).
        self._train = tf.function(agent.train, autograph=False)
        self._epoch = tf.function(self._one_epoch)

    def tracked(self) -> dict:
        """What the run's checkpoint keeps besides the agent: nothing, PPO is on-policy."""
        return {}

    def _prepare_steps(self, experience):
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

    def _one_epoch(self, steps):
        """One shuffled pass over `steps` in minibatches; returns the last loss."""
        size = self._cfg.algo.minibatch_size
        count = tf.shape(steps.reward)[0]
        order = tf.random.shuffle(tf.range(count))
        batches = tf.maximum(count // size, 1)
        take = lambda i: tf.nest.map_structure(
            lambda x: tf.gather(x, order[i * size : (i + 1) * size]), steps
        )
        loss = self._train(take(0))
        for i in tf.range(1, batches):
            loss = self._train(take(i))
        return loss

    def learn(self, experience, new_steps: int):
        """Trains on one iteration's [num_envs, T] segments; returns the last LossInfo."""
        del new_steps  # PPO trains on exactly what it is given
        steps = self._prepare(experience)
        for _ in range(self._cfg.algo.num_epochs):
            loss = self._epoch(steps)
        return loss
