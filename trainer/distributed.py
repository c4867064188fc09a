"""Distributed PPO on tf-agents' engine: a Reverb server, collect actors and one learner.

As tf_agents/experimental/distributed/examples: collectors run `actor.Actor` with
the agent's collect policy and write fixed-length sequences into Reverb; the
learner (`PPOLearner`) trains on them in FIFO order, each sequence once, and
pushes its variables back through a `ReverbVariableContainer` that collectors pull
after every sequence. Collectors therefore act with a policy at most a learner
iteration or two old; PPO's importance ratio is taken against the policy that
acted (its distribution is stored with each step).

The learner keeps the run directory of local training (config.json, checkpoints/,
policy/, train/ and eval/ events, eval.json); each collector adds its episode
metrics under train/collector-TASK.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
import reverb
import tensorflow as tf
from tf_agents.experimental.distributed import reverb_variable_container as rvc
from tf_agents.metrics import py_metrics
from tf_agents.policies import py_tf_eager_policy
from tf_agents.replay_buffers import reverb_replay_buffer, reverb_utils
from tf_agents.specs import tensor_spec
from tf_agents.train import actor, ppo_learner

from trainer import actors, agents, envs, record
from trainer.config import Config

TRAINING_TABLE = "training"
NORMALIZATION_TABLE = "normalization"
# Steps per Reverb item. Advantages are computed within an item, so it should
# span a few episodes (about 200 steps each on KukaGrasp-v0).
SEQUENCE_LENGTH = 512
# Items kept per table, in learner batches: older ones are dropped when collectors
# outpace the learner, which bounds how stale the data can get.
QUEUE_BATCHES = 2
# How long collectors and the learner wait for the Reverb server to come up.
SERVER_WAIT_SECONDS = 300


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _check_agent(cfg: Config) -> None:
    if cfg.agent != "ppo":
        raise ValueError(f"distributed training runs the ppo agent, not {cfg.agent!r}")


def _specs(env_id: str):
    """(time step spec, action spec) of `env_id`, as tensor specs."""
    env = envs.load(env_id)
    try:
        return (
            tensor_spec.from_spec(env.time_step_spec()),
            tensor_spec.from_spec(env.action_spec()),
        )
    finally:
        env.close()


def _model(cfg: Config, time_step_spec, action_spec):
    """(agent, variables that collectors pull) built identically in every role."""
    train_step = tf.Variable(0, dtype=tf.int64, name="train_step")
    env_steps = tf.Variable(0, dtype=tf.int64, name="env_steps")
    agent = agents.create(cfg, time_step_spec, action_spec, train_step)
    variables = {
        rvc.POLICY_KEY: agent.collect_policy.variables(),
        rvc.TRAIN_STEP_KEY: train_step,
        "env_steps": env_steps,
    }
    return agent, variables


def _batch_items(cfg: Config) -> int:
    """Reverb items per learner iteration: at least `collect_steps` env steps."""
    return max(1, math.ceil(cfg.collect_steps / SEQUENCE_LENGTH))


def wait_for_server(address: str, timeout: float = SERVER_WAIT_SECONDS) -> None:
    """Returns once the Reverb server at `address` answers; raises TimeoutError after `timeout`."""
    deadline = time.time() + timeout
    client = reverb.Client(address)
    while True:
        try:
            client.server_info(timeout=5)
            return
        except (RuntimeError, reverb.errors.ReverbError, tf.errors.DeadlineExceededError) as e:
            if time.time() > deadline:
                raise TimeoutError(f"no Reverb server at {address} after {timeout:.0f} s") from e
            time.sleep(1)


def serve(cfg: Config, port: int, checkpoint_dir: str, log=_log) -> None:
    """Runs the Reverb server on `port` until SIGTERM or Ctrl-C.

    Tables: two synchronized FIFO queues of experience (training and the
    normalizers' copy, each item sampled once) and the variable container. With
    a checkpoint in `checkpoint_dir` (written when the learner checkpoints), a
    restarted server comes back with its queued items and the latest variables.
    """
    _check_agent(cfg)
    time_step_spec, action_spec = _specs(cfg.env_id)
    agent, variables = _model(cfg, time_step_spec, action_spec)
    item_signature = tensor_spec.add_outer_dim(agent.collect_data_spec, SEQUENCE_LENGTH)
    queue_size = QUEUE_BATCHES * _batch_items(cfg)
    queues = [
        reverb.Table(
            name=name,
            sampler=reverb.selectors.Fifo(),
            remover=reverb.selectors.Fifo(),
            max_size=queue_size,
            max_times_sampled=1,
            rate_limiter=reverb.rate_limiters.MinSize(1),
            signature=item_signature,
        )
        for name in (TRAINING_TABLE, NORMALIZATION_TABLE)
    ]
    variable_table = reverb.Table(
        name=rvc.DEFAULT_TABLE,
        sampler=reverb.selectors.Uniform(),
        remover=reverb.selectors.Fifo(),
        max_size=1,
        max_times_sampled=0,
        rate_limiter=reverb.rate_limiters.MinSize(1),
        signature=tf.nest.map_structure(lambda v: tf.TensorSpec(v.shape, v.dtype), variables),
    )
    os.makedirs(checkpoint_dir, exist_ok=True)
    server = reverb.Server(
        tables=[*queues, variable_table],
        port=port,
        checkpointer=reverb.checkpointers.DefaultCheckpointer(path=checkpoint_dir),
    )
    log(f"Reverb server on port {port}, checkpoints in {checkpoint_dir}")
    try:
        # Sleeping in Python (not server.wait()) lets SIGTERM's handler run.
        while True:
            time.sleep(1)
    finally:
        server.stop()


class SuccessRate(py_metrics.StreamingMetric):
    """Share of recent episodes that lifted the block (their last reward holds the bonus)."""

    def __init__(self, env_id: str, buffer_size: int = record.METRIC_WINDOW):
        self._env_id = env_id
        super().__init__("SuccessRate", buffer_size=buffer_size)

    def _reset(self, batch_size):
        pass

    def _batched_call(self, trajectory):
        last = np.where(trajectory.is_last())
        rewards = np.asarray(trajectory.reward)[last]
        self.add_to_buffer([float(envs.is_success(self._env_id, r)) for r in rewards])


def collect(cfg: Config, address: str, task: int, summary_dir: str, log=_log) -> int:
    """Collects into the Reverb server at `address` until the learner finishes.

    Returns the env steps collected. Waits for the server and then for the
    learner's first variables, so collectors may start before either.
    """
    _check_agent(cfg)
    # One core's worth of work: TensorFlow's thread pools would only contend.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    envs.silence_env_prints()  # the Kuka env prints every grasp; logs go to stderr
    seed = cfg.seed * 10_007 + 1_000 + task
    env = envs.load(cfg.env_id, seed=seed)
    tf.random.set_seed(seed)
    agent, variables = _model(
        cfg, tensor_spec.from_spec(env.time_step_spec()), tensor_spec.from_spec(env.action_spec())
    )
    env_steps = variables["env_steps"]
    policy = py_tf_eager_policy.PyTFEagerPolicy(agent.collect_policy, use_tf_function=True)
    log(f"Collector {task}: waiting for the Reverb server at {address} ...")
    wait_for_server(address)
    container = rvc.ReverbVariableContainer(address, table_names=[rvc.DEFAULT_TABLE])
    log(f"Collector {task}: waiting for the learner's first policy ...")
    container.update(variables)
    observer = reverb_utils.ReverbTrajectorySequenceObserver(
        reverb.Client(address),
        [TRAINING_TABLE, NORMALIZATION_TABLE],
        sequence_length=SEQUENCE_LENGTH,
        stride_length=SEQUENCE_LENGTH,
    )
    metrics = [
        py_metrics.AverageReturnMetric(buffer_size=record.METRIC_WINDOW),
        py_metrics.AverageEpisodeLengthMetric(buffer_size=record.METRIC_WINDOW),
        py_metrics.NumberOfEpisodes(),
        py_metrics.EnvironmentSteps(),
    ]
    if envs.is_grasp_env(cfg.env_id):
        metrics.append(SuccessRate(cfg.env_id))
    collect_actor = actor.Actor(
        env,
        policy,
        env_steps,  # summaries share the learner's x axis: env steps trained on
        steps_per_run=SEQUENCE_LENGTH,
        observers=[observer],
        metrics=metrics,
        summary_dir=summary_dir,
        summary_interval=cfg.collect_steps,
    )
    collected, started = 0, time.time()
    log(f"Collector {task}: collecting from learner env step {int(env_steps.numpy()):,}")
    try:
        while int(env_steps.numpy()) < cfg.total_steps:
            t0 = time.time()
            collect_actor.run()
            collected += SEQUENCE_LENGTH
            with collect_actor.summary_writer.as_default(step=env_steps):
                tf.summary.scalar("Metrics/EnvStepsPerSecond", SEQUENCE_LENGTH / (time.time() - t0))
            container.update(variables)
    finally:
        observer.close()
        collect_actor.summary_writer.flush()
        env.close()
    rate = collected / max(time.time() - started, 1e-9)
    log(f"Collector {task}: learner finished; collected {collected:,} env steps ({rate:,.0f}/s)")
    return collected


def learn(cfg: Config, run_dir: str, address: str, log=_log, syncer=None) -> dict:
    """Trains from the Reverb server at `address` to `cfg.total_steps`; returns the final eval.

    Env steps count the steps trained on. The learner evaluates in its own env
    process, checkpoints (asking Reverb to checkpoint too), exports the greedy
    policy and, at the end, publishes variables that tell collectors to stop.
    """
    _check_agent(cfg)
    tf.random.set_seed(cfg.seed)
    eval_env = actors._EnvRunner(cfg.env_id, cfg.seed * 10_007 + 999)  # noqa: SLF001
    agent, variables = _model(
        cfg,
        tensor_spec.from_spec(eval_env.time_step_spec),
        tensor_spec.from_spec(eval_env.action_spec),
    )
    train_step, env_steps = variables[rvc.TRAIN_STEP_KEY], variables["env_steps"]
    log(f"Learner: waiting for the Reverb server at {address} ...")
    wait_for_server(address)
    client = reverb.Client(address)

    def dataset_fn(table):
        replay = reverb_replay_buffer.ReverbReplayBuffer(
            agent.collect_data_spec,
            sequence_length=SEQUENCE_LENGTH,
            table_name=table,
            server_address=address,
        )
        preprocess = agent.preprocess_sequence if table == TRAINING_TABLE else None
        return lambda: replay.as_dataset(sample_batch_size=1, sequence_preprocess_fn=preprocess)

    learner = ppo_learner.PPOLearner(
        run_dir,
        train_step,
        agent,
        experience_dataset_fn=dataset_fn(TRAINING_TABLE),
        normalization_dataset_fn=dataset_fn(NORMALIZATION_TABLE),
        num_samples=_batch_items(cfg),
        num_epochs=cfg.num_epochs,
        minibatch_size=cfg.minibatch_size,
        shuffle_buffer_size=_batch_items(cfg) * SEQUENCE_LENGTH,
        # Checkpoints and summaries are ours, on the env-step axis of local training.
        checkpoint_interval=-1,
        summary_interval=2**62,
    )

    def episodes(n: int):
        actor_ = agents.NumpyActor(
            agents.actor_params(agent),
            eval_env.action_spec.minimum,
            eval_env.action_spec.maximum,
            seed=int(env_steps.numpy()),
        )
        return [eval_env.episode(actor_) for _ in range(n)]

    recorder = record.RunRecorder(
        cfg,
        run_dir,
        agent,
        {"agent": agent, "env_steps": env_steps, "train_step": train_step},
        episodes=episodes,
        log=log,
        syncer=syncer,
        on_save=client.checkpoint,  # Reverb's tables are saved with the learner
    )
    container = rvc.ReverbVariableContainer(address, table_names=[rvc.DEFAULT_TABLE])
    container.push(variables)
    log(f"Learner: training on batches of {_batch_items(cfg)} x {SEQUENCE_LENGTH} steps")
    try:
        while recorder.steps < cfg.total_steps:
            t0 = time.time()
            loss_info = learner.run()
            new_steps = int(learner.num_frames_for_training.numpy())
            recorder.record(new_steps, time.time() - t0, loss_info)
            container.push(variables)
    finally:
        recorder.close()
    result = recorder.final_eval()
    # Collectors stop once they see the final step count.
    container.push(variables)
    return result
