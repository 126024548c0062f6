"""Exporting a lewm_mpc dataset as a stable-worldmodel / LeWM HDF5 file (see the package doc)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import h5py
import numpy as np
from tqdm.auto import tqdm

from lewm_mpc.data.format import (
    _PIXEL_COMPRESSION,
    _PIXEL_COMPRESSION_LEVEL,
    ACTION_KEY,
    EPISODE_IDX_KEY,
    FORMAT_VERSION,
    PIXELS_KEY,
    STATE_KEY,
    STEP_IDX_KEY,
    _not_readable,
    _open_h5,
    inspect_dataset,
)
from lewm_mpc.data.interop._columns import (
    _PIXEL_LAYOUT,
    CHUNK_ROWS,
    EP_LEN_KEY,
    EP_OFFSET_KEY,
    FRAMESKIP_ATTR,
    META_ATTR,
    _check_target,
    _chunks,
    _meta_json,
    _positive_int,
    _read,
    _runs,
)
from lewm_mpc.data.writer import _atomic_h5


def export_swm(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> Path:
    """Write a lewm_mpc dataset as a stable-worldmodel / LeWM HDF5 file, streaming.

    The file holds ``pixels`` (uint8 (N, H, W, 3), one gzip-compressed frame per chunk, copied
    chunk by chunk without recompression), ``state`` (float64 (N, Ds)), ``action`` (float32
    (N, W), NaN on each episode's last row), ``episode_idx`` and ``step_idx`` (int64 (N,)),
    ``ep_len`` (int32 (E,)) and ``ep_offset`` (int64 (E,)); one row per row of ours. A dataset
    collected in blocks (``action_block = K``) has ``W = K * A`` and the attribute
    ``frameskip = K``. The attribute ``lewm_mpc_meta`` holds the meta as JSON, so
    :func:`import_swm` restores the dataset exactly.

    Args:
        src: A lewm_mpc dataset file.
        out: The swm ``.h5`` file to write (atomically: temporary file, then rename).
        overwrite: Replace an existing ``out``.
        progress: Show a tqdm progress bar over the rows.
        chunk_rows: Rows read or written at once.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        ValueError: ``src`` is not a readable lewm_mpc dataset.
    """
    src, out = Path(src), Path(out)
    chunk_rows = _positive_int("chunk_rows", chunk_rows)
    _check_target(out, overwrite)
    info = inspect_dataset(src)
    low, high = info.meta.action_bounds()  # a version-1 file resolves them from its env
    meta = dataclasses.replace(
        info.meta, action_low=low, action_high=high, format_version=FORMAT_VERSION
    )
    num_rows = info.num_rows
    source = _open_h5(src)
    try:
        ids, starts, lengths = _runs(source[EPISODE_IDX_KEY], num_rows, chunk_rows, str(src))
        if not (np.diff(ids) > 0).all() or ids.shape[0] != info.num_episodes:
            raise _not_readable(src, "its episodes are not stored in increasing order")
        ends = starts + lengths - 1  # (E,) last row of each episode, increasing
        with (
            _atomic_h5(out) as target,
            tqdm(total=num_rows, desc="export", unit="row", disable=not progress) as bar,
        ):
            target.attrs[META_ATTR] = _meta_json(meta)
            target.attrs[FRAMESKIP_ATTR] = meta.action_block
            target[EP_LEN_KEY] = lengths.astype(np.int32)
            target[EP_OFFSET_KEY] = starts.astype(np.int64)
            pixels = target.create_dataset(
                PIXELS_KEY,
                shape=(num_rows, *info.image_shape),
                dtype=np.uint8,
                chunks=(1, *info.image_shape),  # one frame per chunk, as ours
                compression=_PIXEL_COMPRESSION,
                compression_opts=_PIXEL_COMPRESSION_LEVEL,
            )
            rows_per_chunk = min(num_rows, CHUNK_ROWS)
            for key, dtype, width in (
                (STATE_KEY, np.float64, (info.state_dim,)),
                (ACTION_KEY, np.float32, (info.action_dim,)),
                (EPISODE_IDX_KEY, np.int64, ()),
                (STEP_IDX_KEY, np.int64, ()),
            ):
                target.create_dataset(
                    key, shape=(num_rows, *width), dtype=dtype, chunks=(rows_per_chunk, *width)
                )
            same_layout = all(
                getattr(source[PIXELS_KEY], name) == getattr(pixels, name) for name in _PIXEL_LAYOUT
            )
            for rows in _chunks(num_rows, chunk_rows):
                for key in (STATE_KEY, ACTION_KEY, EPISODE_IDX_KEY, STEP_IDX_KEY):
                    values = _read([source[key]], rows, str(src), key)  # (n, D)
                    if key == ACTION_KEY:
                        _check_nan_rows(values, rows, ends, str(src))
                    target[key][rows] = values.reshape(-1, *target[key].shape[1:])
                _copy_frames(source[PIXELS_KEY], pixels, rows, same_layout, str(src))
                bar.update(rows.stop - rows.start)
    finally:
        source.close()
    return out


def _check_nan_rows(action: np.ndarray, rows: slice, ends: np.ndarray, where: str) -> None:
    """Only the last row of each episode (rows ``ends``) may be (and must be) NaN."""
    last = np.zeros(action.shape[0], dtype=bool)  # (n,)
    low, high = np.searchsorted(ends, [rows.start, rows.stop])
    last[ends[low:high] - rows.start] = True
    if not np.isnan(action[last]).all() or not np.isfinite(action[~last]).all():
        raise _not_readable(
            Path(where),
            f"rows {rows.start}..{rows.stop - 1}: an episode's last action must be NaN and every "
            "other action finite",
        )


def _copy_frames(
    source: h5py.Dataset, target: h5py.Dataset, rows: slice, same_layout: bool, where: str
) -> None:
    """Copy frames ``rows``; with the same one-frame chunks and filters, as compressed chunks."""
    try:
        if not same_layout:
            target[rows] = source[rows]
            return
        zeros = (0,) * (source.ndim - 1)
        for frame in range(rows.start, rows.stop):
            mask, chunk = source.id.read_direct_chunk((frame, *zeros))
            target.id.write_direct_chunk((frame, *zeros), chunk, mask)
    except (OSError, KeyError, RuntimeError) as error:
        raise ValueError(f"{where}: reading 'pixels': {type(error).__name__}: {error}") from error
