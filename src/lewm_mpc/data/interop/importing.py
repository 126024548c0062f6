"""Importing stable-worldmodel / LeWM HDF5 files and numpy arrays (see the package doc)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm.auto import tqdm

from lewm_mpc.data.format import (
    ACTION_KEY,
    EPISODE_IDX_KEY,
    PIXELS_KEY,
    STATE_KEY,
    STEP_IDX_KEY,
    DatasetMeta,
)
from lewm_mpc.data.interop._columns import (
    _META_FIELDS,
    _STATE_KEYS,
    CHUNK_ROWS,
    META_ATTR,
    _check_target,
    _Columns,
    _episode_chunks,
    _ImportOptions,
    _layout,
    _meta_from_json,
    _positive_int,
    _read,
    _Source,
)
from lewm_mpc.data.writer import _atomic_h5, _write_header


def _resolve(columns: _Columns, where: str, state_key: str | None) -> _Source:
    """Find and check the pixel, state and action columns."""

    def find(name: str) -> list[Any]:
        if name in columns:
            return [columns[name]]
        return [columns[path] for path in sorted(columns) if path.startswith(f"{name}/")]

    pixels = find(PIXELS_KEY)
    if not pixels:
        raise ValueError(
            f"{where}: no 'pixels' column: lewm_mpc datasets need uint8 (N, H, W, 3) frames "
            "(state-only datasets are not supported)"
        )
    if len(pixels) != 1:
        raise ValueError(f"{where}: 'pixels' must be one dataset, found {len(pixels)} under it")
    frames = pixels[0]
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"{where}: column 'pixels' must be uint8 (N, H, W, 3) (channels last), got "
            f"{frames.dtype} {tuple(frames.shape)}"
        )
    num_rows = int(frames.shape[0])
    if num_rows == 0:
        raise ValueError(f"{where}: it holds no rows")
    state_names = _STATE_KEYS if state_key is None else (state_key,)
    state_name = next((name for name in state_names if find(name)), None)
    if state_name is None:
        raise ValueError(f"{where}: no state column (looked for {list(state_names)})")
    action = find(ACTION_KEY)
    if not action:
        raise ValueError(f"{where}: no 'action' column (found {sorted(columns)})")
    widths = {}
    for name, parts in ((state_name, find(state_name)), (ACTION_KEY, action)):
        for part in parts:
            if part.ndim < 1 or part.shape[0] != num_rows or part.dtype.kind not in "fiu":
                raise ValueError(
                    f"{where}: column {name!r} must be numeric with N = {num_rows} rows (like "
                    f"pixels), got {part.dtype} {tuple(part.shape)}"
                )
        widths[name] = sum(int(np.prod(part.shape[1:], dtype=np.int64)) for part in parts)
    return _Source(
        where=where,
        pixels=frames,
        state=find(state_name),
        action=action,
        num_rows=num_rows,
        state_dim=widths[state_name],
        action_width=widths[ACTION_KEY],
    )


def _scan_actions(
    source: _Source, layout: tuple[np.ndarray, ...], frameskip: int, chunk_rows: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Check that every action used is finite; return its per-dimension (min, max), or None
    when no action is used."""
    low = np.full(source.action_width, np.inf)
    high = np.full(source.action_width, -np.inf)
    for episode, offset, length in zip(*layout, strict=True):
        for first, _, blocks in _episode_chunks(int(length), frameskip, chunk_rows):
            if blocks <= 0:
                continue
            begin = int(offset) + first * frameskip
            rows = slice(begin, begin + blocks * frameskip)
            action = _read(source.action, rows, source.where, ACTION_KEY)  # (b * k, W)
            action = action.astype(np.float32)  # as stored: the bounds hold the stored values
            bad = np.flatnonzero(~np.isfinite(action).all(axis=1))
            if bad.size:
                raise ValueError(
                    f"{source.where}: action row {begin + int(bad[0])} (episode {episode}) is not "
                    "finite; only an episode's last action may be NaN"
                )
            low = np.minimum(low, action.min(axis=0))
            high = np.maximum(high, action.max(axis=0))
    return None if np.isinf(low).any() else (low, high)


