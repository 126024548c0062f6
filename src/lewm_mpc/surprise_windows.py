"""One-block windows of a dataset's episodes, as the surprise monitor measures blocks.

Each window holds the observation at a block's start, the block's actions, the observation
after it and, for a model conditioned on a history of frames, the block starts before it;
:func:`lewm_mpc.surprise.calibrate_surprise` calibrates its threshold on them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lewm_mpc.data import EpisodeDataset
from lewm_mpc.data.windows import model_windows
from lewm_mpc.types import LatentWorldModel


@dataclass(frozen=True)
class BlockWindows:
    """A batch of one-block windows, on the model's device as the model takes them.

    Attributes:
        before: (B, *obs_shape) observations at a block's start.
        actions: (B, action_block * A) the block's actions.
        after: (B, *obs_shape) the observations after it.
        past: for a model with ``history`` > 1, ``(past_obs (B, C, *obs_shape), past_actions
            (B, C, action_block * A))``, the ``C = history - 1`` block starts before
            ``before`` and the blocks after them (as :func:`surprise_and_motion` takes them);
            None otherwise.
        episodes: (B,) the dataset episode each window comes from.
    """

    before: torch.Tensor
    actions: torch.Tensor
    after: torch.Tensor
    past: tuple[torch.Tensor, torch.Tensor] | None = None
    episodes: np.ndarray | None = None


def block_windows(
    model: LatentWorldModel,
    dataset: EpisodeDataset,
    episode_ids: np.ndarray | Sequence[int],
    max_windows: int = 2000,
    batch_size: int = 256,
    seed: int = 0,
) -> Iterator[BlockWindows]:
    """The one-block windows of ``episode_ids`` (a seeded subset of at most ``max_windows``)
    in batches. For a model with ``history`` H > 1 each window also holds the H - 1 block
    starts before it, so windows begin H - 1 blocks into an episode.

    Raises:
        ValueError: ``max_windows`` or ``batch_size`` not an int >= 1, or a model block that is
            not a multiple of the data's.
    """
    context = max(int(getattr(model, "history", 1)), 1) - 1  # past block starts per window
    for obs, actions, rows in model_windows(model, dataset, episode_ids, context + 2,
                                            max_windows, batch_size, seed):  # fmt: skip
        # obs (B, C + 2, *obs), actions (B, C + 2, block*A)
        past = (obs[:, :context], actions[:, :context]) if context else None
        yield BlockWindows(obs[:, context], actions[:, context], obs[:, context + 1], past,
                           np.asarray(dataset.episode_idx)[rows])  # fmt: skip
