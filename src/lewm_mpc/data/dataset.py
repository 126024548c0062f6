"""HDF5 episode datasets: format constants, atomic writer, merge, reader and train/val split.

One file per dataset. Rows are env steps; episodes are stored contiguously, in increasing
episode order. Row ``t`` holds the observation (``pixels``, ``state``) seen at step ``t`` and
the ``action`` taken after seeing it; the last row of every episode has no action (all NaN).

Datasets (``N`` rows):

- ``pixels``      uint8   (N, H, W, 3), one frame per chunk, gzip level 1
- ``state``       float64 (N, Ds)
- ``action``      float32 (N, A), NaN on the last row of each episode
- ``episode_idx`` int64   (N,)
- ``step_idx``    int64   (N,), 0 .. L-1 within each episode

File attributes: ``format_version``, ``env_id``, ``env_config`` (JSON), ``seed``,
``num_episodes``, ``episode_steps`` (actions per episode).

Every write goes to a temporary file next to ``path``, is fsynced, then renamed onto ``path``:
a reader never sees a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lewm_mpc.atomic import atomic_write

FORMAT_VERSION = 1

PIXELS_KEY = "pixels"
STATE_KEY = "state"
ACTION_KEY = "action"
EPISODE_IDX_KEY = "episode_idx"
STEP_IDX_KEY = "step_idx"
DATA_KEYS = (PIXELS_KEY, STATE_KEY, ACTION_KEY, EPISODE_IDX_KEY, STEP_IDX_KEY)

FORMAT_VERSION_ATTR = "format_version"
ENV_ID_ATTR = "env_id"
ENV_CONFIG_ATTR = "env_config"
SEED_ATTR = "seed"
NUM_EPISODES_ATTR = "num_episodes"
EPISODE_STEPS_ATTR = "episode_steps"
ATTR_KEYS = (
    FORMAT_VERSION_ATTR,
    ENV_ID_ATTR,
    ENV_CONFIG_ATTR,
    SEED_ATTR,
    NUM_EPISODES_ATTR,
    EPISODE_STEPS_ATTR,
)

TMP_SUFFIX = ".tmp"
"""Suffix of the temporary files atomic writes go through."""

# gzip level 1 beat lzf on 64x64 flat-colour frames (measured: faster writes and reads, smaller
# files); one frame per chunk keeps random access to single frames cheap.
_PIXEL_COMPRESSION = "gzip"
_PIXEL_COMPRESSION_LEVEL = 1
_COPY_BLOCK_ROWS = 4096  # rows copied at once by merge (bounds memory on large files)


def _normalized_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON round trip of ``config``: tuples become lists, keys become strings."""
    try:
        return json.loads(json.dumps(dict(config), sort_keys=True))
    except (TypeError, ValueError) as error:
        raise ValueError(f"env_config must be JSON-serializable: {error}") from error


