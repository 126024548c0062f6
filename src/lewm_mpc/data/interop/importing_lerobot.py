"""Importing a local LeRobot dataset folder, read directly (the ``lerobot`` package is not used).

The layout read (``meta/info.json``, the v3.0 and v2.x episode tables, parquet and mp4 files) is
described in :mod:`lewm_mpc.data.interop.lerobot_layout`; rows and frames are read by
:mod:`lewm_mpc.data.interop.lerobot_reader`.

A row's video frame is the decoded frame nearest its time, within ``tolerance_s`` (lerobot's rule
and default, 1e-4 s), converted to RGB (``rgb24``) as lerobot's PyAV reader does: the frames are
those ``LeRobotDataset(...)[i]`` returns (times 255). Row ``t``'s ``action`` is the one taken after
observation ``t`` (LeRobot's convention and ours): each episode's last action is not stored (ours
has NaN there). ``frameskip`` works as in :func:`~lewm_mpc.data.interop.import_swm`.

Everything streams: episodes are read ``chunk_rows`` source rows at a time (parquet record
batches of the columns needed only; videos decoded forward, with a seek to jump back or far
ahead), in two passes (the first checks the lengths, actions and states and takes the action
bounds; the second writes).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lewm_mpc.data.format import (
    ACTION_KEY,
    EPISODE_IDX_KEY,
    PIXELS_KEY,
    STATE_KEY,
    STEP_IDX_KEY,
)
from lewm_mpc.data.interop._columns import (
    CHUNK_ROWS,
    _check_target,
    _ImportOptions,
    _positive_int,
)
from lewm_mpc.data.interop.importing import _import_meta
from lewm_mpc.data.interop.lerobot_layout import (
    _TIME_COLUMN,
    INFO_PATH,
    _Episode,
    _Layout,
    _layout,
    _modules,
)
from lewm_mpc.data.interop.lerobot_reader import (
    TOLERANCE_S,
    _find_rows,
    _images,
    _Opened,
    _resized,
    _Rows,
    _source_rows,
    _vectors,
    _Video,
)
from lewm_mpc.data.writer import _atomic_h5, _write_header


def _scan(
    pq: Any, layout: _Layout, skip: int, chunk_rows: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Locate every episode's rows, check its actions and states; the used actions' (min, max)
    per dimension, or None when no action is used."""
    where_meta = "meta/episodes/" if layout.version == "v3.0" else "meta/episodes.jsonl"
    groups: dict[Path, list[_Episode]] = {}
    for episode in layout.episodes:
        groups.setdefault(episode.data, []).append(episode)
    low = np.full(layout.action_width, np.inf)
    high = np.full(layout.action_width, -np.inf)
    columns = [layout.action_key] + ([layout.state_key] if layout.state_key else [])
    for path, group in groups.items():
        _find_rows(pq, path, group, where_meta)
        rows = _Rows(pq, path, columns, chunk_rows)
        try:
            for episode in sorted(group, key=lambda episode: episode.row):
                for _, _, blocks, begin, end in _source_rows(episode.length, skip, chunk_rows):
                    table = rows.take(episode.row + begin, end - begin)
                    if layout.state_key:
                        state = _vectors(table, layout.state_key, layout.state_width, path)
                        if not np.isfinite(state).all():
                            bad = int(np.flatnonzero(~np.isfinite(state).all(axis=1))[0])
                            raise ValueError(
                                f"{path}: {layout.state_key!r} of episode {episode.index}, frame "
                                f"{begin + bad} is not finite"
                            )
                    if blocks <= 0:
                        continue
                    action = _vectors(table, layout.action_key, layout.action_width, path)
                    action = action[: blocks * skip].astype(np.float32)  # as it will be stored
                    finite = np.isfinite(action).all(axis=1)
                    if not finite.all():
                        bad = int(np.flatnonzero(~finite)[0])
                        raise ValueError(
                            f"{path}: {layout.action_key!r} of episode {episode.index}, frame "
                            f"{begin + bad} is not finite (only an episode's last action is "
                            "never used)"
                        )
                    low = np.minimum(low, action.min(axis=0))
                    high = np.maximum(high, action.max(axis=0))
        finally:
            rows.close()
    return None if np.isinf(low).any() else (low, high)