def _import_meta(
    restored: DatasetMeta | None,
    options: _ImportOptions,
    observed: tuple[np.ndarray, np.ndarray] | None,
    where: str,
) -> DatasetMeta:
    """The meta of the imported dataset: restored or built, then the caller's overrides."""
    skip = options.frameskip
    if restored is not None:
        fields = {name: getattr(restored, name) for name in _META_FIELDS}
        fields["action_block"] = restored.action_block * skip
        if restored.control_hz is not None:
            fields["control_hz"] = restored.control_hz / skip
        steps = restored.episode_steps
        if steps is not None and steps % fields["action_block"]:
            fields["episode_steps"] = None  # no longer a whole number of rows
    else:
        fields = {"action_block": skip, "data_policy": "imported"}
        if options.action_low is None:
            if observed is None:
                raise ValueError(
                    f"{where}: it has no finite action to take action bounds from; give "
                    "action_low and action_high"
                )
            low, high = observed
            # A constant dimension gets a small range around its value (bounds need low < high).
            pad = np.where(low < high, 0.0, 1e-3 * np.maximum(1.0, np.abs(low)))
            fields["action_low"], fields["action_high"] = tuple(low - pad), tuple(high + pad)
    if options.action_low is not None:
        fields["action_low"] = options.action_low
        fields["action_high"] = options.action_high
    if options.env_id is not None:
        fields["env_id"] = options.env_id
    if options.control_hz is not None:
        fields["control_hz"] = float(options.control_hz) / skip
    if options.data_policy is not None:
        fields["data_policy"] = options.data_policy
    return DatasetMeta(**fields)


