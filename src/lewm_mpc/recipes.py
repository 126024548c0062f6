"""Per-environment data and training budgets that fit two CPU cores (the default scale).

A :class:`Recipe` says how much data to collect for an environment, how long to train the
``"cpu"`` world model on it, and which physical quantity a position probe should read from its
latents (agent, fingertip, block or cube position). ``benchmarks/env_success.py`` uses them and
reports the resulting dataset size, training minutes, validation loss and probe R²; the env
cards quote those numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lewm_mpc.envs import get_env_spec
from lewm_mpc.models.config import WorldModelConfig, named_config
from lewm_mpc.training import TrainConfig


def _tworoom_position(states: np.ndarray) -> np.ndarray:
    return np.asarray(states)[..., :2]  # agent xy


def _reacher_position(states: np.ndarray) -> np.ndarray:
    from lewm_mpc.envs.reacher import fingertip_position

    return fingertip_position(states)  # fingertip xy (m)


def _pusht_position(states: np.ndarray) -> np.ndarray:
    return np.asarray(states)[..., :4]  # agent xy, block xy (px)


def _cube_position(states: np.ndarray) -> np.ndarray:
    from lewm_mpc.envs.cube import cube_position

    return cube_position(states)  # cube xyz (m)


@dataclass(frozen=True)
class Recipe:
    """How to build a world model for one environment on the CPU.

    Attributes:
        env: registry name.
        episodes: episodes to collect.
        episode_steps: actions per episode.
        workers: collection processes (rendering-bound envs gain from more).
        train: optimization settings.
        model: architecture.
        probe_name: what ``probe_target`` returns, for reports.
        probe_target: env states (M, Ds) -> the probed quantity (M, P).
    """

    env: str
    episodes: int
    episode_steps: int
    workers: int = 1
    train: TrainConfig = field(default_factory=TrainConfig)
    model: WorldModelConfig = field(default_factory=lambda: named_config("cpu"))
    probe_name: str = "agent xy"
    probe_target: Callable[[np.ndarray], np.ndarray] = _tworoom_position

    def __post_init__(self) -> None:
        get_env_spec(self.env)  # a clear error for an unknown env
        for name in ("episodes", "episode_steps", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"Recipe.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def frames(self) -> int:
        """Frames in the collected dataset (one more than actions per episode)."""
        return self.episodes * (self.episode_steps + 1)


RECIPES: dict[str, Recipe] = {
    "tworoom": Recipe("tworoom", episodes=300, episode_steps=100),
    "reacher": Recipe(
        "reacher", episodes=300, episode_steps=200,
        probe_name="fingertip xy", probe_target=_reacher_position,
    ),
    "pusht": Recipe(
        "pusht", episodes=300, episode_steps=200,
        probe_name="agent xy + block xy", probe_target=_pusht_position,
    ),
    "cube": Recipe(
        "cube", episodes=100, episode_steps=200, workers=2,
        probe_name="cube xyz", probe_target=_cube_position,
    ),
}  # fmt: skip


def get_recipe(env: str) -> Recipe:
    """The recipe of an environment (any name ``get_env_spec`` accepts)."""
    return RECIPES[get_env_spec(env).name]
