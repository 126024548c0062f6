"""Shared pieces of the swm / npz converters: layout constants, checks, chunked column reads."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lewm_mpc.data.format import (
    EPISODE_IDX_KEY,
    STATE_KEY,
    DatasetMeta,
)

CHUNK_ROWS = 256
"""Default rows read or written at once (bounds memory: 256 frames of 224 px are 38 MB)."""
META_ATTR = "lewm_mpc_meta"
"""File attribute (or ``.npz`` entry) holding a lewm_mpc :class:`DatasetMeta` as JSON."""
FRAMESKIP_ATTR = "frameskip"
EP_LEN_KEY = "ep_len"
EP_OFFSET_KEY = "ep_offset"
_EPISODE_KEYS = (EPISODE_IDX_KEY, "ep_idx")
_STATE_KEYS = (STATE_KEY, "proprio")
_META_FIELDS = (
    "action_low",
    "action_high",
    "action_block",
    "env_id",
    "env_config",
    "seed",
    "episode_steps",
    "control_hz",
    "data_policy",
)
_PIXEL_LAYOUT = (
    "chunks",
    "compression",
    "compression_opts",
    "shuffle",
    "fletcher32",
    "scaleoffset",
)

_Columns = Mapping[str, Any]  # column path -> array-like sliceable by rows (h5py.Dataset, ndarray)


@dataclass(frozen=True)
class _ImportOptions:
    """What the caller says about the source (``None``: take it from the file or the data)."""

    frameskip: int
    action_low: Sequence[float] | None
    action_high: Sequence[float] | None
    env_id: str | None
    control_hz: float | None
    data_policy: str | None
    state_key: str | None


@dataclass(frozen=True)
class _Source:
    """The resolved columns of a source; each column is a list of row-aligned parts."""

    where: str
    pixels: Any  # (N, H, W, 3) uint8
    state: list[Any]  # parts (N, ...), concatenated per row
    action: list[Any]  # parts (N, ...), concatenated per row
    num_rows: int
    state_dim: int
    action_width: int


# --------------------------------------------------------------------------------------------
# Small helpers


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and (not overwrite or not out.is_file()):
        raise FileExistsError(
            f"{out} already exists; pass overwrite=True (--overwrite) to replace it"
        )


def _read(parts: Sequence[Any], rows: slice, where: str, name: str) -> np.ndarray:
    """Rows of a column, each part flattened per row and concatenated: (n, D)."""
    try:
        blocks = [np.asarray(part[rows]) for part in parts]
    except (OSError, KeyError, RuntimeError) as error:
        raise ValueError(f"{where}: reading {name!r}: {type(error).__name__}: {error}") from error
    return np.concatenate([block.reshape(block.shape[0], -1) for block in blocks], axis=1)


def _meta_json(meta: DatasetMeta) -> str:
    return json.dumps({name: getattr(meta, name) for name in _META_FIELDS}, sort_keys=True)


def _meta_from_json(text: Any, where: str) -> DatasetMeta:
    try:
        fields = json.loads(text.decode() if isinstance(text, bytes) else str(text))
        if not isinstance(fields, dict):
            raise TypeError("not a JSON object")
        return DatasetMeta(**{name: fields[name] for name in _META_FIELDS if name in fields})
    except (TypeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise ValueError(
            f"{where}: attribute {META_ATTR!r} is not a lewm_mpc meta: {error}"
        ) from None


def _chunks(num_rows: int, chunk_rows: int) -> Iterator[slice]:
    for begin in range(0, num_rows, chunk_rows):
        yield slice(begin, min(begin + chunk_rows, num_rows))


# --------------------------------------------------------------------------------------------
# Episode structure


def _index_column(columns: _Columns, name: str, num_rows: int, where: str) -> Any:
    column = columns[name]
    if column.ndim != 1 or column.shape[0] != num_rows or column.dtype.kind not in "iu":
        raise ValueError(
            f"{where}: column {name!r} must be integer (N,) with N = {num_rows}, "
            f"got {column.dtype} {column.shape}"
        )
    return column


def _runs(column: Any, num_rows: int, chunk_rows: int, where: str) -> tuple[np.ndarray, ...]:
    """(ids, starts, lengths) of the contiguous runs of an episode column, read in chunks."""
    ids: list[int] = []
    starts: list[int] = []
    for rows in _chunks(num_rows, chunk_rows):
        values = _read([column], rows, where, "episode_idx")[:, 0]  # (n,)
        changes = np.flatnonzero(np.diff(values)) + 1  # (c,)
        if not ids or values[0] != ids[-1]:
            ids.append(int(values[0]))
            starts.append(rows.start)
        ids.extend(values[changes].tolist())
        starts.extend((rows.start + changes).tolist())
    ids_array, starts_array = np.asarray(ids, np.int64), np.asarray(starts, np.int64)
    unique, counts = np.unique(ids_array, return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"{where}: the rows of episode {int(unique[counts > 1][0])} are not contiguous; "
            "give ep_len and ep_offset"
        )
    return ids_array, starts_array, np.diff(np.append(starts_array, num_rows))


def _values_at(column: Any, rows: np.ndarray, chunk_rows: int, where: str) -> np.ndarray:
    """``column[rows]`` read in chunks (only the chunks holding a requested row)."""
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]  # (E,)
    values = np.empty(rows.shape[0], np.int64)
    for chunk in np.unique(ordered // chunk_rows):
        begin = int(chunk) * chunk_rows
        block = _read([column], slice(begin, begin + chunk_rows), where, "episode_idx")[:, 0]
        low, high = np.searchsorted(ordered, [begin, begin + chunk_rows])
        values[order[low:high]] = block[ordered[low:high] - begin]
    return values


def _layout(
    columns: _Columns, num_rows: int, chunk_rows: int, where: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, offsets, lengths) of the source's non-empty episodes, each (E,)."""
    episode_key = next((key for key in _EPISODE_KEYS if key in columns), None)
    episode = None if episode_key is None else _index_column(columns, episode_key, num_rows, where)
    if EP_LEN_KEY in columns:
        lengths = np.asarray(columns[EP_LEN_KEY][:])
        offsets = (
            np.asarray(columns[EP_OFFSET_KEY][:])
            if EP_OFFSET_KEY in columns
            else np.cumsum(lengths) - lengths
        )
        if (
            lengths.ndim != 1
            or offsets.shape != lengths.shape
            or lengths.dtype.kind not in "iu"
            or offsets.dtype.kind not in "iu"
        ):
            raise ValueError(
                f"{where}: ep_len and ep_offset must be integer (E,) columns of equal length, got "
                f"{lengths.dtype} {lengths.shape} and {offsets.dtype} {offsets.shape}"
            )
        lengths, offsets = lengths.astype(np.int64), offsets.astype(np.int64)
        if (lengths < 0).any() or (offsets < 0).any() or (offsets + lengths > num_rows).any():
            raise ValueError(f"{where}: ep_len / ep_offset point outside the {num_rows} rows")
        keep = lengths > 0
        lengths, offsets = lengths[keep], offsets[keep]
        ids = (
            np.arange(lengths.shape[0])
            if episode is None
            else _values_at(episode, offsets, chunk_rows, where)
        )
    elif episode is not None:
        ids, offsets, lengths = _runs(episode, num_rows, chunk_rows, where)
    else:
        raise ValueError(
            f"{where}: no episode structure: give ep_len (and ep_offset) or an episode_idx "
            "(ep_idx) column"
        )
    if lengths.shape[0] == 0:
        raise ValueError(f"{where}: it holds no episode with a row")
    if not (np.diff(ids) > 0).all():  # ours stores ids in increasing order
        ids = np.arange(lengths.shape[0])
    return ids.astype(np.int64), offsets, lengths


def _episode_chunks(length: int, frameskip: int, chunk_rows: int) -> Iterator[tuple[int, int, int]]:
    """(first, last, blocks) per chunk of an episode's output rows ``first .. last - 1``; the
    first ``blocks`` of them have real actions (the episode's last output row has none)."""
    kept = (length - 1) // frameskip + 1  # observations kept
    per_chunk = max(1, chunk_rows // frameskip)
    for first in range(0, kept, per_chunk):
        last = min(first + per_chunk, kept)
        yield first, last, min(last, kept - 1) - first


# --------------------------------------------------------------------------------------------
# Import
