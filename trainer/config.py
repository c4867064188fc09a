"""The one training configuration: every default lives here.

Each class's docstring lists its fields under `Attributes:` (Google style); that text is
the field's `--help`, and `task.py` turns the fields into flags.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# Each algorithm's defaults for the settings all share, where they differ from Config's,
# which are PPO's; its own settings are its class below (ALGORITHM_SETTINGS). SAC's are
# rl-zoo3's for the pybullet envs (hyperparams/sac.yml, `pybullet-defaults`), but for its
# train_freq / gradient_steps of 8 / 8: the same one gradient step per env step, in
# iterations of 64 env steps.
AGENT_DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo": {},
    "sac": {
        "collect_steps": 64,
        "actor_layers": (400, 300),
        "value_layers": (400, 300),
        "learning_rate": 7.3e-4,
        "discount": 0.98,
        # One paired seed so far (docs/results.md): its current weights until more are in.
        "policy_average": 0,
        # Its small gradient steps run faster on one thread, and the other core stays
        # with the env processes: 183-193 env steps/s against 154-163 (docs/results.md).
        "intra_op_threads": 1,
    },
}
# The env whose policy learns from its camera by DAgger (trainer/dagger.py): one process
# on one machine or pod, never the distributed roles (deploy/ refuses them before a submit).
CAMERA_ENV_ID = "KukaGraspCam-v0"
# What runs made before a field existed did, so that they resume as they were created.
LEGACY = {
    "normalize_observations": True,
    "normalize_rewards": True,
    "reward_clip": 10.0,
    "lr_schedule": "constant",
    "entropy_schedule": "constant",
    "deterministic": False,
    "action_mean_init": 0.1,
    # SAC's before its warm-up and target rate were settings.
    "learning_starts": 0,
    "target_update_tau": 0.005,
    "policy_average": 0,
}
SCHEDULES = ("constant", "linear")


def _resumable(default):
    """A field that a resumed run may change (resume.py): how long and where it runs, how
    often it saves and evaluates, never what it learns; --help says so."""
    return dataclasses.field(default=default, metadata={"resumable": True})


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO's own settings (trainer/ppo.py): a run of another agent refuses their flags.

    Attributes:
        num_epochs: passes over each iteration's batch.
        minibatch_size: steps per gradient step; each epoch shuffles the batch into
            minibatches.
        gae_lambda: lambda of generalized advantage estimation.
        clip_ratio: importance ratio clipping.
        entropy_coef: entropy regularization coefficient.
        entropy_schedule: entropy_coef over the run: constant, or linear (decays to 0 at
            --total_steps, which a resume with a larger --total_steps raises again; the
            bonus early and none late, bench/variants.py's entropy-decay).
        action_mean_init: scale of the initial weights of the action mean's output
            layer (tf-agents' init_means_output_factor, 0.1 by default there). At 0.1 some
            seeds start with a steady drift that drives the arm to the tray's rim before any
            lift is seen (docs/agent.md).
        normalize_observations: scale observations by running mean and standard
            deviation (clipped to +-5).
        normalize_rewards: divide rewards by their running standard deviation (after
            --reward_scale).
        reward_clip: clip normalized rewards to +-this (0: no clipping); only with
            --normalize_rewards. Clipping at 10 made a lift worth too little
            (docs/agent.md).
    """

    num_epochs: int = 10
    minibatch_size: int = 256
    gae_lambda: float = 0.95
    clip_ratio: float = 0.2
    entropy_coef: float = 0.0
    entropy_schedule: str = "constant"
    action_mean_init: float = 0.01
    normalize_observations: bool = True
    normalize_rewards: bool = True
    reward_clip: float = 0.0


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """SAC's own settings (trainer/sac.py): a run of another agent refuses their flags.

    Attributes:
        replay_capacity: transitions kept in the replay buffer.
        batch_size: transitions per gradient step.
        train_ratio: gradient steps per collected environment step.
        learning_starts: transitions in the replay before the first gradient step (local:
            environment steps; distributed: their transitions, less episode boundaries).
        target_update_tau: how far the target critics move toward the critics after
            each gradient step.
    """

    replay_capacity: int = 300_000
    batch_size: int = 256
    train_ratio: float = 1.0
    learning_starts: int = 10_000
    target_update_tau: float = 0.02


