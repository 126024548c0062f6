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
from typing import TYPE_CHECKING

import numpy as np

from lewm_mpc.data import EpisodeDataset

if TYPE_CHECKING:
    from lewm_mpc.envs.symmetry import SceneSymmetries


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
        symmetries: the scene symmetries windows may be transformed by (training with
            ``augment``): targets are then the features of the transformed states, and the
            statistics those of the frames under every symmetry. None: as recorded.
    """

    features: Callable[[np.ndarray], np.ndarray]
    mean: np.ndarray
    std: np.ndarray
    symmetries: SceneSymmetries | None = None

    @property
    def dim(self) -> int:
        """Number of features F."""
        return int(self.mean.shape[0])

    @classmethod
    def from_dataset(
        cls,
        dataset: EpisodeDataset,
        train_ids: np.ndarray,
        symmetries: SceneSymmetries | None = None,
    ) -> StateTargets:
        """Features and their statistics over the frames of ``train_ids`` (under every one of
        ``symmetries``, when given)."""
        features = _features_of(dataset)
        positions = dataset.episode_positions(np.asarray(train_ids))
        rows = np.isin(dataset.episode_idx, dataset.episode_ids[positions])  # (N,)
        states = dataset.state[rows]  # (M, Ds)
        if symmetries is not None:
            states = np.concatenate([symmetries.transform_state(states, element)
                                     for element in symmetries.elements])  # (8·M, Ds)  # fmt: skip
        values = features(states)  # (M', F)
        return cls(features, values.mean(axis=0), np.maximum(values.std(axis=0), 1e-6),
                   symmetries)  # fmt: skip

    def for_windows(
        self,
        dataset: EpisodeDataset,
        rows: np.ndarray,
        num_frames: int,
        frameskip: int,
        symmetry: np.ndarray | None = None,
    ) -> np.ndarray:
        """Targets of every frame of windows starting at global ``rows``: float32 (B, T, F).

        ``symmetry`` (int (B,), a sampled batch's ``WindowBatch.symmetry``) names the symmetry
        each window was transformed by; needs targets made with those ``symmetries``.
        """
        frames = rows[:, None] + frameskip * np.arange(num_frames)  # (B, T) global rows
        states = dataset.state[frames]  # (B, T, Ds)
        if symmetry is not None:
            if self.symmetries is None:
                raise ValueError("transformed windows need StateTargets made with symmetries")
            states = self.symmetries.states_per_window(states, symmetry)
        values = self.features(states)  # (B, T, F)
        return ((values - self.mean) / self.std).astype(np.float32)


__all__ = ["StateTargets"]
