"""What each command of `task.py` does, given its settings (task.py reads them from argv).

Each returns 0 when done, or 130 on Ctrl-C; a failure raises an errors.TrainerError,
which carries its exit code (bad input: UsageError, exit 2, before anything is written).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from trainer import checks, errors, launch, processes, rundir, runs, schema, start
from trainer.config import Config, RenderConfig, RoleConfig, VisionConfig
from trainer.errors import TrainerError, UsageError
from trainer.rundir import RunDir


def plot(logdir: str, run: str) -> int:
    """Writes the run's learning_curve.png from its event files."""
    run_dir = os.path.join(logdir, run) if run else runs.latest_run(logdir)
    if run and not os.path.isfile(RunDir(run_dir).config):
        raise UsageError(runs.missing_run(logdir, run))
    if run_dir is None or not os.path.isdir(RunDir(run_dir).train_events):
        raise UsageError(f"no run with TensorBoard events at {run_dir or logdir}")
    from trainer import plot as plotting  # reading event files loads TensorFlow

    with errors.usage():
        path = plotting.learning_curve(run_dir)
    print(f"Wrote {path}", file=sys.stderr)
    return 0


def render(source: Config, cfg: RenderConfig) -> int:
    """Films a policy; `source` names the run (logdir, run) and the env and seed without one."""
    from trainer import render as rendering

    with errors.usage():
        checks.validate_render(cfg)
    remote = source.logdir if source.logdir.startswith("gs://") else None
    if remote:
        client, local_root = start.gcs_root(remote, source.staging_dir)
        run_id = start.fetch_for_render(client, remote, local_root, source.run)
        source = dataclasses.replace(source, logdir=local_root, run=run_id)
    plan = rendering.plan(source, cfg.policy)  # RenderError, a UsageError, if it cannot
    print(f"Filming {plan.policy} on {plan.env_id} ...", file=sys.stderr, flush=True)
    try:
        out_dir = rendering.render(cfg, plan)
    except OSError as e:
        if not rundir.is_disk_full(e):
            raise
        raise TrainerError(
            f"no space left on the disk of {plan.out_root}; nothing was written"
        ) from None
    print(f"Done: {out_dir}/video.mp4, video.gif, preview.png, render.json", file=sys.stderr)
    if remote:
        from trainer import storage

        run_url = storage.join(remote, os.path.basename(plan.out_root))
        mirror = storage.RunMirror(client, plan.out_root, run_url)
        mirror.upload(only=os.path.relpath(out_dir, plan.out_root))  # or StorageError
        print(
            f"Uploaded to {storage.join(run_url, RunDir.RENDERS, os.path.basename(out_dir))}",
            file=sys.stderr,
        )
    return 0


def evaluate(cfg: Config) -> int:
    """Evaluates a run's newest checkpoint again into eval-<step>.json, beside eval.json."""
    if not cfg.run:
        raise UsageError("eval needs --run (the run to evaluate)")
    if cfg.logdir.startswith("gs://"):
        raise UsageError("eval reads a local run; render or train it from gs:// first")
    run_dir = os.path.join(cfg.logdir, cfg.run)
    if not os.path.exists(RunDir(run_dir).config):
        raise UsageError(runs.missing_run(cfg.logdir, cfg.run))
    with errors.usage():
        saved = RunDir(run_dir).load_config()
    saved = dataclasses.replace(saved, eval_episodes=cfg.eval_episodes)
    with errors.usage():
        checks.validate(saved)
    from trainer import envs
    from trainer import evaluate as evaluation
    from trainer import train as training

    evaluate_run = training.evaluate_run
    if saved.env_id == envs.CAMERA_ENV_ID:
        from trainer import dagger

        evaluate_run = dagger.evaluate_run
    with errors.usage():
        path, result = evaluate_run(saved, run_dir)
    print(evaluation.describe(result), file=sys.stderr)
    print(f"Wrote {path}", file=sys.stderr)
    return 0


def train(
    cfg: Config,
    command_line: str,
    roles: RoleConfig | None = None,
    given: Mapping[str, Any] | None = None,
    vision: VisionConfig | None = None,
) -> int:
    """Trains a run; with `roles`, as the distributed learner (same run directory, same exits).

    `command_line` is recorded in the run's command.txt. A resumed run keeps its saved
    settings but for the flags in `given`, which holds their values (start.prepare); a
    distributed learner passes None, since its collectors take every setting from the same
    flags.
    KukaGraspCam-v0 trains its camera policy with `vision` (trainer/dagger.py).
    """
    _check_camera(cfg, vision or VisionConfig(), roles)
    cfg, run_dir, mirror = start.prepare(cfg, command_line, given, _flags_it_reads(given))
    print(f"Run directory: {run_dir}", file=sys.stderr, flush=True)
    camera = _is_camera(cfg)  # the run's own env: a resume may not name it
    try:  # until the Syncer owns it, a gs:// run's lease is released here if anything fails
        # TensorFlow loads only once the input is known good.
        from trainer import agents, train

        print(
            f"Learning on {agents.start_tensorflow(cfg.intra_op_threads)}",
            file=sys.stderr,
            flush=True,
        )
        syncer = None
        if mirror is not None:
            from trainer import storage

            syncer = storage.Syncer(mirror)
            deliver_sigterm = storage.bound_sigterm(syncer, cfg.sigterm_budget)
            print(f"Uploading to {mirror.url}", file=sys.stderr, flush=True)
    except BaseException:
        if mirror is not None:
            mirror.release_lease()
        raise
    try:
        try:
            if roles is not None:
                from trainer import distributed

                distributed.learn(
                    cfg, run_dir, roles.reverb_address, roles.data_timeout, syncer=syncer
                )
            elif camera:
                from trainer import dagger

                dagger.train(cfg, vision or VisionConfig(), run_dir, given or {}, syncer=syncer)
            else:
                train.train(cfg, run_dir, syncer=syncer)
        finally:
            if syncer is not None:
                syncer.close()
                deliver_sigterm()
    except TimeoutError as e:  # the Reverb server or an env process stopped answering
        raise TrainerError(str(e)) from None
    except KeyboardInterrupt:
        print(f"Interrupted; the last checkpoint is in {run_dir}", file=sys.stderr)
        return 130
    except TrainerError:
        raise
    except Exception as e:  # OSError, or TensorFlow's own for the same disk
        message = RunDir(run_dir).failure_message(e)  # a full or unwritable disk, else a bug
        if message is None:
            raise
        raise TrainerError(message) from None
    print(
        f"Done: policy in {RunDir(run_dir).policy}, evaluation in {RunDir(run_dir).eval_json}",
        file=sys.stderr,
    )
    return 0