# Each algorithm's own settings; a run keeps its agent's in Config.algo (rl-zoo3 keeps
# one set per algorithm the same way).
ALGORITHM_SETTINGS: dict[str, type] = {"ppo": PPOConfig, "sac": SACConfig}
AGENTS = tuple(ALGORITHM_SETTINGS)


@dataclasses.dataclass(frozen=True)
class Config:
    """How one training run is set up.

    Attributes:
        env_id: Gym id of the environment: KukaGrasp-v0 (the Kuka arm with 2017 dynamics,
            learnable), KukaBulletEnv-v0 (pybullet's shipped Kuka env), or any pybullet gym
            id.
        agent: Learning algorithm: ppo (tf-agents PPOClipAgent) or sac (tf-agents SacAgent);
            where sac's defaults differ, --help shows them beside the flag's (AGENT_DEFAULTS).
        total_steps: Environment steps to train for, counted over all envs; a resumed run
            trains until it reaches this.
        num_envs: Environment processes collecting in parallel, best one per core
            (pybullet's Kuka env allows one per process).
        seed: Random seed for the networks and, offset per env process, for block placement
            and actions.
        logdir: Root directory of runs, local or gs://BUCKET/PATH; a run lives in
            LOGDIR/RUN.
        staging_dir: Local copy of a gs:// run's LOGDIR, uploaded from there; empty: a
            folder under the system's temp directory.
        run: Run id (a Kubernetes name: lowercase letters, digits, dashes); empty derives
            one from agent, env and time. An existing run resumes.
        collect_steps: Environment steps collected per training iteration, split evenly
            across the envs.
        overlap: Env processes collect the next iteration's steps while the learner trains
            on the last ones, with the policy from before that update (ppo's importance
            ratio corrects for the one-iteration lag); --nooverlap alternates them, strictly
            on-policy.
        actor_layers: Hidden layer sizes of the policy network, comma-separated.
        value_layers: Hidden layer sizes of the value network (ppo) or critic (sac),
            comma-separated.
        learning_rate: Adam learning rate of every network.
        discount: Reward discount per step.
        algo: The agent's own settings, PPOConfig or SACConfig below; their flags go by
            their field names.
        lr_schedule: Learning rate over the run: constant, or linear (decays to 0 at
            --total_steps, which a resume with a larger --total_steps raises again).
        reward_scale: Factor applied to every reward before learning. The Kuka envs give
            about -5 a step and +10,000 for a lift.
        policy_average: Env steps over which the greedy policy that is evaluated and
            exported averages the actor's weights (an exponential moving average with this
            time constant; trainer/averaging.py), at most a tenth of --total_steps; 0:
            the current weights. Collection always uses the current weights.
        max_policy_lag: distributed: the learner drops segments collected with a policy more
            than this many learner iterations old (logged as Metrics/DroppedEnvSteps); sac,
            off-policy, drops none.
        intra_op_threads: TensorFlow's threads within one op in the learning process (0:
            TensorFlow's own count, one per core); set as TensorFlow starts, before the run
            builds anything.
        deterministic: TensorFlow ops with deterministic kernels only, so one seed gives the
            same run on the same machine (cost measured by bench/throughput.py
            --deterministic).
        checkpoint_interval: Environment steps between checkpoints and policy exports.
        eval_interval: Environment steps between evaluations during training (0: evaluate
            only at the end).
        eval_episodes: Greedy episodes per evaluation.
        sigterm_budget: Seconds from SIGTERM to exit (a Spot node gives 15): the trainer
            checkpoints, then uploads to gs:// until this runs out and names what stays
            local, which the next start uploads.
    """

    env_id: str = "KukaGrasp-v0"
    agent: str = "ppo"
    total_steps: int = _resumable(600_000)
    num_envs: int = 2
    seed: int = 0
    logdir: str = _resumable("runs")
    staging_dir: str = _resumable("")
    run: str = ""
    collect_steps: int = 4096
    overlap: bool = _resumable(True)
    actor_layers: tuple[int, ...] = (200, 100)
    value_layers: tuple[int, ...] = (200, 100)
    learning_rate: float = 3e-4
    discount: float = 0.995
    algo: PPOConfig | SACConfig = PPOConfig()
    lr_schedule: str = "constant"
    reward_scale: float = 1.0
    policy_average: int = 20_000
    max_policy_lag: int = 2
    intra_op_threads: int = _resumable(0)
    deterministic: bool = _resumable(True)
    checkpoint_interval: int = _resumable(50_000)
    eval_interval: int = _resumable(100_000)
    eval_episodes: int = _resumable(50)
    sigterm_budget: float = _resumable(15.0)


