"""How an environment is described to the rest of the package: the ``EnvSpec`` contract.

Each environment lives in its own module, which provides four module-level functions:

- ``make_env(obs_mode="pixels", env_config=None, **kwargs) -> gym.Env`` (with its time limit;
  ``env_config`` is a dict of the env's config fields, as stored in datasets);
- ``make_expert(env) -> Policy``, the data-collection policy;
- ``is_success(state, goal) -> bool``, the success test on env states;
- ``goal_features(states) -> np.ndarray``, task features ``(..., Ds) -> (..., F)`` of env states,
  scaled so that the success threshold is about distance 1 (the simulator oracle's goal energy).

A spec names that module instead of importing it, so the registry lists every environment
without importing optional dependencies; using one whose extra is missing raises an
``ImportError`` that names the extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np

from lewm_mpc.types import Policy


@dataclass(frozen=True)
class EnvSpec:
    """How to build, drive and score one environment.

    Attributes:
        name: registry key, e.g. ``"tworoom"``.
        gym_id: registered gymnasium id.
        module: module providing ``make_env``, ``make_expert``, ``is_success`` and
            ``goal_features``.
        entry_point: gymnasium entry point (``"module:Class"``).
        max_episode_steps: time limit of the registered env.
        default_episode_steps: episode length used for data collection.
        extra: pip extra holding the env's optional dependencies (None: core only).
    """

    name: str
    gym_id: str
    module: str
    entry_point: str
    max_episode_steps: int
    default_episode_steps: int
    extra: str | None = None

    def _load(self) -> ModuleType:
        try:
            return importlib.import_module(self.module)
        except ImportError as error:
            hint = f"pip install 'lewm-mpc[{self.extra}]'" if self.extra else "reinstall lewm-mpc"
            raise ImportError(
                f"environment {self.name!r} needs optional dependencies ({error}); {hint}"
            ) from None

    def make(
        self, obs_mode: str = "pixels", env_config: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> gym.Env:
        """Build the env with pixel or state observations and optional config overrides."""
        return self._load().make_env(obs_mode=obs_mode, env_config=env_config, **kwargs)

    def make_expert(self, env: gym.Env) -> Policy:
        """The data-collection policy for ``env``."""
        return self._load().make_expert(env)

    def is_success(self, state: np.ndarray, goal: np.ndarray) -> bool:
        """The env's success test on (state, goal)."""
        return bool(self._load().is_success(state, goal))

    def goal_features(self, states: np.ndarray) -> np.ndarray:
        """Task features of env states, ``(..., Ds) -> (..., F)`` float64, scaled so that the
        success threshold is about feature distance 1."""
        return self._load().goal_features(states)

    def register(self) -> None:
        """Register with gymnasium once (re-imports do not re-register or warn)."""
        if self.gym_id not in gym.registry:
            gym.register(
                id=self.gym_id,
                entry_point=self.entry_point,
                max_episode_steps=self.max_episode_steps,
            )


def configure_spaces(
    env: gym.Env,
    obs_mode: str,
    render_mode: str | None,
    image_size: int,
    state_space: gym.spaces.Box,
    action_dim: int,
) -> None:
    """Validate the modes and set the spaces every environment shares.

    Sets ``env.obs_mode``, ``env.render_mode``, ``env.observation_space`` (uint8 pixels of
    ``image_size`` or ``state_space``) and ``env.action_space`` ([-1, 1]^action_dim, float32).
    """
    if obs_mode not in ("pixels", "state"):
        raise ValueError(f"obs_mode must be 'pixels' or 'state', got {obs_mode!r}")
    if render_mode not in (None, *env.metadata["render_modes"]):
        raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
    env.obs_mode = obs_mode
    env.render_mode = render_mode
    if obs_mode == "pixels":
        pixels = (image_size, image_size, 3)
        env.observation_space = gym.spaces.Box(0, 255, pixels, np.uint8)
    else:
        env.observation_space = state_space
    env.action_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
