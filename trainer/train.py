"""The training loop: env processes collect, the agent learns, the run directory records it."""

from __future__ import annotations

import collections
import math
import os
import shutil
import sys
import time

import numpy as np
import tensorflow as tf
from tf_agents.policies import policy_saver
from tf_agents.replay_buffers import tf_uniform_replay_buffer
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import trajectory
from tf_agents.utils import common

from trainer import actors, agents, evaluate
from trainer.config import Config

# Training metrics average the most recent episodes, as tf-agents' metrics do.
METRIC_WINDOW = 100
# A gs:// run uploads its TensorBoard events at least this often.
SYNC_SECONDS = 60


class Progress:
    """One line per iteration on stderr: steps, recent speed, ETA, return and success.

    Speed and ETA come from the iterations after the first, over the last few: start-up
    and TensorFlow's tracing of the first iteration would make the first ETAs several
    times too long, so until a second iteration has finished they read "?".
    """

    def __init__(self, total: int, stream=sys.stderr):
        self._total, self._stream = total, stream
        self._marks: collections.deque = collections.deque(maxlen=6)

    def update(self, steps: int, avg_return: float | None, success: float | None) -> None:
        self._marks.append((time.time(), steps))
        rate, eta = None, float("inf")
        if len(self._marks) > 1:
            (t0, s0), (t1, s1) = self._marks[0], self._marks[-1]
            rate = (s1 - s0) / max(t1 - t0, 1e-9)
            eta = max(self._total - steps, 0) / rate if rate > 0 else float("inf")
        parts = [
            f"step {steps:,}/{self._total:,} ({100 * min(steps / self._total, 1):.0f}%)",
            f"{rate:,.0f} steps/s" if rate is not None else "? steps/s",
            f"ETA {_duration(eta)}",
        ]
        if avg_return is not None:
            parts.append(f"return {avg_return:,.0f}")
        if success is not None:
            parts.append(f"success {100 * success:.0f}%")
        print(" | ".join(parts), file=self._stream, flush=True)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _to_trajectory(segments, data_spec):
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


class _Learner:
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


def _loss_scalars(loss_info) -> dict[str, float]:
    if loss_info is None:
        return {}
    scalars = {"total_loss": float(loss_info.loss)}
    extra = loss_info.extra
    if hasattr(extra, "_asdict"):
        for name, value in extra._asdict().items():
            value = tf.convert_to_tensor(value)
            if value.shape.rank == 0:
                scalars[name] = float(value)
    return scalars


def eval_due(cfg: Config, before: int, after: int) -> bool:
    """Whether training from env step `before` to `after` crossed an evaluation point."""
    return bool(
        cfg.eval_interval
        and after < cfg.total_steps
        and after // cfg.eval_interval > before // cfg.eval_interval
    )


def _recover_policy(run_dir: str) -> None:
    """Puts back the previous export if a crash came between _export_policy's two renames."""
    final = os.path.join(run_dir, "policy")
    if not os.path.exists(final) and os.path.exists(final + ".old"):
        os.rename(final + ".old", final)


def _export_policy(saver, run_dir: str) -> None:
    """Writes the policy beside `policy/` and swaps it in, so a reader never sees half of one."""
    final = os.path.join(run_dir, "policy")
    staging, old = final + ".tmp", final + ".old"
    for path in (staging, old):
        shutil.rmtree(path, ignore_errors=True)
    saver.save(staging)
    if os.path.exists(final):
        os.rename(final, old)
    os.rename(staging, final)
    shutil.rmtree(old, ignore_errors=True)


