"""The run's record, the same for every training loop: checkpoints, summaries, evaluations,
the exported policy and uploads, on the env-step axis.
"""

from __future__ import annotations

import os
import time

import numpy as np
import tensorflow as tf
from tf_agents.policies import policy_saver

from trainer import agents, averaging, evaluate, processes, rundir
from trainer.config import Config
from trainer.errors import TrainerError
from trainer.progress import Progress
from trainer.rundir import RunDir

# Training metrics average the most recent episodes, as tf-agents' metrics do.
METRIC_WINDOW = 100
# A gs:// run uploads its TensorBoard events at least this often.
SYNC_SECONDS = 60


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


def evals_left(cfg: Config, steps: int) -> int:
    """Evaluations still due after env step `steps`, the final one included."""
    if not cfg.eval_interval:
        return 1
    return max(0, (cfg.total_steps - 1) // cfg.eval_interval - steps // cfg.eval_interval) + 1


def _export_policy(saver, run_dir: str) -> None:
    """Writes the policy beside `policy/` and swaps it in, so a reader never sees half of one."""
    rundir.export_dir(RunDir(run_dir).policy, saver.save)


class CheckpointError(TrainerError, RuntimeError):
    """The run has checkpoints, and none of them restores."""


def _verify(path: str) -> None:
    """Reads every tensor of a checkpoint, so that a torn file fails here, not mid-run.

    Variables created later (the optimizer's slots) restore lazily, so a bad tensor
    would otherwise surface only at the first gradient step.
    """
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
        reader.get_tensor(name)


def listed_checkpoints(directory: str) -> list[str]:
    """The checkpoints TensorFlow's pointer file lists, oldest first."""
    state = tf.train.get_checkpoint_state(directory)
    return list(state.all_model_checkpoint_paths) if state else []


def restore_newest(checkpoint: tf.train.Checkpoint, directory: str, log, keep: int = 3):
    """Restores the newest checkpoint in `directory` that restores; returns its manager.

    A checkpoint that fails is named in one line and the next older one is tried;
    CheckpointError names every file when none restores. No checkpoint: a fresh run.
    """
    failed = []
    for path in reversed(listed_checkpoints(directory)):
        try:
            _verify(path)
            checkpoint.restore(path).expect_partial()
        # What TensorFlow's checkpoint reader raises on torn files varies by the damage.
        except (tf.errors.OpError, ValueError, IndexError, KeyError, RuntimeError) as e:
            reason = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
            log(f"Skipping checkpoint {path}: it does not restore ({reason})")
            failed.append(f"{os.path.basename(path)} ({type(e).__name__})")
            continue
        break
    else:
        if failed:
            raise CheckpointError(f"no checkpoint in {directory} restores: {', '.join(failed)}")
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=keep)


class RunRecorder:
    """What every training loop does around its iterations, on the env-step axis.

    Restores the run's checkpoint (`tracked` variables, `env_steps` among them);
    after each iteration writes the train summaries and the progress line, and
    checkpoints, exports the greedy policy and evaluates when due; keeps what was
    learned however the loop ends (`close`); writes eval.json (`final_eval`).
    `episodes(n)` plays n greedy episodes; `on_save` runs after each checkpoint;
    `syncer` (a storage.Syncer) is asked to upload after every checkpoint, every
    SYNC_SECONDS for the TensorBoard events, and once the evaluation is written;
    `average` (an averaging.PolicyAverage) follows each iteration and is what is exported.
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
        average=None,
    ):
        self._cfg, self._run_dir, self._log = cfg, run_dir, log
        self._average = average
        self._episodes, self._syncer, self._on_save = episodes, syncer, on_save
        self.env_steps = tracked["env_steps"]
        rundir.recover_export(RunDir(run_dir).policy)
        self._checkpoint = tf.train.Checkpoint(**tracked)
        self._manager = restore_newest(self._checkpoint, RunDir(run_dir).checkpoints, log)
        self.start = self.steps = int(self.env_steps.numpy())
        self._saved = self.start  # the env step of the newest checkpoint
        if self.start:
            log(f"Resuming {run_dir} from env step {self.start:,}")
        self._saver = policy_saver.PolicySaver(
            agents.greedy_policy(agent), train_step=self.env_steps
        )
        self._train_writer = tf.summary.create_file_writer(RunDir(run_dir).train_events)
        self._eval_writer = tf.summary.create_file_writer(RunDir(run_dir).eval_events)
        self._progress = Progress(
            cfg.total_steps, lambda steps: evals_left(cfg, steps) * cfg.eval_episodes
        )
        self._last_sync = time.time()

    def _sync(self, force: bool = False) -> None:
        if self._syncer is not None and (force or time.time() - self._last_sync > SYNC_SECONDS):
            self._syncer.request()
            self._last_sync = time.time()

    def _save(self) -> None:
        step = int(self.env_steps.numpy())
        with processes.signals_held():  # a signal now waits: close() need not save again
            self._manager.save(checkpoint_number=step)
            with averaging.greedy_weights(self._average):
                _export_policy(self._saver, self._run_dir)
            self._saved = step
        if self._on_save is not None:
            self._on_save()
        self._sync(force=True)

    def _evaluate(self, final: bool) -> dict:
        with self._progress.evaluating(self._cfg.eval_episodes):
            episodes = self._episodes(self._cfg.eval_episodes)
        result = evaluate.summarize(episodes, int(self.env_steps.numpy()), self._cfg.env_id)
        evaluate.write_summaries(self._eval_writer, result)
        if final:
            evaluate.write_json(result, RunDir(self._run_dir).eval_json)
        self._log(evaluate.describe(result))
        return result

    def record(self, new_steps: int, seconds: float, loss_info, recent=(), extra=None) -> None:
        """Counts an iteration of `new_steps` env steps; `recent` finished Episodes;
        `extra` more scalars by tag."""
        self.env_steps.assign_add(new_steps)
        if self._average is not None:
            self._average.update(new_steps)
        previous, self.steps = self.steps, int(self.env_steps.numpy())
        avg_return = float(np.mean([e.ret for e in recent])) if recent else None
        successes = [e.success for e in recent if e.success is not None]
        success = float(np.mean(successes)) if successes else None
        length = float(np.mean([e.length for e in recent])) if recent else None
        with self._train_writer.as_default(step=self.steps):
            tf.summary.scalar("Metrics/EnvStepsPerSecond", new_steps / seconds)
            if recent:
                tf.summary.scalar("Metrics/AverageReturn", avg_return)
                tf.summary.scalar("Metrics/AverageEpisodeLength", length)
            if success is not None:
                tf.summary.scalar("Metrics/SuccessRate", success)
            for name, value in _loss_scalars(loss_info).items():
                tf.summary.scalar(f"Losses/{name}", value)
            for tag, value in (extra or {}).items():
                tf.summary.scalar(tag, value)
        self._progress.update(self.steps, avg_return, success, length)
        self._sync()
        if self.steps // self._cfg.checkpoint_interval > previous // self._cfg.checkpoint_interval:
            self._save()
        if eval_due(self._cfg, previous, self.steps):
            self._evaluate(final=False)

    def close(self) -> None:
        """Whatever stopped the loop, keeps what was learned (once: a run that ends on a
        checkpoint has just saved and exported; a second save cost a tiny run about 0.4 s)."""
        if int(self.env_steps.numpy()) > self._saved:
            self._save()
        self._train_writer.flush()

    def final_eval(self) -> dict:
        result = self._evaluate(final=True)
        self._eval_writer.flush()
        self._sync(force=True)
        return result