def _import(
    columns: _Columns,
    restored: DatasetMeta | None,
    where: str,
    out: Path,
    options: _ImportOptions,
    *,
    progress: bool,
    chunk_rows: int,
) -> Path:
    skip = _positive_int("frameskip", options.frameskip)
    chunk_rows = _positive_int("chunk_rows", chunk_rows)
    if (options.action_low is None) != (options.action_high is None):
        raise ValueError("give both action_low and action_high, or neither")
    source = _resolve(columns, where, options.state_key)
    layout = _layout(columns, source.num_rows, chunk_rows, where)
    observed = _scan_actions(source, layout, skip, chunk_rows)
    meta = _import_meta(restored, options, observed, where)
    ids, offsets, lengths = layout
    total = int(((lengths - 1) // skip + 1).sum())
    width = skip * source.action_width
    image_shape = tuple(int(n) for n in source.pixels.shape[1:])
    with (
        _atomic_h5(out) as file,
        tqdm(total=total, desc="import", unit="row", disable=not progress) as bar,
    ):
        _write_header(file, meta, len(ids), total, image_shape, source.state_dim, width)
        row = 0
        for episode, offset, length in zip(ids, offsets.tolist(), lengths.tolist(), strict=True):
            for first, last, blocks in _episode_chunks(length, skip, chunk_rows):
                frames = slice(offset + first * skip, offset + (last - 1) * skip + 1, skip)
                target = slice(row + first, row + last)
                try:
                    file[PIXELS_KEY][target] = source.pixels[frames]  # (n, H, W, 3)
                except (OSError, KeyError, RuntimeError) as error:
                    raise ValueError(f"{where}: reading 'pixels': {error}") from error
                state = _read(source.state, frames, where, STATE_KEY)  # (n, Ds)
                file[STATE_KEY][target] = state.astype(np.float64)
                action = np.full((last - first, width), np.nan, np.float32)  # (n, k * W)
                if blocks > 0:
                    begin = offset + first * skip
                    rows = slice(begin, begin + blocks * skip)
                    raw = _read(source.action, rows, where, ACTION_KEY)  # (b * k, W)
                    action[:blocks] = raw.reshape(blocks, width)  # k actions per kept frame
                file[ACTION_KEY][target] = action
                file[EPISODE_IDX_KEY][target] = episode
                file[STEP_IDX_KEY][target] = np.arange(first, last)
                bar.update(last - first)
            row += (length - 1) // skip + 1
    return out


def import_swm(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    frameskip: int = 1,
    action_low: Sequence[float] | None = None,
    action_high: Sequence[float] | None = None,
    env_id: str | None = None,
    control_hz: float | None = None,
    data_policy: str | None = None,
    state_key: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> Path:
    """Convert a stable-worldmodel / LeWM HDF5 file into a lewm_mpc dataset, streaming.

    See the module docstring for the accepted layout and the frameskip rule. A file exported by
    :func:`export_swm` carries its meta (attribute ``lewm_mpc_meta``): it is restored exactly
    (with ``frameskip=k``: ``action_block`` times ``k``, ``control_hz`` over ``k``, and
    ``episode_steps`` dropped unless still a whole number of rows); the arguments below then
    override the restored fields they set.

    Args:
        src: The swm ``.h5`` file.
        out: The lewm_mpc ``.h5`` file to write (atomically: temporary file, then rename).
        frameskip: Source rows per imported row ``k``; actions become ``(steps, k * A)``.
        action_low: Lower bound of one source action row (``A`` numbers). Default: the data's
            per-dimension minimum over the actions imported (a constant dimension is widened by
            ``1e-3 * max(1, |value|)`` on each side).
        action_high: Upper bound, same form; give both bounds or neither.
        env_id: Environment (or robot) id to record.
        control_hz: Source rows per second; the dataset records ``control_hz / frameskip``.
        data_policy: Name of the policy that generated the data (default ``"imported"``).
        state_key: Column used as the state (default: ``state``, else ``proprio``).
        overwrite: Replace an existing ``out``.
        progress: Show a tqdm progress bar over the imported rows.
        chunk_rows: Rows read or written at once.

    Returns:
        ``out`` as a :class:`~pathlib.Path`; ``EpisodeDataset.load(out)`` reads it.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        ValueError: Unreadable file, missing pixel, state, action or episode columns, pixels
            that are not uint8 (N, H, W, 3), a non-finite action inside an episode, no finite
            action to take default bounds from, or bounds that disagree with the action width.
    """
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise FileNotFoundError(f"swm file not found: {src}")
    _check_target(out, overwrite)
    options = _ImportOptions(
        frameskip, action_low, action_high, env_id, control_hz, data_policy, state_key
    )
    try:
        file = h5py.File(src, "r")
    except OSError as error:
        raise ValueError(f"{src} is not a readable HDF5 file: {error}") from error
    with file:
        columns: dict[str, h5py.Dataset] = {}

        def collect(name: str, item: Any) -> None:  # returns None: visititems stops otherwise
            if isinstance(item, h5py.Dataset):
                columns[name] = item

        file.visititems(collect)
        restored = (
            _meta_from_json(file.attrs[META_ATTR], str(src)) if META_ATTR in file.attrs else None
        )
        return _import(
            columns, restored, str(src), out, options, progress=progress, chunk_rows=chunk_rows
        )


def import_npz(
    src: str | os.PathLike[str] | Mapping[str, Any],
    out: str | os.PathLike[str],
    *,
    frameskip: int = 1,
    action_low: Sequence[float] | None = None,
    action_high: Sequence[float] | None = None,
    env_id: str | None = None,
    control_hz: float | None = None,
    data_policy: str | None = None,
    state_key: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> Path:
    """Convert plain numpy arrays (an ``.npz`` file or a dict) into a lewm_mpc dataset.

    The arrays follow the swm layout (module docstring): ``pixels`` uint8 (N, H, W, 3),
    ``state`` (or ``proprio``) (N, Ds), ``action`` (N, A) whose row ``t`` follows observation
    ``t`` (each episode's last action NaN or anything: it is never read), and either
    ``episode_idx`` / ``ep_idx`` (N,) or ``ep_len`` (E,) (with optional ``ep_offset``). An entry
    ``lewm_mpc_meta`` (a JSON string) is restored like :func:`import_swm`'s attribute. The arrays
    are read into memory (not streamed); the output is written in chunks, atomically. Arguments
    and errors are those of :func:`import_swm`; the result equals the swm import of the same
    arrays.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.
    """
    out = Path(out)
    _check_target(out, overwrite)
    if isinstance(src, Mapping):
        columns = {str(key): np.asarray(value) for key, value in src.items()}
        where = "arrays"
    else:
        where = str(src)
        if not Path(src).is_file():
            raise FileNotFoundError(f"npz file not found: {src}")
        try:
            archive = np.load(src, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ValueError(f"{src} is not a readable .npz archive: {error}") from error
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError(f"{src} holds a single array, not an .npz archive of named arrays")
        with archive:
            try:
                columns = {key: archive[key] for key in archive.files}
            except (OSError, ValueError) as error:  # a damaged member, or an object array
                raise ValueError(f"{src}: unreadable array: {error}") from error
    meta_entry = columns.pop(META_ATTR, None)
    restored = None if meta_entry is None else _meta_from_json(meta_entry[()], where)
    options = _ImportOptions(
        frameskip, action_low, action_high, env_id, control_hz, data_policy, state_key
    )
    return _import(columns, restored, where, out, options, progress=progress, chunk_rows=chunk_rows)


# --------------------------------------------------------------------------------------------
# Export
