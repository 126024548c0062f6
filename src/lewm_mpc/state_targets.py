"""Auxiliary state targets for training: what a linear head must read from the embeddings.

The JEPA objective keeps in the embeddings only what helps predict the next embedding. On PushT
that leaves out the block's orientation (its linear probe R² stays near 0 whatever the data,
width, history or SIGReg weight), although a CNN of the same input size reads it from the
pixels; a planner whose goal distance cannot see the angle cannot turn the block. An optional
auxiliary loss (``TrainConfig.state_loss_weight``) asks a linear head on every embedding to
regress the frame's task features: the env's goal features (PushT: agent and block position,
cos and sin of the block angle) when the dataset names a built-in env, else the raw state
vector, each z-scored over the training episodes. The head is training machinery, not part of
the model; the targets come from the ``state`` column every dataset has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lewm_mpc.data import EpisodeDataset


def _identity(states: np.ndarray) -> np.ndarray:
    return np.asarray(states, dtype=np.float64)


def _features_of(dataset: EpisodeDataset) -> Callable[[np.ndarray], np.ndarray]:
    """The env's goal features if the dataset names a built-in env, else the raw state."""
    from lewm_mpc.envs import get_env_spec

    env_id = dataset.meta.env_id
    if env_id is None:
        return _identity
    try:
        return get_env_spec(env_id).goal_features
    except ValueError:  # a robot's own env id
        return _identity


@dataclass(frozen=True)
class StateTargets:
    """Z-scored task features of dataset frames.

    Attributes:
        features: states (..., Ds) -> features (..., F).
        mean, std: per-feature statistics over the training episodes, float64 (F,).
    """

    features: Callable[[np.ndarray], np.ndarray]
    mean: np.ndarray
    std: np.ndarray

    @property
    def dim(self) -> int:
        """Number of features F."""
        return int(self.mean.shape[0])

    @classmethod
    def from_dataset(cls, dataset: EpisodeDataset, train_ids: np.ndarray) -> StateTargets:
        """Features and their statistics over the frames of ``train_ids``."""
        features = _features_of(dataset)
        positions = dataset.episode_positions(np.asarray(train_ids))
        rows = np.isin(dataset.episode_idx, dataset.episode_ids[positions])  # (N,)
        values = features(dataset.state[rows])  # (M, F)
        return cls(features, values.mean(axis=0), np.maximum(values.std(axis=0), 1e-6))

    def for_windows(
        self, dataset: EpisodeDataset, rows: np.ndarray, num_frames: int, frameskip: int
    ) -> np.ndarray:
        """Targets of every frame of windows starting at global ``rows``: float32 (B, T, F)."""
        frames = rows[:, None] + frameskip * np.arange(num_frames)  # (B, T) global rows
        values = self.features(dataset.state[frames])  # (B, T, F)
        return ((values - self.mean) / self.std).astype(np.float32)


__all__ = ["StateTargets"]
