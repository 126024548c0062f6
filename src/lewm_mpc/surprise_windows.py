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

from lewm_mpc.data import EpisodeDataset, WindowSampler
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
    """

    before: torch.Tensor
    actions: torch.Tensor
    after: torch.Tensor
    past: tuple[torch.Tensor, torch.Tensor] | None = None


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
    for name, value in (("max_windows", max_windows), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    pixels = getattr(model, "obs_dtype", torch.uint8) == torch.uint8
    block, data_block = model.action_block, dataset.action_block
    if block % data_block:
        raise ValueError(
            f"the model's action_block {block} must be a multiple of the dataset's {data_block}"
        )
    context = max(int(getattr(model, "history", 1)), 1) - 1  # past block starts per window
    sampler = WindowSampler(
        dataset, np.asarray(episode_ids, dtype=np.int64), num_frames=context + 2,
        frameskip=block // data_block, batch_size=batch_size,
        obs_mode="pixels" if pixels else "state",
    )  # fmt: skip
    rows = sampler.window_rows
    if len(rows) > max_windows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_windows, replace=False))
    for start in range(0, len(rows), batch_size):
        batch = sampler.gather(rows[start : start + batch_size])
        obs = torch.from_numpy(batch.obs).to(model.device)  # (B, C + 2, *obs)
        if not pixels:
            obs = obs.to(torch.float32)
        actions = torch.from_numpy(batch.actions).to(model.device)  # (B, C + 2, block*A)
        past = (obs[:, :context], actions[:, :context]) if context else None
        yield BlockWindows(obs[:, context], actions[:, context], obs[:, context + 1], past)
