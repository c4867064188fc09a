"""The local training loop: env processes collect, the agent learns, `record` keeps the
run; and `make eval` of a state run, which builds the same agent from its checkpoint."""

from __future__ import annotations

import collections
import math
import sys
import time

import tensorflow as tf

from trainer import builder, evaluate, record
from trainer import learner as learner_lib
from trainer.config import Config
from trainer.rundir import RunDir


def train(cfg: Config, run_dir: str, log=None, syncer=None) -> dict:
    """Trains (or resumes) the run in `run_dir` to `cfg.total_steps`; returns the final eval."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    log(f"Starting {cfg.num_envs} env processes for {cfg.env_id} ...")
    with builder.run(cfg, run_dir, cfg.num_envs, log=log, syncer=syncer) as run:
        pool, recorder = run.parts.pool, run.recorder
        per_env = math.ceil(cfg.collect_steps / cfg.num_envs)
        recent = collections.deque(maxlen=record.METRIC_WINDOW)

        def share(at: int) -> int:
            # The last iteration collects only what is left (rounded up per env).
            left = math.ceil((cfg.total_steps - at) / cfg.num_envs)
            return max(2, min(per_env, left))

        pending = 0  # steps per env of the collection under way, if any
        while recorder.steps < cfg.total_steps:
            t0, steps, idle = time.time(), recorder.steps, pool.idle_seconds
            if not pending:
                pending = share(steps)
                pool.start_collect(run.parts.params(), pending)
            after = steps + pending * cfg.num_envs
            # The env processes keep busy while the learner trains, except before an
            # evaluation (which needs them) and at the end.
            then = None
            if cfg.overlap and after < cfg.total_steps and not record.eval_due(cfg, steps, after):
                then = (run.parts.params(), share(after))
            results = pool.finish_collect(then)
            new_steps, pending = pending * cfg.num_envs, then[1] if then else 0
            experience = learner_lib.to_trajectory(
                [seg for seg, _ in results], run.parts.agent.collect_data_spec
            )
            for _, episodes in results:
                recent.extend(episodes)
            loss_info = run.learner.learn(experience, new_steps)
            seconds = time.time() - t0
            idle_share = (pool.idle_seconds - idle) / (cfg.num_envs * seconds)
            recorder.record(
                new_steps, seconds, loss_info, recent, {"Metrics/EnvIdleShare": idle_share}
            )
    return run.result


def evaluate_run(cfg: Config, run_dir: str) -> tuple[str, dict]:
    """`make eval`: `cfg.eval_episodes` greedy episodes with the run's newest checkpoint,
    in env processes of its own (the record evaluates in the training loop's).

    Writes eval-<step>.json beside the run's eval.json and returns (its path, the
    result); ValueError when the run has no checkpoint.
    """
    checkpoints = RunDir(run_dir).checkpoints
    if not record.listed_checkpoints(checkpoints):  # before any env process starts
        raise ValueError(f"no checkpoint in {checkpoints}")
    with builder.agent(cfg, min(cfg.num_envs, cfg.eval_episodes)) as parts:
        checkpoint = tf.train.Checkpoint(**parts.checkpointed())
        record.restore_newest(checkpoint, checkpoints, log=lambda msg: print(msg, file=sys.stderr))
        step = int(parts.env_steps.numpy())
        episodes = parts.episodes(cfg.eval_episodes)
    result = evaluate.summarize(episodes, step, cfg.env_id)
    path = RunDir(run_dir).eval_at(step)
    evaluate.write_json(result, path)
    return path, result
