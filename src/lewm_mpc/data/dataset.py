"""Reading HDF5 episode datasets into memory, with the train/val split by episode."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from lewm_mpc.data.format import (
    ACTION_KEY,
    DATA_KEYS,
    EPISODE_IDX_KEY,
    PIXELS_KEY,
    STATE_KEY,
    STEP_IDX_KEY,
    DatasetMeta,
    Episode,
    _episode_layout,
    _not_readable,
    _open_for_reading,
    _read_info,
    observations_of,
)


class EpisodeDataset:
    """An in-memory episode dataset with read-only numpy arrays.

    Build one with :meth:`load` (from a file) or :meth:`from_episodes`. Episodes are addressed by
    their id (``episode_ids``), which in a collected file is ``0 .. num_episodes - 1``.
    """

    def __init__(
        self,
        pixels: np.ndarray,
        state: np.ndarray,
        action: np.ndarray,
        episode_idx: np.ndarray,
        step_idx: np.ndarray,
        meta: DatasetMeta,
        *,
        source: str = "dataset",
    ) -> None:
        """Validate and wrap the arrays (the caller's arrays are not copied, only viewed).

        Args:
            pixels: uint8 (N, H, W, 3).
            state: float64 (N, Ds).
            action: float32 (N, meta.action_block * A), NaN on each episode's last row.
            episode_idx: int64 (N,), contiguous increasing episode ids.
            step_idx: int64 (N,), ``0 .. L-1`` within each episode.
            meta: How the data was generated; its ``observations`` are filled from the arrays
                when ``None``.
            source: Name used in error messages (the file path when loaded).

        Raises:
            ValueError: Inconsistent shapes, dtypes or episode structure, or arrays that disagree
                with ``meta`` (action width, observations).
        """
        arrays = {
            PIXELS_KEY: np.asarray(pixels),
            STATE_KEY: np.asarray(state),
            ACTION_KEY: np.asarray(action),
            EPISODE_IDX_KEY: np.asarray(episode_idx),
            STEP_IDX_KEY: np.asarray(step_idx),
        }
        expected = {
            PIXELS_KEY: (np.uint8, 4),
            STATE_KEY: (np.float64, 2),
            ACTION_KEY: (np.float32, 2),
            EPISODE_IDX_KEY: (np.int64, 1),
            STEP_IDX_KEY: (np.int64, 1),
        }
        for key, (dtype, ndim) in expected.items():
            array = arrays[key]
            if array.dtype != dtype or array.ndim != ndim:
                raise ValueError(
                    f"{source}: {key!r} must be {np.dtype(dtype)} with {ndim} dims, "
                    f"got {array.dtype} {array.shape}"
                )
        if arrays[PIXELS_KEY].shape[-1] != 3:
            raise ValueError(f"{source}: pixels must be (N, H, W, 3)")
        rows = {key: array.shape[0] for key, array in arrays.items()}
        if len(set(rows.values())) != 1 or rows[PIXELS_KEY] == 0:
            raise ValueError(f"{source}: arrays must share the same number N >= 1 of rows: {rows}")
        ids, starts, lengths = _episode_layout(
            arrays[EPISODE_IDX_KEY], arrays[STEP_IDX_KEY], arrays[ACTION_KEY], source
        )
        observations = observations_of(arrays[PIXELS_KEY].shape[1:], arrays[STATE_KEY].shape[1])
        if meta.observations is None:
            meta = dataclasses.replace(meta, observations=observations)
        elif meta.observations != observations:
            raise ValueError(f"{source}: meta observations {meta.observations} != {observations}")
        width = arrays[ACTION_KEY].shape[1]
        if meta.action_dim is not None and width != meta.action_block * meta.action_dim:
            raise ValueError(
                f"{source}: action rows are {width} wide, but action_block {meta.action_block} "
                f"x {meta.action_dim} action bounds need {meta.action_block * meta.action_dim}"
            )
        for key, array in arrays.items():
            view = array.view()
            view.setflags(write=False)
            arrays[key] = view
        for array in (ids, starts, lengths):
            array.setflags(write=False)
        self._arrays = arrays
        self._ids = ids
        self._starts = starts
        self._lengths = lengths
        self._meta = meta

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EpisodeDataset:
        """Read a whole dataset file into memory.

        Args:
            path: The HDF5 file.

        Returns:
            The dataset.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: The file is not a readable lewm_mpc dataset (corrupted or truncated file,
                wrong format version, missing keys, inconsistent episode structure).
        """
        with _open_for_reading(path) as (file, resolved):
            info = _read_info(file, resolved)
            arrays = {key: file[key][...] for key in DATA_KEYS}
        try:
            dataset = cls(**arrays, meta=info.meta, source=str(resolved))
        except ValueError as error:
            raise _not_readable(resolved, str(error)) from error
        if dataset.num_episodes != info.num_episodes:
            raise _not_readable(
                resolved,
                f"attribute num_episodes = {info.num_episodes} but the rows hold "
                f"{dataset.num_episodes} episodes",
            )
        return dataset

    @classmethod
    def from_episodes(
        cls, episodes: Sequence[Episode], meta: DatasetMeta, first_episode: int = 0
    ) -> EpisodeDataset:
        """Build an in-memory dataset from episodes (ids ``first_episode, first_episode + 1, …``).

        Args:
            episodes: The episodes, in order.
            meta: How they were generated.
            first_episode: Id of the first episode.

        Returns:
            The dataset.
        """
        if not episodes:
            raise ValueError("need at least one episode")
        lengths = np.array([episode.length for episode in episodes])
        starts = np.cumsum(lengths) - lengths
        return cls(
            pixels=np.concatenate([episode.pixels for episode in episodes]),
            state=np.concatenate([episode.state for episode in episodes]),
            action=np.concatenate([episode.action for episode in episodes]),
            episode_idx=np.repeat(first_episode + np.arange(len(episodes)), lengths),
            step_idx=np.arange(lengths.sum()) - np.repeat(starts, lengths),
            meta=meta,
        )

    # Arrays ----------------------------------------------------------------------------------

    @property
    def pixels(self) -> np.ndarray:
        """uint8 (N, H, W, 3), read-only."""
        return self._arrays[PIXELS_KEY]

    @property
    def state(self) -> np.ndarray:
        """float64 (N, Ds), read-only."""
        return self._arrays[STATE_KEY]

    @property
    def action(self) -> np.ndarray:
        """float32 (N, action_block * A), NaN on each episode's last row; read-only."""
        return self._arrays[ACTION_KEY]

    @property
    def episode_idx(self) -> np.ndarray:
        """int64 (N,) episode id of each row, read-only."""
        return self._arrays[EPISODE_IDX_KEY]

    @property
    def step_idx(self) -> np.ndarray:
        """int64 (N,) step within its episode of each row, read-only."""
        return self._arrays[STEP_IDX_KEY]

    @property
    def meta(self) -> DatasetMeta:
        """How the data was generated."""
        return self._meta

    # Episodes --------------------------------------------------------------------------------

    @property
    def num_rows(self) -> int:
        """Total number of rows ``N``."""
        return int(self.pixels.shape[0])

    @property
    def num_episodes(self) -> int:
        """Number of episodes ``E``."""
        return int(self._ids.shape[0])

    @property
    def episode_ids(self) -> np.ndarray:
        """int64 (E,) episode ids in storage (increasing) order, read-only."""
        return self._ids

    @property
    def episode_starts(self) -> np.ndarray:
        """int64 (E,) first row of each episode, read-only."""
        return self._starts

    @property
    def episode_lengths(self) -> np.ndarray:
        """int64 (E,) rows per episode (actions + 1), read-only."""
        return self._lengths

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, 3)``."""
        return tuple(int(n) for n in self.pixels.shape[1:])  # type: ignore[return-value]

    @property
    def state_dim(self) -> int:
        """``Ds``."""
        return int(self.state.shape[1])

    @property
    def action_dim(self) -> int:
        """Width of the ``action`` column: ``A`` when rows are env steps (``action_block`` 1)."""
        return int(self.action.shape[1])

    @property
    def action_block(self) -> int:
        """Env actions per row (``meta.action_block``)."""
        return self._meta.action_block

    def episode_positions(self, episode_ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """Positions (0 .. E-1) of the given episode ids in :attr:`episode_ids`.

        Raises:
            KeyError: An id is not in the dataset.
        """
        requested = np.asarray(episode_ids, dtype=np.int64).reshape(-1)  # (K,)
        positions = np.searchsorted(self._ids, requested)  # (K,)
        clipped = np.minimum(positions, self.num_episodes - 1)
        unknown = self._ids[clipped] != requested
        if unknown.any():
            raise KeyError(f"episode ids not in the dataset: {requested[unknown].tolist()}")
        return clipped

    def episode_slice(self, episode: int) -> slice:
        """Rows of one episode.

        Args:
            episode: An episode id.

        Returns:
            ``slice(start, start + length)``.

        Raises:
            KeyError: ``episode`` is not in the dataset.
        """
        position = int(self.episode_positions([episode])[0])
        start = int(self._starts[position])
        return slice(start, start + int(self._lengths[position]))

    def episode_length(self, episode: int) -> int:
        """Rows (actions + 1) of one episode.

        Raises:
            KeyError: ``episode`` is not in the dataset.
        """
        return int(self._lengths[self.episode_positions([episode])[0]])

    def episode(self, episode: int) -> Episode:
        """One episode's arrays (read-only views)."""
        rows = self.episode_slice(episode)
        return Episode(pixels=self.pixels[rows], state=self.state[rows], action=self.action[rows])

    def split(self, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Deterministic train/validation split by episode.

        ``round(val_fraction * E)`` episodes (at least 1, at most ``E - 1``) are drawn for
        validation by a permutation seeded with ``seed``. The split depends on ``E``: extending a
        dataset changes it.

        Args:
            val_fraction: Fraction of episodes held out, in (0, 1).
            seed: Seed of the permutation.

        Returns:
            ``(train_ids, val_ids)``, disjoint sorted int64 arrays of episode ids.

        Raises:
            ValueError: ``val_fraction`` outside (0, 1) or fewer than 2 episodes.
        """
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        count = self.num_episodes
        if count < 2:
            raise ValueError(
                f"cannot split {count} episode(s) into non-empty train and validation sets"
            )
        num_val = min(max(1, round(val_fraction * count)), count - 1)
        order = np.random.default_rng(seed).permutation(count)  # (E,)
        val_ids = np.sort(self._ids[order[:num_val]])
        train_ids = np.sort(self._ids[order[num_val:]])
        return train_ids, val_ids

    def __repr__(self) -> str:
        return (
            f"EpisodeDataset(env_id={self.meta.env_id!r}, num_episodes={self.num_episodes}, "
            f"num_rows={self.num_rows}, image_shape={self.image_shape}, "
            f"state_dim={self.state_dim}, action_dim={self.action_dim})"
        )