class RunRecorder:
    """What every training loop does around its iterations, on the env-step axis.

    Restores the run's checkpoint (`tracked` variables, `env_steps` among them);
    after each iteration writes the train summaries and the progress line, and
    checkpoints, exports the greedy policy and evaluates when due; keeps what was
    learned however the loop ends (`close`); writes eval.json (`final_eval`).
    `episodes(n)` plays n greedy episodes; `on_save` runs after each checkpoint;
    `syncer` (a storage.Syncer) is asked to upload after every checkpoint, every
    SYNC_SECONDS for the TensorBoard events, and once the evaluation is written.
    """

    def __init__(
        self,
        cfg: Config,
        run_dir: str,
        agent,
        tracked: dict,
        episodes,
        log,
        syncer=None,
        on_save=None,
    ):
        self._cfg, self._run_dir, self._log = cfg, run_dir, log
        self._episodes, self._syncer, self._on_save = episodes, syncer, on_save
        self.env_steps = tracked["env_steps"]
        _recover_policy(run_dir)
        self._checkpointer = common.Checkpointer(
            os.path.join(run_dir, "checkpoints"), max_to_keep=3, **tracked
        )
        self._checkpointer.initialize_or_restore().expect_partial()
        self.start = self.steps = int(self.env_steps.numpy())
        if self.start:
            log(f"Resuming {run_dir} from env step {self.start:,}")
        self._saver = policy_saver.PolicySaver(
            agents.greedy_policy(agent), train_step=self.env_steps
        )
        self._train_writer = tf.summary.create_file_writer(os.path.join(run_dir, "train"))
        self._eval_writer = tf.summary.create_file_writer(os.path.join(run_dir, "eval"))
        self._progress = Progress(cfg.total_steps)
        self._last_sync = time.time()

    def _sync(self, force: bool = False) -> None:
        if self._syncer is not None and (force or time.time() - self._last_sync > SYNC_SECONDS):
            self._syncer.request()
            self._last_sync = time.time()

    def _save(self) -> None:
        self._checkpointer.save(global_step=int(self.env_steps.numpy()))
        _export_policy(self._saver, self._run_dir)
        if self._on_save is not None:
            self._on_save()
        self._sync(force=True)

    def _evaluate(self, final: bool) -> dict:
        episodes = self._episodes(self._cfg.eval_episodes)
        result = evaluate.summarize(episodes, int(self.env_steps.numpy()), self._cfg.env_id)
        evaluate.write_summaries(self._eval_writer, result)
        if final:
            evaluate.write_json(result, os.path.join(self._run_dir, "eval.json"))
        self._log(evaluate.describe(result))
        return result

    def record(self, new_steps: int, seconds: float, loss_info, recent=()) -> None:
        """Counts an iteration of `new_steps` env steps; `recent` finished Episodes."""
        self.env_steps.assign_add(new_steps)
        previous, self.steps = self.steps, int(self.env_steps.numpy())
        avg_return = float(np.mean([e.ret for e in recent])) if recent else None
        successes = [e.success for e in recent if e.success is not None]
        success = float(np.mean(successes)) if successes else None
        with self._train_writer.as_default(step=self.steps):
            tf.summary.scalar("Metrics/EnvStepsPerSecond", new_steps / seconds)
            if recent:
                tf.summary.scalar("Metrics/AverageReturn", avg_return)
                tf.summary.scalar(
                    "Metrics/AverageEpisodeLength", np.mean([e.length for e in recent])
                )
            if success is not None:
                tf.summary.scalar("Metrics/SuccessRate", success)
            for name, value in _loss_scalars(loss_info).items():
                tf.summary.scalar(f"Losses/{name}", value)
        self._progress.update(self.steps, avg_return, success)
        self._sync()
        if self.steps // self._cfg.checkpoint_interval > previous // self._cfg.checkpoint_interval:
            self._save()
        if eval_due(self._cfg, previous, self.steps):
            self._evaluate(final=False)

    def close(self) -> None:
        """Whatever stopped the loop, keeps what was learned."""
        if int(self.env_steps.numpy()) > self.start:
            self._save()
        self._train_writer.flush()

    def final_eval(self) -> dict:
        result = self._evaluate(final=True)
        self._eval_writer.flush()
        self._sync(force=True)
        return result


def train(cfg: Config, run_dir: str, log=None, syncer=None) -> dict:
    """Trains (or resumes) the run in `run_dir` to `cfg.total_steps`; returns the final eval."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    # Python's random too: unseeded Keras initializers draw their seeds from it.
    tf.keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    log(f"Starting {cfg.num_envs} env processes for {cfg.env_id} ...")
    with actors.ActorPool(cfg.env_id, cfg.num_envs, cfg.seed) as pool:
        time_step_spec = tensor_spec.from_spec(pool.time_step_spec)
        action_spec = tensor_spec.from_spec(pool.action_spec)
        train_step = tf.Variable(0, dtype=tf.int64, name="train_step")
        env_steps = tf.Variable(0, dtype=tf.int64, name="env_steps")
        agent = agents.create(
            cfg,
            time_step_spec,
            action_spec,
            train_step,
            done=lambda: tf.cast(env_steps, tf.float32) / cfg.total_steps,
        )
        learner = _Learner(cfg, agent)
        tracked = {"agent": agent, "env_steps": env_steps, "train_step": train_step}
        if learner.replay_buffer is not None:
            tracked["replay_buffer"] = learner.replay_buffer
        recorder = RunRecorder(
            cfg,
            run_dir,
            agent,
            tracked,
            episodes=lambda n: pool.evaluate(agents.actor_params(agent), n),
            log=log,
            syncer=syncer,
        )
        per_env = math.ceil(cfg.collect_steps / cfg.num_envs)
        recent = collections.deque(maxlen=METRIC_WINDOW)

        def share(at: int) -> int:
            # The last iteration collects only what is left (rounded up per env).
            left = math.ceil((cfg.total_steps - at) / cfg.num_envs)
            return max(2, min(per_env, left))

        pending = 0  # steps per env of the collection under way, if any
        try:
            while recorder.steps < cfg.total_steps:
                t0, steps = time.time(), recorder.steps
                if not pending:
                    pending = share(steps)
                    pool.start_collect(agents.actor_params(agent), pending)
                results = pool.finish_collect()
                new_steps, pending = pending * cfg.num_envs, 0
                after = steps + new_steps
                # The env processes keep busy while the learner trains, except before an
                # evaluation (which needs them) and at the end.
                if cfg.overlap and after < cfg.total_steps and not eval_due(cfg, steps, after):
                    pending = share(after)
                    pool.start_collect(agents.actor_params(agent), pending)
                experience = _to_trajectory([seg for seg, _ in results], agent.collect_data_spec)
                for _, episodes in results:
                    recent.extend(episodes)
                loss_info = learner.learn(experience, new_steps)
                recorder.record(new_steps, time.time() - t0, loss_info, recent)
        finally:
            recorder.close()
        return recorder.final_eval()
