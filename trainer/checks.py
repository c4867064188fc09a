"""Whether a command's settings make sense: each check raises ValueError naming the
first setting that does not, before any work starts."""

from __future__ import annotations

from trainer.config import (
    AGENTS,
    ALGORITHM_SETTINGS,
    SCHEDULES,
    Config,
    PPOConfig,
    RenderConfig,
    RoleConfig,
    SACConfig,
    VisionConfig,
)

# Settings that must be above zero (`not >` in validate also refuses NaN).
_POSITIVE = (
    *("total_steps", "num_envs", "collect_steps", "eval_episodes", "checkpoint_interval"),
    *("learning_rate", "sigterm_budget", "reward_scale"),
)
_POSITIVE_OWN = {
    PPOConfig: ("num_epochs", "minibatch_size"),
    SACConfig: ("replay_capacity", "batch_size", "train_ratio"),
}


def validate(cfg: Config) -> None:
    """Raises ValueError naming the first setting that makes no sense."""
    if cfg.agent not in AGENTS:
        raise ValueError(f"unknown agent {cfg.agent!r}; choose one of {', '.join(AGENTS)}")
    if type(cfg.algo) is not ALGORITHM_SETTINGS[cfg.agent]:
        raise ValueError(f"a {cfg.agent} run holds {type(cfg.algo).__name__}, not its settings")
    for owner, name in [(cfg, n) for n in _POSITIVE] + [
        (cfg.algo, n) for n in _POSITIVE_OWN.get(type(cfg.algo), ())
    ]:
        if not getattr(owner, name) > 0:
            raise ValueError(f"--{name} must be positive, got {getattr(owner, name)}")
    _check_schedule("lr_schedule", cfg.lr_schedule)
    if cfg.policy_average < 0:
        raise ValueError(f"--policy_average must be 0 or positive, got {cfg.policy_average}")
    if cfg.eval_interval < 0:
        raise ValueError(f"--eval_interval must be 0 or positive, got {cfg.eval_interval}")
    if cfg.collect_steps < 2 * cfg.num_envs:
        raise ValueError(
            f"--collect_steps ({cfg.collect_steps}) must give each of the "
            f"{cfg.num_envs} envs at least 2 steps"
        )
    if not cfg.actor_layers or not cfg.value_layers:
        raise ValueError("--actor_layers and --value_layers need at least one layer")
    if min(cfg.actor_layers + cfg.value_layers) <= 0:
        raise ValueError("layer sizes must be positive")
    if not 0 < cfg.discount <= 1:
        raise ValueError(f"--discount must be in (0, 1], got {cfg.discount}")
    if isinstance(cfg.algo, SACConfig):
        _validate_sac(cfg.algo, cfg.total_steps)
    elif isinstance(cfg.algo, PPOConfig):
        _validate_ppo(cfg.algo)


def _check_schedule(flag: str, value: str) -> None:
    if value not in SCHEDULES:
        raise ValueError(f"unknown --{flag} {value!r}; choose one of {', '.join(SCHEDULES)}")


def _validate_ppo(ppo: PPOConfig) -> None:
    _check_schedule("entropy_schedule", ppo.entropy_schedule)
    if ppo.entropy_schedule != "constant" and not ppo.entropy_coef > 0:
        raise ValueError(
            f"--entropy_schedule={ppo.entropy_schedule} schedules --entropy_coef, "
            f"which is {ppo.entropy_coef}; give it a positive value"
        )
    if ppo.reward_clip < 0:
        raise ValueError(f"--reward_clip must be 0 (off) or positive, got {ppo.reward_clip}")
    if not 0 <= ppo.gae_lambda <= 1:
        raise ValueError(f"--gae_lambda must be in [0, 1], got {ppo.gae_lambda}")


def _validate_sac(sac: SACConfig, total_steps: int) -> None:
    if sac.learning_starts < 0:
        raise ValueError(f"--learning_starts must be 0 or more, got {sac.learning_starts}")
    if sac.learning_starts >= min(total_steps, sac.replay_capacity):
        raise ValueError(
            f"--learning_starts ({sac.learning_starts:,}) must be below --total_steps and "
            "--replay_capacity, or sac never takes a gradient step"
        )
    if not 0 < sac.target_update_tau <= 1:
        raise ValueError(f"--target_update_tau must be in (0, 1], got {sac.target_update_tau}")


def validate_render(cfg: RenderConfig) -> None:
    """Raises ValueError naming the first render setting that makes no sense."""
    for name in ("episodes", "width", "height", "fps", "frame_stride"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"--{name} must be positive, got {getattr(cfg, name)}")
    if cfg.width % 2 or cfg.height % 2:
        raise ValueError(
            f"--width and --height must be even for H.264, got {cfg.width}x{cfg.height}"
        )
    if cfg.distance <= 0:
        raise ValueError(f"--distance must be positive, got {cfg.distance}")


def validate_roles(roles: RoleConfig) -> None:
    """Raises ValueError naming the first role setting out of range."""
    if roles.collectors < 1:
        raise ValueError(f"--collectors must be at least 1, got {roles.collectors}")
    if not 0 < roles.port < 65536:
        raise ValueError(f"--port must be a TCP port (1-65535), got {roles.port}")
    if roles.data_timeout <= 0:
        raise ValueError(f"--data_timeout must be positive, got {roles.data_timeout}")
    if roles.task < 0:
        raise ValueError(f"--task must be 0 or more, got {roles.task}")
    host, _, port = roles.reverb_address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--reverb_address must be HOST:PORT, got {roles.reverb_address!r}")


def validate_vision(vision: VisionConfig) -> None:
    """Raises ValueError naming the first camera-policy setting out of range."""
    from trainer import student

    positive = ("dagger_iterations", "dagger_episodes", "student_epochs")
    for name in (*positive, "student_learning_rate", "student_batch_size"):
        if not getattr(vision, name) > 0:
            raise ValueError(f"--{name} must be positive, got {getattr(vision, name)}")
    if vision.image_size < student.min_size():
        raise ValueError(
            f"--image_size must be at least {student.min_size()} (the student's "
            f"convolutions), got {vision.image_size}"
        )
