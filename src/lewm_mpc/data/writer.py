"""Writing HDF5 episode datasets atomically (temp file, fsync, rename) and merging parts."""

from __future__ import annotations

import contextlib
import glob
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

from lewm_mpc.atomic import atomic_write
from lewm_mpc.data.format import (
    _COPY_BLOCK_ROWS,
    _PIXEL_COMPRESSION,
    _PIXEL_COMPRESSION_LEVEL,
    ACTION_BLOCK_ATTR,
    ACTION_HIGH_ATTR,
    ACTION_KEY,
    ACTION_LOW_ATTR,
    CONTROL_HZ_ATTR,
    DATA_POLICY_ATTR,
    ENV_CONFIG_ATTR,
    ENV_ID_ATTR,
    EPISODE_IDX_KEY,
    EPISODE_STEPS_ATTR,
    FORMAT_VERSION,
    FORMAT_VERSION_ATTR,
    NUM_EPISODES_ATTR,
    OBSERVATIONS_ATTR,
    PIXELS_KEY,
    SEED_ATTR,
    STATE_KEY,
    STEP_IDX_KEY,
    TMP_SUFFIX,
    DatasetInfo,
    DatasetMeta,
    Episode,
    _episode_layout,
    _not_readable,
    _open_h5,
    _read,
    inspect_dataset,
    observations_of,
)


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


def _checked_against(
    meta: DatasetMeta, image_shape: tuple[int, ...], state_dim: int, action_dim: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The bounds to record; ValueError if ``meta`` disagrees with the data's shapes."""
    low, high = meta.action_bounds()  # only a version-1 meta resolves them from its env
    if action_dim != meta.action_block * len(low):
        raise ValueError(
            f"action rows are {action_dim} wide, but the meta's action_block {meta.action_block} "
            f"x {len(low)} action bounds need {meta.action_block * len(low)}"
        )
    observations = observations_of(image_shape, state_dim)
    if meta.observations is not None and meta.observations != observations:
        raise ValueError(
            f"the meta's observations {meta.observations} disagree with the episodes' "
            f"{observations}"
        )
    return low, high


def _write_header(
    file: h5py.File,
    meta: DatasetMeta,
    num_episodes: int,
    num_rows: int,
    image_shape: tuple[int, ...],
    state_dim: int,
    action_dim: int,
) -> None:
    """Attributes (always of the current format version) and empty datasets."""
    low, high = _checked_against(meta, image_shape, state_dim, action_dim)
    file.attrs[FORMAT_VERSION_ATTR] = FORMAT_VERSION
    file.attrs[ENV_CONFIG_ATTR] = json.dumps(meta.env_config, sort_keys=True)
    file.attrs[SEED_ATTR] = meta.seed
    file.attrs[NUM_EPISODES_ATTR] = num_episodes
    file.attrs[ACTION_LOW_ATTR] = np.asarray(low, dtype=np.float64)
    file.attrs[ACTION_HIGH_ATTR] = np.asarray(high, dtype=np.float64)
    file.attrs[ACTION_BLOCK_ATTR] = meta.action_block
    observations = observations_of(image_shape, state_dim)
    file.attrs[OBSERVATIONS_ATTR] = json.dumps([entry.to_dict() for entry in observations])
    optional = {
        ENV_ID_ATTR: meta.env_id,
        EPISODE_STEPS_ATTR: meta.episode_steps,
        CONTROL_HZ_ATTR: meta.control_hz,
        DATA_POLICY_ATTR: meta.data_policy,
    }
    for name, value in optional.items():
        if value is not None:  # absent attribute = unknown
            file.attrs[name] = value
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
        ValueError: No episodes, episodes with different shapes, or shapes that disagree with
            ``meta`` (action width, observations).
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
    _checked_against(meta, image_shape, state_dim, action_dim)  # before creating any file
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
    # A part of the current version records what version-1 parts lack (bounds, control rate).
    meta = next((info.meta for info in infos if info.meta.action_low is not None), reference.meta)
    with _atomic_h5(out) as target:
        _write_header(
            target,
            meta,
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
