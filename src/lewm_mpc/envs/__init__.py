"""Environments, their gymnasium registration, and a registry of per-environment specs.

Each environment is described by an ``EnvSpec`` in ``ENV_SPECS``; look one up by name (case- and
punctuation-insensitive) or gym id with ``get_env_spec``.
"""

from __future__ import annotations

import re

from lewm_mpc.envs.spec import EnvSpec
from lewm_mpc.envs.two_room import TwoRoomConfig, TwoRoomEnv
from lewm_mpc.envs.two_room_expert import TwoRoomExpert

__all__ = [
    "ENV_SPECS",
    "EnvSpec",
    "TwoRoomConfig",
    "TwoRoomEnv",
    "TwoRoomExpert",
    "get_env_spec",
]

ENV_SPECS: dict[str, EnvSpec] = {
    "tworoom": EnvSpec(
        name="tworoom",
        gym_id="lewm_mpc/TwoRoom-v0",
        module="lewm_mpc.envs.two_room",
        entry_point="lewm_mpc.envs.two_room:TwoRoomEnv",
        max_episode_steps=100,
        default_episode_steps=100,
    ),
    "reacher": EnvSpec(
        name="reacher",
        gym_id="lewm_mpc/Reacher-v0",
        module="lewm_mpc.envs.reacher",
        entry_point="lewm_mpc.envs.reacher:ReacherEnv",
        max_episode_steps=200,
        default_episode_steps=200,
        extra="reacher",
    ),
    "pusht": EnvSpec(
        name="pusht",
        gym_id="lewm_mpc/PushT-v0",
        module="lewm_mpc.envs.pusht",
        entry_point="lewm_mpc.envs.pusht:PushTEnv",
        max_episode_steps=300,
        default_episode_steps=200,
        extra="pusht",
    ),
    "cube": EnvSpec(
        name="cube",
        gym_id="lewm_mpc/Cube-v0",
        module="lewm_mpc.envs.cube",
        entry_point="lewm_mpc.envs.cube:CubeEnv",
        max_episode_steps=200,
        default_episode_steps=200,
        extra="cube",
    ),
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
    key = _normalize(name)
    for spec in ENV_SPECS.values():
        if key in (_normalize(spec.name), _normalize(spec.gym_id)):
            return spec
    known = ", ".join(sorted(ENV_SPECS))
    raise ValueError(f"unknown environment {name!r}; known: {known} (or their gym ids)")
