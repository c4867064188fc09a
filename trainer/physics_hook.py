"""A hook inside pybullet's physics steps: render films the scripted grasp through it."""

from __future__ import annotations

import contextlib
import sys


class _StepCounter:
    """The pybullet module, but every `every`-th stepSimulation also calls `callback`."""

    def __init__(self, module, every: int, callback):
        self._module, self._every, self._callback = module, every, callback
        self._count = 0

    def __getattr__(self, name):
        return getattr(self._module, name)

    def stepSimulation(self, *args, **kwargs):  # noqa: N802  (pybullet's name)
        result = self._module.stepSimulation(*args, **kwargs)
        self._count += 1
        if self._count % self._every == 0:
            self._callback()
        return result


@contextlib.contextmanager
def physics_steps(gym_env, every: int, callback):
    """Calls `callback` every `every` physics steps of `gym_env` while the block runs.

    pybullet has no step hook, and the Kuka env's last step runs its scripted grasp
    (about 1,100 physics steps) inside one env step, through its module's global `p`.
    So the one way to see inside an env step is to stand in for that global; this is
    the only place that does, and tests/test_physics_hook.py fails if pybullet_envs
    changes it.
    Yields whether the env calls pybullet that way (if not, nothing is patched).
    """
    import pybullet

    module = next(
        (
            sys.modules.get(cls.__module__)
            for cls in type(gym_env).__mro__
            if getattr(sys.modules.get(cls.__module__), "p", None) is pybullet
        ),
        None,
    )
    if module is None:
        yield False
        return
    module.p = _StepCounter(pybullet, every, callback)
    try:
        yield True
    finally:
        module.p = pybullet
