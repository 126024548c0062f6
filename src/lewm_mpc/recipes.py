"""Per-environment data and training budgets that fit two CPU cores (the default scale).

A :class:`Recipe` says how much data to collect for an environment, how long to train the
``"cpu"`` world model on it, and which physical quantity a position probe should read from its
latents (agent, fingertip, block or cube position). ``benchmarks/env_success.py`` uses them and
reports the resulting dataset size, training minutes, validation loss and probe R²; the env
cards quote those numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

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


def smoke_recipe(env: str) -> Recipe:
    """A seconds-scale recipe for smoke runs (examples' ``--smoke``, tests): a few short
    episodes and a tiny model trained for a few steps. It plans, but not well."""
    recipe = get_recipe(env)
    train = TrainConfig(
        steps=5, batch_size=8, num_frames=2, val_fraction=0.25, val_every=5,
        checkpoint_every=5, sigreg_projections=16,
    )  # fmt: skip
    model = named_config("cpu", cnn_channels=(8, 8, 8, 8), latent_dim=16, predictor_hidden=32)
    return Recipe(recipe.env, episodes=4, episode_steps=30, train=train, model=model,
                  probe_name=recipe.probe_name, probe_target=recipe.probe_target)  # fmt: skip


def build_from_recipe(
    recipe: Recipe, folder: str | Path, seed: int = 0, progress: bool = False
) -> tuple[Path, Path]:
    """Collect ``recipe``'s dataset into ``folder/data.h5`` and train its model into
    ``folder/model`` (both resume if present); returns (model dir, dataset path)."""
    from lewm_mpc.collection import collect_dataset
    from lewm_mpc.training import train

    folder = Path(folder)
    data = collect_dataset(recipe.env, folder / "data.h5", recipe.episodes, recipe.episode_steps,
                           seed, recipe.workers, progress=progress)  # fmt: skip
    train(data, folder / "model", recipe.model, replace(recipe.train, seed=seed),
          progress=progress)  # fmt: skip
    return folder / "model", data
