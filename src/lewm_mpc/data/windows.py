"""Training windows: ``num_frames`` observations ``frameskip`` rows apart with their action blocks.

A window starting at row ``t`` holds frames ``t, t + fs, …, t + (T-1)·fs`` and ``T`` action blocks;
block ``j`` is ``action[t + j·fs : t + (j+1)·fs]`` flattened to ``(fs·W,)``, ``W`` being the width
of a row's action (``A`` when rows are env steps; ``action_block · A`` for data recorded in blocks,
whose model blocks then hold ``fs · action_block`` env actions). A start is valid when all ``T·fs``
actions are real (none is an episode's NaN last row), so windows never cross episodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lewm_mpc.data.dataset import EpisodeDataset
from lewm_mpc.data.format import PIXELS_KEY
from lewm_mpc.types import ObsMode, check_obs_mode

if TYPE_CHECKING:
    from lewm_mpc.envs.symmetry import SceneSymmetries


@dataclass(frozen=True)
class WindowBatch:
    """A batch of ``B`` windows of ``T`` frames.

    Attributes:
        obs: uint8 (B, T, H, W, 3) pixels or float32 (B, T, Ds) states.
        actions: float32 (B, T, fs·W) action blocks; block ``j`` follows frame ``j``.
        rows: int64 (B,) global dataset row of each window's first frame.
        symmetry: int (B,) index of the scene symmetry each window was transformed by (into
            the sampler's ``symmetries.elements``; 0 is the identity), or None when the
            windows are as recorded.
    """

    obs: np.ndarray
    actions: np.ndarray
    rows: np.ndarray
    symmetry: np.ndarray | None = None


def _selected_positions(dataset: EpisodeDataset, episode_ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(episode_ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"episode_ids must be a non-empty 1-D array, got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"episode_ids must be integers, got {ids.dtype}")
    if np.unique(ids).size != ids.size:
        raise ValueError("episode_ids contains duplicates")
    try:
        return dataset.episode_positions(ids)
    except KeyError as error:
        raise ValueError(str(error.args[0])) from error


class WindowSampler:
    """Samples fixed-length training windows from chosen episodes of a dataset.

    All valid start rows are precomputed; a batch is gathered with one fancy-indexing operation
    per array. Sampling is uniform over valid windows, with replacement, from an owned generator.
    With ``symmetries``, each sampled window is also turned or mirrored by one of the scene's
    symmetries drawn uniformly from the same generator (frames and action blocks alike);
    :meth:`gather` and :meth:`iterate_epoch` return the windows as recorded.
    """

    def __init__(
        self,
        dataset: EpisodeDataset,
        episode_ids: np.ndarray,
        num_frames: int,
        frameskip: int,
        batch_size: int,
        obs_mode: ObsMode = PIXELS_KEY,
        seed: int = 0,
        symmetries: SceneSymmetries | None = None,
    ) -> None:
        """Precompute the valid windows.

        Args:
            dataset: The episodes.
            episode_ids: Ids of the episodes to draw windows from (e.g. the train split).
            num_frames: Frames per window ``T`` (>= 1).
            frameskip: Rows between frames ``fs`` (>= 1); also the rows per action block.
            batch_size: Windows per batch ``B`` (>= 1).
            obs_mode: ``"pixels"`` or ``"state"``.
            seed: Seed of the sampler's generator.
            symmetries: Augment sampled windows with these scene symmetries (None: no
                augmentation). Action rows must be xy pairs.

        Raises:
            ValueError: Invalid arguments, unknown or duplicate episode ids, or no episode long
                enough for one window (``num_frames * frameskip`` real actions).
        """
        for name, value in (
            ("num_frames", num_frames),
            ("frameskip", frameskip),
            ("batch_size", batch_size),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        check_obs_mode(obs_mode)
        positions = _selected_positions(dataset, episode_ids)  # (E',)
        span = int(num_frames) * int(frameskip)  # actions per window
        starts = dataset.episode_starts[positions]  # (E',)
        # An episode of L rows has L - 1 real actions at rows 0 .. L-2: starts 0 .. L-1-span.
        counts = np.maximum(dataset.episode_lengths[positions] - span, 0)  # (E',)
        total = int(counts.sum())
        if total == 0:
            longest = int(dataset.episode_lengths[positions].max()) - 1
            raise ValueError(
                f"no window fits: num_frames * frameskip = {span} actions needed, but the "
                f"longest selected episode has {longest}"
            )
        # Row r of episode k: starts[k] + (index within the episode's valid starts).
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)  # (W,)
        self._rows = np.repeat(starts, counts) + offsets  # (W,)
        self._rows.setflags(write=False)
        self._dataset = dataset
        self._episode_ids = np.sort(dataset.episode_ids[positions])
        self._num_frames = int(num_frames)
        self._frameskip = int(frameskip)
        self._batch_size = int(batch_size)
        self._obs_mode = obs_mode
        self._seed = seed
        pixels = obs_mode == PIXELS_KEY
        self._source = dataset.pixels if pixels else dataset.state.astype(np.float32)
        self._frame_offsets = np.arange(self._num_frames) * self._frameskip  # (T,)
        self._action_offsets = np.arange(span)  # (T·fs,)
        self._gen = np.random.default_rng(seed)
        if symmetries is not None and dataset.action.shape[-1] % 2:
            raise ValueError(
                f"symmetries act on xy actions, but the dataset's action rows have "
                f"{dataset.action.shape[-1]} entries"
            )
        self._symmetries = symmetries

    @property
    def num_windows(self) -> int:
        """Number of valid windows ``W``."""
        return int(self._rows.shape[0])

    @property
    def window_rows(self) -> np.ndarray:
        """int64 (W,) global start row of every valid window, read-only."""
        return self._rows

    @property
    def episode_ids(self) -> np.ndarray:
        """Sorted ids of the episodes windows are drawn from."""
        return self._episode_ids

    @property
    def num_frames(self) -> int:
        """Frames per window ``T``."""
        return self._num_frames

    @property
    def frameskip(self) -> int:
        """Env steps between frames ``fs``."""
        return self._frameskip

    @property
    def batch_size(self) -> int:
        """Windows per batch ``B``."""
        return self._batch_size

    @property
    def obs_mode(self) -> str:
        """``"pixels"`` or ``"state"``."""
        return self._obs_mode

    def gather(self, rows: np.ndarray) -> WindowBatch:
        """The windows starting at the given global rows.

        Args:
            rows: int (B,) window start rows, each one of :attr:`window_rows`.

        Returns:
            The batch.
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)  # (B,)
        frame_rows = rows[:, None] + self._frame_offsets[None, :]  # (B, T)
        obs = self._source[frame_rows]  # (B, T, H, W, 3) or (B, T, Ds)
        action_rows = rows[:, None] + self._action_offsets[None, :]  # (B, T·fs)
        actions = self._dataset.action[action_rows]  # (B, T·fs, W)
        actions = actions.reshape(rows.shape[0], self._num_frames, -1)  # (B, T, fs·W)
        return WindowBatch(obs=obs, actions=actions, rows=rows)

    def sample(self) -> WindowBatch:
        """A batch of ``batch_size`` windows drawn uniformly (with replacement), each under a
        random symmetry when the sampler has them."""
        picks = self._gen.integers(0, self.num_windows, size=self._batch_size)  # (B,)
        batch = self.gather(self._rows[picks])
        if self._symmetries is None:
            return batch
        elements = self._symmetries.elements
        choice = self._gen.integers(0, len(elements), size=self._batch_size)  # (B,)
        pixels = self._obs_mode == PIXELS_KEY
        if pixels:
            obs = batch.obs.copy()
        else:  # (B, T, Ds) float32 states
            obs = self._symmetries.states_per_window(batch.obs, choice).astype(np.float32)
        actions = batch.actions.copy()
        for index in np.unique(choice):
            element, windows = elements[index], choice == index
            if pixels:
                obs[windows] = element.images(batch.obs[windows])  # (b, T, H, W, 3)
            actions[windows] = element.actions(batch.actions[windows])  # (b, T, fs·W)
        return WindowBatch(obs=obs, actions=actions, rows=batch.rows, symmetry=choice)

    def iterate_epoch(
        self, seed: int | None = None, drop_last: bool = False
    ) -> Iterator[WindowBatch]:
        """Every valid window exactly once, in shuffled batches (e.g. for a validation loss).

        Uses its own generator, so it does not disturb the :meth:`sample` stream.

        Args:
            seed: Seed of the shuffle; ``None`` uses the sampler's seed (same order every call).
            drop_last: Skip the final batch when it is smaller than ``batch_size``.

        Yields:
            Batches of ``batch_size`` windows (the last one possibly smaller).
        """
        order = np.random.default_rng(self._seed if seed is None else seed).permutation(
            self.num_windows
        )  # (W,)
        for begin in range(0, self.num_windows, self._batch_size):
            picks = order[begin : begin + self._batch_size]
            if drop_last and picks.shape[0] < self._batch_size:
                return
            yield self.gather(self._rows[picks])

    def num_batches(self, drop_last: bool = False) -> int:
        """Batches :meth:`iterate_epoch` yields."""
        if drop_last:
            return self.num_windows // self._batch_size
        return -(-self.num_windows // self._batch_size)

    def state_dict(self) -> dict[str, Any]:
        """The generator state, to resume the :meth:`sample` stream exactly."""
        return {"bit_generator": self._gen.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`."""
        self._gen.bit_generator.state = state["bit_generator"]


def action_stats(
    dataset: EpisodeDataset,
    episode_ids: np.ndarray | None = None,
    symmetries: SceneSymmetries | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std of the real actions (NaN last rows excluded).

    Args:
        dataset: The episodes.
        episode_ids: Episodes to use (e.g. the train split); ``None`` uses all.
        symmetries: Statistics of the actions under every one of these symmetries together
            (what a sampler augmenting with them draws).

    Returns:
        ``(mean, std)`` of one env action, float32 (A,) each (rows recorded in blocks of
        ``meta.action_block`` actions are split into single actions); std is floored at 1e-6.
    """
    if episode_ids is None:
        rows = np.ones(dataset.num_rows, dtype=bool)
    else:
        positions = _selected_positions(dataset, np.asarray(episode_ids))
        rows = np.isin(dataset.episode_idx, dataset.episode_ids[positions])  # (N,)
    rows &= ~np.isnan(dataset.action).any(axis=1)
    block = dataset.meta.action_block
    actions = dataset.action[rows].astype(np.float64)  # (M, block·A)
    actions = actions.reshape(actions.shape[0] * block, -1)  # (M·block, A)
    if actions.shape[0] == 0:
        raise ValueError("the selected episodes hold no real action")
    if symmetries is not None:
        actions = np.concatenate([element.actions(actions) for element in symmetries.elements])
    mean = actions.mean(axis=0)
    std = np.maximum(actions.std(axis=0), 1e-6)
    return mean.astype(np.float32), std.astype(np.float32)


def model_windows(
    model: Any,
    dataset: EpisodeDataset,
    episode_ids: np.ndarray | Any,
    num_frames: int,
    max_windows: int,
    batch_size: int,
    seed: int,
) -> Iterator[tuple[Any, Any, np.ndarray]]:
    """Windows of ``num_frames`` model steps of ``episode_ids`` (a seeded subset of at most
    ``max_windows``, in row order), in batches as ``model`` takes them: (B, T, *obs) tensors
    on its device (uint8 pixels, else float32 states), (B, T, block * A) action blocks and the
    (B,) dataset rows the windows start at.

    Raises:
        ValueError: ``max_windows`` or ``batch_size`` not an int >= 1, or a model block that is
            not a multiple of the data's.
    """
    import torch  # only here: the rest of the data package is numpy

    for name, value in (("max_windows", max_windows), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    pixels = getattr(model, "obs_dtype", torch.uint8) == torch.uint8
    block, data_block = model.action_block, dataset.action_block
    if block % data_block:
        raise ValueError(
            f"the model's action_block {block} must be a multiple of the dataset's {data_block}"
        )
    sampler = WindowSampler(
        dataset, np.asarray(episode_ids, dtype=np.int64), num_frames=num_frames,
        frameskip=block // data_block, batch_size=batch_size,
        obs_mode="pixels" if pixels else "state",
    )  # fmt: skip
    rows = sampler.window_rows
    if len(rows) > max_windows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_windows, replace=False))
    for start in range(0, len(rows), batch_size):
        batch = sampler.gather(rows[start : start + batch_size])
        obs = torch.from_numpy(batch.obs).to(model.device)  # (B, T, *obs)
        yield (obs if pixels else obs.to(torch.float32),
               torch.from_numpy(batch.actions).to(model.device), batch.rows)  # fmt: skip