@dataclass(frozen=True)
class DatasetMeta:
    """How a dataset was generated; two datasets with equal metas can be merged.

    Attributes:
        env_id: Environment id (e.g. ``"tworoom"``).
        env_config: Environment constructor arguments; stored as JSON, so it is normalized by a
            JSON round trip (tuples become lists).
        seed: Base seed of the collection; episode ``i`` is seeded from ``(seed, i)``.
        episode_steps: Nominal number of actions per episode (rows per episode minus one).
        format_version: Version of the file format.
    """

    env_id: str
    env_config: dict[str, Any] = field(hash=False)
    seed: int
    episode_steps: int
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id must be a non-empty string, got {self.env_id!r}")
        if not isinstance(self.env_config, Mapping):
            raise ValueError(f"env_config must be a mapping, got {type(self.env_config).__name__}")
        object.__setattr__(self, "env_config", _normalized_config(self.env_config))
        for name in ("seed", "episode_steps", "format_version"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be an int, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.episode_steps < 1:
            raise ValueError(f"episode_steps must be >= 1, got {self.episode_steps}")

    def mismatches(self, other: DatasetMeta) -> tuple[str, ...]:
        """Human-readable differences from ``other`` (empty when the two match).

        Args:
            other: The meta to compare with.

        Returns:
            One ``"field: mine != theirs"`` string per differing field.
        """
        names = ("env_id", "env_config", "seed", "episode_steps", "format_version")
        return tuple(
            f"{name}: {getattr(self, name)!r} != {getattr(other, name)!r}"
            for name in names
            if getattr(self, name) != getattr(other, name)
        )


@dataclass(frozen=True)
class Episode:
    """One recorded episode of ``L`` rows (``L - 1`` actions).

    Attributes:
        pixels: uint8 (L, H, W, 3) observations.
        state: float64 (L, Ds) simulator states.
        action: float32 (L, A); row ``t`` is the action taken after row ``t``; the last row is NaN.
    """

    pixels: np.ndarray
    state: np.ndarray
    action: np.ndarray

    def __post_init__(self) -> None:
        pixels = np.asarray(self.pixels)
        state = np.asarray(self.state, dtype=np.float64)
        action = np.asarray(self.action, dtype=np.float32)
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise ValueError(
                f"pixels must be uint8 (L, H, W, 3), got {pixels.dtype} {pixels.shape}"
            )
        if state.ndim != 2 or action.ndim != 2:
            raise ValueError(
                f"state and action must be 2-D (L, D), got {state.shape} and {action.shape}"
            )
        length = pixels.shape[0]
        if length < 1 or state.shape[0] != length or action.shape[0] != length:
            raise ValueError(
                "pixels, state and action must have the same number L >= 1 of rows, got "
                f"{pixels.shape[0]}, {state.shape[0]}, {action.shape[0]}"
            )
        if not np.isnan(action[-1]).all():
            raise ValueError("the last action row of an episode must be NaN (no action taken)")
        if not np.isfinite(action[:-1]).all():
            raise ValueError("every action row but the last must be finite")
        object.__setattr__(self, "pixels", pixels)
        object.__setattr__(self, "state", state)
        object.__setattr__(self, "action", action)

    @property
    def length(self) -> int:
        """Number of rows ``L``."""
        return int(self.pixels.shape[0])


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset file holds, read from its header without loading the arrays.

    Attributes:
        path: The file.
        meta: How it was generated.
        num_episodes: Number of episodes.
        num_rows: Number of rows (env steps, all episodes).
        image_shape: ``(H, W, 3)``.
        state_dim: ``Ds``.
        action_dim: ``A``.
    """

    path: Path
    meta: DatasetMeta
    num_episodes: int
    num_rows: int
    image_shape: tuple[int, int, int]
    state_dim: int
    action_dim: int


# --------------------------------------------------------------------------------------------
# Reading and validation


def _not_readable(path: Path, what: str) -> ValueError:
    return ValueError(f"{path} is not a readable lewm_mpc dataset: {what}")


def _attr_int(file: h5py.File, name: str, path: Path) -> int:
    value = file.attrs[name]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise _not_readable(path, f"attribute {name!r} must be an int, got {value!r}")
    return int(value)


def _attr_str(file: h5py.File, name: str, path: Path) -> str:
    value = file.attrs[name]
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise _not_readable(path, f"attribute {name!r} must be a string, got {value!r}")
    return value


def _read_info(file: h5py.File, path: Path) -> DatasetInfo:
    """Header of an open file; checks version, keys, dtypes and shapes (not the row contents)."""
    missing_attrs = [name for name in ATTR_KEYS if name not in file.attrs]
    if FORMAT_VERSION_ATTR in missing_attrs:
        raise _not_readable(path, f"attribute {FORMAT_VERSION_ATTR!r} is missing")
    version = _attr_int(file, FORMAT_VERSION_ATTR, path)
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {version}; this lewm_mpc reads version {FORMAT_VERSION}"
        )
    if missing_attrs:
        raise _not_readable(path, f"missing attributes {missing_attrs}")
    missing_keys = [key for key in DATA_KEYS if not isinstance(file.get(key), h5py.Dataset)]
    if missing_keys:
        raise _not_readable(path, f"missing datasets {missing_keys}")
    try:
        env_config = json.loads(_attr_str(file, ENV_CONFIG_ATTR, path))
    except json.JSONDecodeError as error:
        raise _not_readable(path, f"env_config is not valid JSON: {error}") from error
    if not isinstance(env_config, dict):
        raise _not_readable(path, f"env_config must be a JSON object, got {env_config!r}")
    try:
        meta = DatasetMeta(
            env_id=_attr_str(file, ENV_ID_ATTR, path),
            env_config=env_config,
            seed=_attr_int(file, SEED_ATTR, path),
            episode_steps=_attr_int(file, EPISODE_STEPS_ATTR, path),
            format_version=version,
        )
    except ValueError as error:
        raise _not_readable(path, str(error)) from error

    pixels, state, action = file[PIXELS_KEY], file[STATE_KEY], file[ACTION_KEY]
    episode_idx, step_idx = file[EPISODE_IDX_KEY], file[STEP_IDX_KEY]
    expected = {
        PIXELS_KEY: (pixels, np.uint8, 4),
        STATE_KEY: (state, np.float64, 2),
        ACTION_KEY: (action, np.float32, 2),
        EPISODE_IDX_KEY: (episode_idx, np.int64, 1),
        STEP_IDX_KEY: (step_idx, np.int64, 1),
    }
    for key, (dataset, dtype, ndim) in expected.items():
        if dataset.dtype != dtype or dataset.ndim != ndim:
            raise _not_readable(
                path,
                f"{key!r} must be {np.dtype(dtype)} with {ndim} dims, "
                f"got {dataset.dtype} {dataset.shape}",
            )
    num_rows = pixels.shape[0]
    if pixels.shape[-1] != 3:
        raise _not_readable(path, f"pixels must be (N, H, W, 3), got {pixels.shape}")
    lengths = {key: file[key].shape[0] for key in DATA_KEYS}
    if len(set(lengths.values())) != 1:
        raise _not_readable(path, f"datasets have different numbers of rows: {lengths}")
    if num_rows == 0:
        raise _not_readable(path, "it contains no rows")
    return DatasetInfo(
        path=path,
        meta=meta,
        num_episodes=_attr_int(file, NUM_EPISODES_ATTR, path),
        num_rows=int(num_rows),
        image_shape=tuple(int(n) for n in pixels.shape[1:]),  # type: ignore[arg-type]
        state_dim=int(state.shape[1]),
        action_dim=int(action.shape[1]),
    )


@contextlib.contextmanager
def _open_for_reading(path: str | os.PathLike[str]) -> Iterator[tuple[h5py.File, Path]]:
    """Open ``path`` read-only; missing file -> FileNotFoundError, unreadable -> ValueError."""
    path = Path(path)
    if not path.is_file():
        if path.exists():
            raise ValueError(f"{path} is not a readable lewm_mpc dataset: it is not a file")
        raise FileNotFoundError(f"dataset file not found: {path}")
    try:
        with h5py.File(path, "r") as file:
            yield file, path
    except (OSError, KeyError, RuntimeError, TypeError) as error:
        raise _not_readable(path, f"{type(error).__name__}: {error}") from error


def _open_h5(path: Path) -> h5py.File:
    """Open an existing file read-only; an unreadable file -> ValueError."""
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise _not_readable(path, f"{type(error).__name__}: {error}") from error


def _read(file: h5py.File, key: str, rows: slice, path: Path) -> np.ndarray:
    """``file[key][rows]``; a read error (truncated or corrupted data) -> ValueError."""
    try:
        return file[key][rows]
    except (OSError, KeyError, RuntimeError) as error:
        raise _not_readable(path, f"reading {key!r}: {type(error).__name__}: {error}") from error


def _episode_layout(
    episode_idx: np.ndarray, step_idx: np.ndarray, action: np.ndarray, where: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the row structure; return (episode ids, start rows, lengths), each (E,).

    Raises:
        ValueError: episodes not contiguous and increasing, ``step_idx`` not ``0..L-1``, a NaN
            action inside an episode or a real action on an episode's last row.
    """
    num_rows = episode_idx.shape[0]
    changes = np.diff(episode_idx)  # (N-1,)
    if (changes < 0).any():
        raise ValueError(f"{where}: episodes must be stored contiguously in increasing order")
    starts = np.concatenate([[0], np.flatnonzero(changes) + 1])  # (E,)
    lengths = np.diff(np.append(starts, num_rows))  # (E,)
    ids = episode_idx[starts]  # (E,)
    expected_steps = np.arange(num_rows) - np.repeat(starts, lengths)  # (N,)
    if not np.array_equal(step_idx, expected_steps):
        raise ValueError(f"{where}: step_idx must count 0..L-1 within each episode")
    is_last = np.zeros(num_rows, dtype=bool)
    is_last[starts + lengths - 1] = True
    if not np.isnan(action[is_last]).all():
        raise ValueError(f"{where}: the last row of each episode must have a NaN action")
    if not np.isfinite(action[~is_last]).all():
        raise ValueError(f"{where}: every action but each episode's last must be finite")
    return ids, starts, lengths


def inspect_dataset(path: str | os.PathLike[str]) -> DatasetInfo:
    """Read a dataset's header (meta, sizes) without loading its arrays.

    Args:
        path: The HDF5 file.

    Returns:
        The file's :class:`DatasetInfo`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is not a readable lewm_mpc dataset (corrupted, truncated, wrong
            format version, missing keys).
    """
    with _open_for_reading(path) as (file, resolved):
        return _read_info(file, resolved)


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
            action: float32 (N, A), NaN on each episode's last row.
            episode_idx: int64 (N,), contiguous increasing episode ids.
            step_idx: int64 (N,), ``0 .. L-1`` within each episode.
            meta: How the data was generated.
            source: Name used in error messages (the file path when loaded).

        Raises:
            ValueError: Inconsistent shapes, dtypes or episode structure.
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
        """float32 (N, A), NaN on each episode's last row; read-only."""
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
        """``A``."""
        return int(self.action.shape[1])

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


# --------------------------------------------------------------------------------------------
# Writing


@contextlib.contextmanager
def _atomic_h5(path: Path) -> Iterator[h5py.File]:
    """Write an HDF5 file through a temporary file in the same folder, fsync, then rename.

    On any exception (KeyboardInterrupt included) the temporary file is removed and ``path``
    is left as it was. Temporary files are named ``.<name>.<random>.tmp``.
    """
    with atomic_write(path, suffix=TMP_SUFFIX) as temporary, h5py.File(temporary, "w") as file:
        yield file


def stray_tmp_files(path: str | os.PathLike[str]) -> list[Path]:
    """Temporary files left next to ``path`` by interrupted atomic writes to it."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*{TMP_SUFFIX}"))


def _write_header(
    file: h5py.File,
    meta: DatasetMeta,
    num_episodes: int,
    num_rows: int,
    image_shape: tuple[int, ...],
    state_dim: int,
    action_dim: int,
) -> None:
    file.attrs[FORMAT_VERSION_ATTR] = FORMAT_VERSION
    file.attrs[ENV_ID_ATTR] = meta.env_id
    file.attrs[ENV_CONFIG_ATTR] = json.dumps(meta.env_config, sort_keys=True)
    file.attrs[SEED_ATTR] = meta.seed
    file.attrs[NUM_EPISODES_ATTR] = num_episodes
    file.attrs[EPISODE_STEPS_ATTR] = meta.episode_steps
    file.create_dataset(
        PIXELS_KEY,
        shape=(num_rows, *image_shape),
        dtype=np.uint8,
        chunks=(1, *image_shape),  # one frame per chunk
        compression=_PIXEL_COMPRESSION,
        compression_opts=_PIXEL_COMPRESSION_LEVEL,
    )
    file.create_dataset(STATE_KEY, shape=(num_rows, state_dim), dtype=np.float64)
    file.create_dataset(ACTION_KEY, shape=(num_rows, action_dim), dtype=np.float32)
    file.create_dataset(EPISODE_IDX_KEY, shape=(num_rows,), dtype=np.int64)
    file.create_dataset(STEP_IDX_KEY, shape=(num_rows,), dtype=np.int64)


def write_episodes(
    path: str | os.PathLike[str],
    episodes: Sequence[Episode],
    meta: DatasetMeta,
    first_episode: int = 0,
) -> Path:
    """Write episodes to one dataset file, atomically.

    Args:
        path: Target file; replaced only once the new file is complete.
        episodes: Episodes with equal image shape, state and action dims.
        meta: How they were generated.
        first_episode: Episode id of ``episodes[0]``; the others follow consecutively.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: No episodes, or episodes with different shapes.
    """
    path = Path(path)
    if not episodes:
        raise ValueError("need at least one episode to write")
    first = episodes[0]
    image_shape = first.pixels.shape[1:]
    state_dim, action_dim = first.state.shape[1], first.action.shape[1]
    for number, episode in enumerate(episodes):
        if (episode.pixels.shape[1:], episode.state.shape[1], episode.action.shape[1]) != (
            image_shape,
            state_dim,
            action_dim,
        ):
            raise ValueError(
                f"episode {number} has shapes pixels {episode.pixels.shape}, state "
                f"{episode.state.shape}, action {episode.action.shape}, unlike episode 0"
            )
    num_rows = sum(episode.length for episode in episodes)
    with _atomic_h5(path) as file:
        _write_header(file, meta, len(episodes), num_rows, image_shape, state_dim, action_dim)
        row = 0
        for number, episode in enumerate(episodes):
            rows = slice(row, row + episode.length)
            file[PIXELS_KEY][rows] = episode.pixels
            file[STATE_KEY][rows] = episode.state
            file[ACTION_KEY][rows] = episode.action
            file[EPISODE_IDX_KEY][rows] = first_episode + number
            file[STEP_IDX_KEY][rows] = np.arange(episode.length)
            row += episode.length
    return path


def _copy_pixels(source: h5py.File, target: h5py.File, row: int, info: DatasetInfo) -> None:
    """Copy a part's pixels to ``target`` rows ``row ..``; compressed chunks are copied as-is."""
    source_pixels, target_pixels = source[PIXELS_KEY], target[PIXELS_KEY]
    layout = ("chunks", "compression", "compression_opts", "shuffle", "fletcher32", "scaleoffset")
    if all(getattr(source_pixels, name) == getattr(target_pixels, name) for name in layout):
        # Same one-frame chunks and filters: no decompress/recompress (about 4x faster).
        zeros = (0,) * (source_pixels.ndim - 1)
        try:
            for frame in range(info.num_rows):
                mask, chunk = source_pixels.id.read_direct_chunk((frame, *zeros))
                target_pixels.id.write_direct_chunk((row + frame, *zeros), chunk, mask)
        except (OSError, KeyError, RuntimeError) as error:
            raise _not_readable(info.path, f"reading pixels: {error}") from error
        return
    for block in range(0, info.num_rows, _COPY_BLOCK_ROWS):
        stop = min(block + _COPY_BLOCK_ROWS, info.num_rows)
        pixels = _read(source, PIXELS_KEY, slice(block, stop), info.path)  # (b, H, W, 3)
        target_pixels[row + block : row + stop] = pixels


def merge(parts: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> Path:
    """Concatenate dataset files into one, atomically, renumbering episodes ``0 .. E-1``.

    Parts are copied in the given order, in blocks (memory stays bounded). ``out`` may be one of
    the parts: it is replaced only once the merged file is complete.

    Args:
        parts: Dataset files with matching metas and shapes.
        out: Target file.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: No parts, an unreadable part, or parts whose metas or shapes differ.
        FileNotFoundError: A part does not exist.
    """
    out = Path(out)
    if not parts:
        raise ValueError("merge needs at least one part")
    infos = [inspect_dataset(part) for part in parts]
    reference = infos[0]
    for info in infos[1:]:
        differences = reference.meta.mismatches(info.meta)
        if differences:
            raise ValueError(
                f"cannot merge {info.path} with {reference.path}: metas differ "
                f"({'; '.join(differences)})"
            )
        shapes = (info.image_shape, info.state_dim, info.action_dim)
        if shapes != (reference.image_shape, reference.state_dim, reference.action_dim):
            raise ValueError(
                f"cannot merge {info.path} with {reference.path}: (image, state, action) shapes "
                f"{shapes} != {(reference.image_shape, reference.state_dim, reference.action_dim)}"
            )
    total_rows = sum(info.num_rows for info in infos)
    total_episodes = sum(info.num_episodes for info in infos)
    with _atomic_h5(out) as target:
        _write_header(
            target,
            reference.meta,
            total_episodes,
            total_rows,
            reference.image_shape,
            reference.state_dim,
            reference.action_dim,
        )
        row, episode_offset = 0, 0
        for info in infos:
            source = _open_h5(info.path)
            try:
                episode_idx = _read(source, EPISODE_IDX_KEY, slice(None), info.path)  # (n,)
                step_idx = _read(source, STEP_IDX_KEY, slice(None), info.path)  # (n,)
                action = _read(source, ACTION_KEY, slice(None), info.path)  # (n, A)
                state = _read(source, STATE_KEY, slice(None), info.path)  # (n, Ds)
                try:
                    ids, _, _ = _episode_layout(episode_idx, step_idx, action, str(info.path))
                except ValueError as error:
                    raise _not_readable(info.path, str(error)) from error
                if ids.shape[0] != info.num_episodes:
                    raise _not_readable(info.path, "num_episodes disagrees with its rows")
                # Renumber: position of each row's episode among the part's ids, plus the offset.
                renumbered = episode_offset + np.searchsorted(ids, episode_idx)  # (n,)
                rows = slice(row, row + info.num_rows)
                target[STATE_KEY][rows] = state
                target[ACTION_KEY][rows] = action
                target[EPISODE_IDX_KEY][rows] = renumbered
                target[STEP_IDX_KEY][rows] = step_idx
                _copy_pixels(source, target, row, info)
            finally:
                source.close()
            row += info.num_rows
            episode_offset += info.num_episodes
    return out
