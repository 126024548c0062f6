"""Environments, their gymnasium registration, and a registry of per-environment specs.

Each environment is described by an ``EnvSpec`` in ``ENV_SPECS``; look one up by name (case- and
punctuation-insensitive) or gym id with ``get_env_spec``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from lewm_mpc.envs.two_room import TwoRoomConfig, TwoRoomEnv
from lewm_mpc.envs.two_room_expert import TwoRoomExpert
from lewm_mpc.types import Policy

__all__ = [
    "ENV_SPECS",
    "EnvSpec",
    "TwoRoomConfig",
    "TwoRoomEnv",
    "TwoRoomExpert",
    "get_env_spec",
]

TWO_ROOM_ID = "lewm_mpc/TwoRoom-v0"


def _register(gym_id: str, entry_point: str, max_episode_steps: int) -> None:
    """Registers ``gym_id`` once (re-imports and reloads do not re-register or warn)."""
    if gym_id not in gym.registry:
        gym.register(id=gym_id, entry_point=entry_point, max_episode_steps=max_episode_steps)


_register(TWO_ROOM_ID, "lewm_mpc.envs.two_room:TwoRoomEnv", max_episode_steps=100)


@dataclass(frozen=True)
class EnvSpec:
    """How to build, drive and score one environment.

    Attributes:
        name: Registry key, e.g. ``"tworoom"``.
        gym_id: Registered gymnasium id.
        make: Builds the env (with its time limit); accepts ``obs_mode`` and ``env_config``,
            a dict of the env's config fields (as stored in datasets; None for defaults).
        make_expert: Builds the data-collection policy for a given env.
        is_success: Success test on (state, goal) arrays.
        default_episode_steps: Episode length used for data collection.
    """

    name: str
    gym_id: str
    make: Callable[..., gym.Env]
    make_expert: Callable[[gym.Env], Policy]
    is_success: Callable[[np.ndarray, np.ndarray], bool]
    default_episode_steps: int


def _make_two_room(
    obs_mode: str = "pixels", env_config: Mapping[str, Any] | None = None, **kwargs: Any
) -> gym.Env:
    try:
        config = TwoRoomConfig(**env_config) if env_config else None
    except TypeError as error:
        raise ValueError(f"invalid Two-Room env_config {dict(env_config or {})}: {error}") from None
    return gym.make(TWO_ROOM_ID, obs_mode=obs_mode, config=config, **kwargs)


def _make_two_room_expert(env: gym.Env) -> TwoRoomExpert:
    return TwoRoomExpert(env.unwrapped.config)


ENV_SPECS: dict[str, EnvSpec] = {
    "tworoom": EnvSpec(
        name="tworoom",
        gym_id=TWO_ROOM_ID,
        make=_make_two_room,
        make_expert=_make_two_room_expert,
        is_success=TwoRoomEnv.is_success,
        default_episode_steps=100,
    ),
}


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