@dataclasses.dataclass(frozen=True)
class RenderConfig:
    """How `task.py render` films a policy.

    Attributes:
        policy: Policy to film: empty for the run's exported policy/, 'random' for random
            actions (no training needed), or the path of a SavedModel from PolicySaver.
        episodes: Episodes to film.
        width: Frame width in pixels.
        height: Frame height in pixels.
        fps: Frames per second of the video.
        frame_stride: Physics steps between frames; the Kuka env's scripted grasp at an
            episode's end is about 1,100 physics steps inside one env step, and is filmed
            too.
        distance: Camera distance from its target, in meters.
        yaw: Camera yaw in degrees.
        pitch: Camera pitch in degrees.
    """

    policy: str = ""
    episodes: int = 3
    width: int = 320
    height: int = 240
    fps: int = 30
    frame_stride: int = 5
    distance: float = 1.4
    yaw: float = 180.0
    pitch: float = -30.0


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    """How a KukaGraspCam-v0 run teaches its camera policy (DAgger, docs/vision.md).

    Attributes:
        teacher: camera: run directory of a KukaGrasp-v0 state policy that labels the camera's
            frames; empty trains one first, in RUN/teacher, with the other flags.
        dagger_iterations: camera: rounds of collecting episodes and training the student; the
            first round's episodes are driven by the teacher, the others by the student.
        dagger_episodes: camera: episodes collected per round, spread over the env processes.
        image_size: camera: side of the camera's square RGB frame in pixels.
        student_epochs: camera: passes over all frames collected so far, per round.
        student_learning_rate: camera: Adam learning rate of the student.
        student_batch_size: camera: frames per gradient step of the student.
    """

    teacher: str = ""
    dagger_iterations: int = _resumable(8)
    dagger_episodes: int = 20
    image_size: int = 64
    student_epochs: int = 3
    student_learning_rate: float = 1e-3
    student_batch_size: int = 128


@dataclasses.dataclass(frozen=True)
class RoleConfig:
    """Where the distributed roles (`reverb`, `collect`, `learn`) find each other.

    Attributes:
        reverb_address: collect, learn: HOST:PORT of the Reverb server.
        port: reverb: port the Reverb server listens on.
        task: collect: this collector's number, unique in the run (it picks the seeds of the
            collector's env processes).
        data_timeout: learn: seconds without a segment (sac: a report) from any collector
            before the learner fails.
        collectors: distributed: collector processes started beside the Reverb server and
            the learner.
    """

    reverb_address: str = "localhost:8000"
    port: int = 8000
    task: int = 0
    data_timeout: float = 600.0
    collectors: int = 2


def for_agent(agent: str = Config.agent, **given) -> Config:
    """A Config with `agent`'s defaults (AGENT_DEFAULTS, its settings' class), then the
    `given` flags; TypeError for a flag that neither Config nor `agent` has."""
    own = ALGORITHM_SETTINGS.get(agent, PPOConfig)  # an unknown agent: checks.validate says so
    algo = own(
        **{name: given.pop(name) for name in list(given) if name in own.__dataclass_fields__}
    )
    return Config(agent=agent, algo=algo, **{**AGENT_DEFAULTS.get(agent, {}), **given})
