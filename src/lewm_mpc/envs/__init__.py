"""Environments: the ``GoalEnv`` base, one module per env, and the registry.

Each environment is one module defining its ``GoalEnv`` subclass and its ``DEFINITION`` (an
:class:`EnvDefinition`), plus one line in ``ENV_SPECS`` below. Look one up by name (case- and
punctuation-insensitive) or gym id with :func:`get_env_spec`.
"""

from __future__ import annotations

import re

import gymnasium as gym

from lewm_mpc.envs.base import GoalEnv
from lewm_mpc.envs.spec import EnvDefinition, EnvRecipe, EnvSpec, PlannerBudget, ProbeTarget
from lewm_mpc.envs.symmetry import PlanarSymmetry, SceneSymmetries, square_symmetries
from lewm_mpc.envs.two_room import TwoRoomConfig, TwoRoomEnv
from lewm_mpc.envs.two_room_expert import TwoRoomExpert
from lewm_mpc.envs.views import View
from lewm_mpc.types import OBS_MODES, ObsMode, check_obs_mode

__all__ = [
    "ENV_SPECS",
    "OBS_MODES",
    "EnvDefinition",
    "EnvRecipe",
    "EnvSpec",
    "GoalEnv",
    "ObsMode",
    "PlanarSymmetry",
    "PlannerBudget",
    "ProbeTarget",
    "SceneSymmetries",
    "TwoRoomConfig",
    "TwoRoomEnv",
    "TwoRoomExpert",
    "check_obs_mode",
    "get_env_spec",
    "square_symmetries",
    "view_for_env",
]

ENV_SPECS: dict[str, EnvSpec] = {
    spec.name: spec
    for spec in (
        EnvSpec("tworoom", "lewm_mpc/TwoRoom-v0", "lewm_mpc.envs.two_room", 100),
        EnvSpec("reacher", "lewm_mpc/Reacher-v0", "lewm_mpc.envs.reacher", 200, "reacher"),
        EnvSpec("pusht", "lewm_mpc/PushT-v0", "lewm_mpc.envs.pusht", 300, "pusht"),
        EnvSpec("cube", "lewm_mpc/Cube-v0", "lewm_mpc.envs.cube", 200, "cube"),
        EnvSpec("pointmass", "lewm_mpc/PointMass-v0", "lewm_mpc.envs.point_mass", 100, "pointmass"),
    )
}
for _spec in ENV_SPECS.values():
    _spec.register()


def _normalize(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def get_env_spec(name: str) -> EnvSpec:
    """Looks up an environment by name or gym id, ignoring case and punctuation.

    Args:
        name: e.g. ``"tworoom"``, ``"two-room"``, ``"TwoRoom"`` or ``"lewm_mpc/TwoRoom-v0"``.

    Returns:
        The matching ``EnvSpec``.

    Raises:
        ValueError: If no environment matches; the message lists the known names.
    """
    key = _normalize(str(name))
    for spec in ENV_SPECS.values():
        if key in (_normalize(spec.name), _normalize(spec.gym_id)):
            return spec
    known = ", ".join(sorted(ENV_SPECS))
    raise ValueError(f"unknown environment {name!r}; known: {known} (or their gym ids)")


def view_for_env(env: gym.Env) -> View:
    """The pixel view of a live env (or a wrapper of one), from its definition.

    Raises:
        ValueError: for an env that is not a registered ``GoalEnv``.
    """
    unwrapped = getattr(env, "unwrapped", env)
    if not isinstance(unwrapped, GoalEnv):
        raise ValueError(f"no pixel view for {type(unwrapped).__name__}; pass a View explicitly")
    return get_env_spec(unwrapped.name).view(unwrapped)