def import_lerobot(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    camera: str | None = None,
    state_key: str | None = None,
    action_key: str = "action",
    frameskip: int = 1,
    image_size: int | None = None,
    episodes: Iterable[int] | None = None,
    action_low: Sequence[float] | None = None,
    action_high: Sequence[float] | None = None,
    env_id: str | None = None,
    control_hz: float | None = None,
    data_policy: str | None = None,
    tolerance_s: float = TOLERANCE_S,
    overwrite: bool = False,
    progress: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> Path:
    """Convert a local LeRobot dataset folder (format v3.0, or v2.1 / v2.0) into a lewm_mpc
    dataset, streaming; needs the extra ``lerobot`` (pyarrow, av), not the lerobot package.

    One camera's frames become ``pixels``, a numeric feature the ``state`` and another the
    ``action`` (see :mod:`lewm_mpc.data.interop.lerobot_layout` for the layout read and the
    module docstring for the frame-to-row rule). A dataset without a state feature (and no
    ``state_key``) gets each frame's ``timestamp`` (seconds from its episode's start) as a 1-d
    placeholder state.

    Args:
        src: The dataset folder (the one holding ``meta/info.json``).
        out: The lewm_mpc ``.h5`` file to write (atomically).
        camera: The image or video feature to import (default: the only one; with several, an
            error lists them).
        state_key: The numeric feature stored as the state (default ``observation.state`` when
            the dataset has it).
        action_key: The numeric feature stored as the action.
        frameskip: Source rows per imported row ``k``; actions become ``(steps, k * A)``.
        image_size: Resize every frame to ``image_size`` x ``image_size`` (PIL bilinear, aspect
            not kept); default: keep the camera's size. Pixel world models need square frames.
        episodes: LeRobot episode indices to import (default: all); they keep their indices.
        action_low: Lower bound of one source action (``A`` numbers); default: the data's
            per-dimension minimum over the imported actions, as :func:`import_swm`.
        action_high: Upper bound, same form; give both bounds or neither.
        env_id: Id to record (default: the dataset's ``robot_type``, when it has one).
        control_hz: Source rows per second (default: the dataset's ``fps``); the dataset
            records ``control_hz / frameskip``.
        data_policy: Name of the policy that generated the data (default ``"imported"``).
        tolerance_s: Largest distance in seconds between a row's timestamp and its video frame.
        overwrite: Replace an existing ``out``.
        progress: Show a tqdm progress bar over the imported rows.
        chunk_rows: Source rows read at once.

    Returns:
        ``out`` as a :class:`~pathlib.Path`; ``EpisodeDataset.load(out)`` reads it.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        ImportError: pyarrow or av is missing (``pip install 'lewm-mpc[lerobot]'``).
        ValueError: Not a LeRobot folder, an unsupported version, a missing camera, state or
            action feature or file, episode lengths that disagree between the metadata and the
            parquet, a non-finite action or state, a video frame missing at a row's time.
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise FileNotFoundError(f"LeRobot dataset folder not found: {src}")
    _check_target(out, overwrite)
    skip = _positive_int("frameskip", frameskip)
    chunk_rows = _positive_int("chunk_rows", chunk_rows)
    if image_size is not None:
        image_size = _positive_int("image_size", image_size)
    if not (isinstance(tolerance_s, int | float) and 0 <= tolerance_s < math.inf):
        raise ValueError(f"tolerance_s must be a finite number >= 0, got {tolerance_s!r}")
    if (action_low is None) != (action_high is None):
        raise ValueError("give both action_low and action_high, or neither")
    _, pq, av = _modules()
    layout = _layout(pq, src, camera, state_key, action_key, episodes)
    height, width = layout.frame_size
    if image_size is None and height != width:
        warnings.warn(
            f"{src}: camera {layout.camera!r} frames are {height}x{width}, not square; pixel "
            "world models need square frames: pass image_size (--image-size)",
            stacklevel=2,
        )
    observed = _scan(pq, layout, skip, chunk_rows)
    options = _ImportOptions(
        skip,
        action_low,
        action_high,
        env_id if env_id is not None else layout.robot_type,
        control_hz if control_hz is not None else layout.fps,
        data_policy,
        layout.state_key,
    )
    meta = _import_meta(None, options, observed, str(src))
    image_shape = (image_size, image_size, 3) if image_size else (height, width, 3)
    _write(layout, meta, out, image_shape, skip, image_size, tolerance_s, pq, av,
           progress=progress, chunk_rows=chunk_rows)  # fmt: skip
    return out


def _write(
    layout: _Layout,
    meta: Any,
    out: Path,
    image_shape: tuple[int, int, int],
    skip: int,
    image_size: int | None,
    tolerance_s: float,
    pq: Any,
    av: Any,
    *,
    progress: bool,
    chunk_rows: int,
) -> None:
    video = layout.camera_kind == "video"
    columns = [layout.action_key]
    if layout.state_key:
        columns.append(layout.state_key)
    if video or not layout.state_key:
        columns.append(_TIME_COLUMN)
    if not video:
        columns.append(layout.camera)
    columns = list(dict.fromkeys(columns))
    total = sum((episode.length - 1) // skip + 1 for episode in layout.episodes)
    width = skip * layout.action_width
    state_dim = layout.state_width
    rows, movies = _Opened(), _Opened()
    try:
        with (
            _atomic_h5(out) as file,
            tqdm(total=total, desc="import", unit="row", disable=not progress) as bar,
        ):
            _write_header(file, meta, len(layout.episodes), total, image_shape, state_dim, width)
            row = 0
            for episode in layout.episodes:
                for first, last, blocks, begin, end in _source_rows(
                    episode.length, skip, chunk_rows
                ):
                    source = rows.get(
                        episode.data,
                        lambda path=episode.data: _Rows(pq, path, columns, chunk_rows),
                        episode.row + begin,
                    )
                    table = source.take(episode.row + begin, end - begin)
                    kept = np.arange(0, end - begin, skip)  # (n,) rows of the kept frames
                    where = episode.data
                    if video:
                        times = _vectors(table, _TIME_COLUMN, 1, where)[kept, 0]
                        if (np.diff(times) <= 0).any():
                            raise ValueError(
                                f"{where}: the timestamps of episode {episode.index} do not "
                                "increase"
                            )
                        movie = movies.get(
                            episode.video,
                            lambda path=episode.video: _Video(av, path, tolerance_s),
                        )
                        frames = movie.frames_at(episode.video_from + times, episode.index)
                        where = episode.video
                    else:
                        frames = _images(table, layout.camera, kept, layout.root, where)
                    for frame in frames:
                        if frame.shape[:2] != layout.frame_size:
                            raise ValueError(
                                f"{where}: a frame of episode {episode.index} is "
                                f"{frame.shape[0]}x{frame.shape[1]}; {INFO_PATH} says camera "
                                f"{layout.camera!r} is {layout.frame_size[0]}x"
                                f"{layout.frame_size[1]}"
                            )
                    target = slice(row + first, row + last)
                    file[PIXELS_KEY][target] = _resized(frames, image_size)  # (n, H, W, 3)
                    if layout.state_key:
                        state = _vectors(table, layout.state_key, state_dim, episode.data)
                    else:
                        state = _vectors(table, _TIME_COLUMN, 1, episode.data)
                    file[STATE_KEY][target] = state[kept]  # (n, Ds) float64
                    action = np.full((last - first, width), np.nan, np.float32)  # (n, k * A)
                    if blocks > 0:
                        raw = _vectors(table, layout.action_key, layout.action_width, episode.data)
                        action[:blocks] = raw[: blocks * skip].reshape(blocks, width)
                    file[ACTION_KEY][target] = action
                    file[EPISODE_IDX_KEY][target] = episode.index
                    file[STEP_IDX_KEY][target] = np.arange(first, last)
                    bar.update(last - first)
                row += (episode.length - 1) // skip + 1
    finally:
        rows.close()
        movies.close()
