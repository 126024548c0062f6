"""HDF5 episode datasets: the format (keys, metadata, header checks).

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
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

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