_CAMERA_ONE_PROCESS = (
    "KukaGraspCam-v0 trains in one process, not as distributed roles (docs/vision.md)"
)


def _flags_it_reads(given: Iterable[str] | None):
    """The check that every setting given is one the run reads: a camera setting needs a
    camera run, an agent's own setting (schema.owners) a run of that agent. The run's
    own env and agent decide, which a resume need not name, so start.prepare calls it
    once the run is known; a flag accepted and ignored would mislead."""
    given = frozenset(given or ())
    vision = {f.name for f in dataclasses.fields(VisionConfig)}

    def check(cfg: Config) -> None:
        stray = sorted(given & vision)
        if stray and not _is_camera(cfg):
            raise UsageError(
                f"--{stray[0]} is a setting of KukaGraspCam-v0 runs, and this run trains "
                f"{cfg.env_id}; leave it out or add --env_id=KukaGraspCam-v0"
            )
        _check_agent_flags(cfg, given)

    return check


def _check_agent_flags(cfg: Config, given: frozenset[str]) -> None:
    """UsageError naming the first flag in `given` that only another agent reads."""
    other = sorted(name for name in given if not schema.reads(cfg.agent, name))
    if other:
        agents = "/".join(schema.owners(Config)[other[0]])
        raise UsageError(
            f"--{other[0]} is a setting of --agent={agents} runs, and this run "
            f"trains with {cfg.agent}; leave it out"
        )


def _is_camera(cfg: Config) -> bool:
    from trainer import envs  # gym and pybullet, which every training start loads anyway

    return cfg.env_id == envs.CAMERA_ENV_ID


def _check_camera(cfg: Config, vision: VisionConfig, roles: RoleConfig | None) -> None:
    """UsageError, before the run directory is touched, for camera settings out of range,
    a camera run asked of the distributed roles, or a bad --teacher."""
    with errors.usage():
        checks.validate_vision(vision)
        if not _is_camera(cfg):
            return
        if roles is not None:
            raise ValueError(_CAMERA_ONE_PROCESS)
        if vision.teacher:
            from trainer import labelling

            labelling.check_teacher(vision.teacher)


def _config_flags(cfg: Config) -> list[str]:
    """Flags that rebuild `cfg` in a child process (none that only another agent reads)."""
    out = []
    for name, value in schema.flat(cfg).items():
        if isinstance(value, bool):
            out.append(f"--{'' if value else 'no'}{name}")
        elif isinstance(value, tuple):
            out.append(f"--{name}={','.join(str(v) for v in value)}")
        else:
            out.append(f"--{name}={value}")
    return out


def role(command: str, cfg: Config, roles: RoleConfig, command_line: str, given=frozenset()) -> int:
    """The distributed roles (`reverb`, `collect`, `learn`) and their local launcher;
    `given` names the flags given, none of which may be another agent's."""
    with errors.usage():
        checks.validate(cfg)
        checks.validate_roles(roles)
    _check_agent_flags(cfg, given)
    with errors.usage():
        # On this machine: each collector's env processes, and the learner's eval env.
        here = {"distributed": roles.collectors * cfg.num_envs + 1, "collect": cfg.num_envs}
        processes.check_env_count(here.get(command, 1))
        if command == "reverb":
            launch.check_port_free(roles.port)
    if command == "distributed":
        run_id = cfg.run or runs.make_run_id(cfg.agent, cfg.env_id)
        flags_ = _config_flags(dataclasses.replace(cfg, run=run_id))
        supervisor = launch.Supervisor(flags_, roles.collectors)
        try:
            return supervisor.run()
        except KeyboardInterrupt:
            print("Interrupted; all processes stopped", file=sys.stderr)
            return 130
    if not cfg.run:
        raise UsageError(
            f"{command} needs --run: every role of a distributed run names the same run"
        )
    if command == "learn":
        return train(cfg, command_line, roles)
    from trainer import distributed, reverb_tables

    try:
        if command == "reverb":
            reverb_tables.serve(cfg, roles.port)
        else:
            distributed.collect(cfg, roles.reverb_address, roles.task)
    except TimeoutError as e:  # the Reverb server stopped answering
        raise TrainerError(str(e)) from None
    except KeyboardInterrupt:
        return 130
    return 0
