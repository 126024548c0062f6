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

File attributes: ``format_version``, ``action_low`` / ``action_high`` (float64 (A,), the bounds
of one env action), ``action_block`` (env actions per row; the ``action`` column is
``action_block * A`` wide), ``observations`` (JSON list of ``{key, shape, dtype}``), ``env_config``
(JSON), ``seed``, ``num_episodes``; and, when known, ``env_id``, ``episode_steps`` (actions per
episode) and ``control_hz`` (rows per second).

Version 1 files (no bounds, block, observations or rate; ``env_id`` and ``episode_steps`` always
present) are still read: their rows are env steps, and their action bounds come from the built-in
environment ``env_id`` names, when asked for (:meth:`DatasetMeta.action_bounds`).

Every write goes to a temporary file next to ``path``, is fsynced, then renamed onto ``path``:
a reader never sees a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lewm_mpc.data.meta import (
    FORMAT_VERSION,
    OBSERVATION_KEYS,
    PIXELS_KEY,
    READABLE_VERSIONS,
    STATE_KEY,
    DatasetMeta,
    ObservationSpec,
    observations_of,
)

__all__ = [  # the meta's names are re-exported: the format is their home too
    "FORMAT_VERSION",
    "OBSERVATION_KEYS",
    "PIXELS_KEY",
    "READABLE_VERSIONS",
    "STATE_KEY",
    "DatasetInfo",
    "DatasetMeta",
    "Episode",
    "ObservationSpec",
    "inspect_dataset",
    "observations_of",
]

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
ACTION_LOW_ATTR = "action_low"
ACTION_HIGH_ATTR = "action_high"
ACTION_BLOCK_ATTR = "action_block"
CONTROL_HZ_ATTR = "control_hz"
DATA_POLICY_ATTR = "data_policy"
OBSERVATIONS_ATTR = "observations"
ATTR_KEYS = (  # required in every file of the current version
    FORMAT_VERSION_ATTR,
    ENV_CONFIG_ATTR,
    SEED_ATTR,
    NUM_EPISODES_ATTR,
    ACTION_LOW_ATTR,
    ACTION_HIGH_ATTR,
    ACTION_BLOCK_ATTR,
    OBSERVATIONS_ATTR,
)
ATTR_KEYS_V1 = (
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
        num_rows: Number of rows (all episodes).
        image_shape: ``(H, W, 3)``.
        state_dim: ``Ds``.
        action_dim: Width of the ``action`` column, ``meta.action_block * A``.
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


def _attr_json(file: h5py.File, name: str, path: Path) -> Any:
    try:
        return json.loads(_attr_str(file, name, path))
    except json.JSONDecodeError as error:
        raise _not_readable(path, f"{name} is not valid JSON: {error}") from error


def _attr_floats(file: h5py.File, name: str, path: Path) -> tuple[float, ...]:
    value = np.asarray(file.attrs[name])
    if value.ndim != 1 or not np.issubdtype(value.dtype, np.number):
        raise _not_readable(path, f"attribute {name!r} must be a 1-D numeric array, got {value!r}")
    return tuple(float(entry) for entry in value)


def _read_meta(file: h5py.File, path: Path, version: int) -> DatasetMeta:
    """The meta of a file of format ``version`` (1 or 2), without its observations."""
    env_config = _attr_json(file, ENV_CONFIG_ATTR, path)
    if not isinstance(env_config, dict):
        raise _not_readable(path, f"env_config must be a JSON object, got {env_config!r}")
    fields: dict[str, Any] = {
        "env_config": env_config,
        "seed": _attr_int(file, SEED_ATTR, path),
        "format_version": version,
    }
    optional = {ENV_ID_ATTR: _attr_str, EPISODE_STEPS_ATTR: _attr_int}
    for name, read in optional.items():
        if name in file.attrs:
            fields[name] = read(file, name, path)
    if version == 1:  # rows are env steps; bounds are resolved from env_id when asked for
        return DatasetMeta(action_low=None, action_high=None, **fields)
    if CONTROL_HZ_ATTR in file.attrs:
        fields["control_hz"] = float(np.asarray(file.attrs[CONTROL_HZ_ATTR]))
    if DATA_POLICY_ATTR in file.attrs:
        fields["data_policy"] = _attr_str(file, DATA_POLICY_ATTR, path)
    return DatasetMeta(
        action_low=_attr_floats(file, ACTION_LOW_ATTR, path),
        action_high=_attr_floats(file, ACTION_HIGH_ATTR, path),
        action_block=_attr_int(file, ACTION_BLOCK_ATTR, path),
        **fields,
    )


def _read_info(file: h5py.File, path: Path) -> DatasetInfo:
    """Header of an open file; checks version, keys, dtypes and shapes (not the row contents)."""
    if FORMAT_VERSION_ATTR not in file.attrs:
        raise _not_readable(path, f"attribute {FORMAT_VERSION_ATTR!r} is missing")
    version = _attr_int(file, FORMAT_VERSION_ATTR, path)
    if version not in READABLE_VERSIONS:
        raise ValueError(
            f"{path} has format_version {version}; this lewm_mpc reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    required = ATTR_KEYS_V1 if version == 1 else ATTR_KEYS
    missing_attrs = [name for name in required if name not in file.attrs]
    if missing_attrs:
        raise _not_readable(path, f"missing attributes {missing_attrs}")
    missing_keys = [key for key in DATA_KEYS if not isinstance(file.get(key), h5py.Dataset)]
    if missing_keys:
        raise _not_readable(path, f"missing datasets {missing_keys}")
    try:
        meta = _read_meta(file, path, version)
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
    observations = observations_of(pixels.shape[1:], int(state.shape[1]))
    if version >= 2:
        recorded = _attr_json(file, OBSERVATIONS_ATTR, path)
        if recorded != [entry.to_dict() for entry in observations]:
            raise _not_readable(
                path, f"attribute observations {recorded} disagrees with the stored columns"
            )
        expected_width = meta.action_block * len(meta.action_low or ())
        if action.shape[1] != expected_width:
            raise _not_readable(
                path,
                f"action rows are {action.shape[1]} wide, but action_block "
                f"{meta.action_block} x {len(meta.action_low or ())} bounds need {expected_width}",
            )
    return DatasetInfo(
        path=path,
        meta=dataclasses.replace(meta, observations=observations),
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
