"""Data and training budgets that fit two CPU cores (the default scale).

A :class:`Recipe` says how much data to collect for an environment, how long to train the
``"cpu"`` world model on it, and which physical quantity a position probe should read from its
latents. Each env's defaults come from its definition (``EnvSpec.recipe`` and ``EnvSpec.probe``);
``benchmarks/env_success.py`` uses them and reports the resulting dataset size, training minutes,
validation loss and probe R²; the env cards quote those numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from lewm_mpc.envs import get_env_spec
from lewm_mpc.models.config import WorldModelConfig, named_config
from lewm_mpc.training import TrainConfig


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
        probe_name: what ``probe_target`` returns, for reports (None: the env's probe).
        probe_target: env states (M, Ds) -> the probed quantity (M, P) (None: the env's).
    """

    env: str
    episodes: int
    episode_steps: int
    workers: int = 1
    train: TrainConfig = field(default_factory=TrainConfig)
    model: WorldModelConfig = field(default_factory=lambda: named_config("cpu"))
    probe_name: str | None = None
    probe_target: Callable[[np.ndarray], np.ndarray] | None = None

    def __post_init__(self) -> None:
        probe = get_env_spec(self.env).probe  # a clear error for an unknown env
        if self.probe_target is None:
            object.__setattr__(self, "probe_name", probe.name)
            object.__setattr__(self, "probe_target", probe.read)
        for name in ("episodes", "episode_steps", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"Recipe.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def frames(self) -> int:
        """Frames in the collected dataset (one more than actions per episode)."""
        return self.episodes * (self.episode_steps + 1)


def get_recipe(env: str) -> Recipe:
    """The default recipe of an environment (any name ``get_env_spec`` accepts), from its
    definition."""
    spec = get_env_spec(env)
    defaults = spec.recipe
    return Recipe(
        spec.name, episodes=defaults.episodes, episode_steps=defaults.episode_steps,
        workers=defaults.workers, train=TrainConfig(steps=defaults.train_steps),
    )  # fmt: skip


SMOKE_NOTICE = "Smoke run: tiny budgets, the numbers mean nothing."
"""The line every ``--smoke`` run prints first (and writes first in any results file)."""


def smoke_recipe(env: str) -> Recipe:
    """A seconds-scale recipe for smoke runs (examples' ``--smoke``, tests): a few short
    episodes and a tiny model trained for a few steps. It plans, but not well."""
    recipe = get_recipe(env)
    train = TrainConfig(
        steps=5, batch_size=8, num_frames=2, val_fraction=0.25, val_every=5,
        checkpoint_every=5, sigreg_projections=16,
    )  # fmt: skip
    model = named_config("cpu", cnn_channels=(8, 8, 8, 8), latent_dim=16, predictor_hidden=32)
    return Recipe(recipe.env, episodes=4, episode_steps=30, train=train, model=model)


def build_from_recipe(
    recipe: Recipe, folder: str | Path, seed: int = 0, progress: bool = False
) -> tuple[Path, Path]:
    """Collect ``recipe``'s dataset into ``folder/data.h5`` and train its model into
    ``folder/model`` (both resume if present); returns (model dir, dataset path)."""
    from lewm_mpc.data.collection import collect_dataset
    from lewm_mpc.training import train

    folder = Path(folder)
    data = collect_dataset(recipe.env, folder / "data.h5", recipe.episodes, recipe.episode_steps,
                           seed, recipe.workers, progress=progress)  # fmt: skip
    train(data, folder / "model", recipe.model, replace(recipe.train, seed=seed),
          progress=progress)  # fmt: skip
    return folder / "model", data
