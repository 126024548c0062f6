"""Importing a local LeRobot dataset folder, read directly (the ``lerobot`` package is not used).

**The LeRobot layout** (checked against lerobot 0.4.2's own writer and reader):

- ``meta/info.json``: ``codebase_version`` (``"v3.0"``; ``"v2.1"`` and ``"v2.0"`` are read too),
  ``fps``, ``robot_type``, ``features`` (name -> ``{"dtype", "shape", "names"}``; a camera has
  dtype ``"video"`` (frames in mp4 files) or ``"image"`` (frames in the parquet)),
  ``data_path`` and ``video_path`` (file name templates) and ``chunks_size``.
- v3.0: ``data/chunk-XXX/file-XXX.parquet`` files of many episodes each, one row per frame with
  the columns ``episode_index``, ``frame_index``, ``timestamp`` (seconds from the episode's
  start), ``index``, ``action``, ``observation.state``, ...; ``meta/episodes/chunk-XXX/
  file-XXX.parquet``, one row per episode (``episode_index``, ``length``, ``data/chunk_index``,
  ``data/file_index``, and per video camera ``videos/<key>/chunk_index``, ``.../file_index``,
  ``.../from_timestamp``); ``videos/<key>/chunk-XXX/file-XXX.mp4`` holds episodes one after the
  other: an episode's frame at ``timestamp`` t is the video's frame at ``from_timestamp + t``.
- v2.x: one parquet and one mp4 per episode (``data/chunk-{episode_index // chunks_size:03d}/
  episode_{episode_index:06d}.parquet``, ``videos/chunk-.../<key>/episode_....mp4``; the frame at
  ``timestamp`` t is the video's frame at t); the episodes are listed in ``meta/episodes.jsonl``.
- An image camera's column holds ``{"bytes": PNG or JPEG, "path": ...}`` structs.

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

import io
import json
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
    _episode_chunks,
    _ImportOptions,
    _positive_int,
)
from lewm_mpc.data.interop.importing import _import_meta
from lewm_mpc.data.writer import _atomic_h5, _write_header

VERSIONS = ("v2.0", "v2.1", "v3.0")
"""LeRobot ``codebase_version`` values read."""
DEFAULT_STATE_KEY = "observation.state"
TOLERANCE_S = 1e-4
"""Largest distance between a row's time and its video frame's (lerobot's default)."""
INFO_PATH = "meta/info.json"
_V3_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
_V3_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
_V2_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
_V2_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
_EPISODE_COLUMN = "episode_index"
_TIME_COLUMN = "timestamp"
_CAMERA_DTYPES = ("video", "image")
_NUMERIC_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                   "uint16", "uint32", "uint64", "bool")  # fmt: skip
_SEEK_AHEAD_S = 5.0  # seek instead of decoding forward when the next frame is further ahead


def _modules() -> tuple[Any, Any, Any]:
    """``(pyarrow, pyarrow.parquet, av)``, or ImportError naming the extra."""
    try:
        import av
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ImportError(
            f"importing LeRobot datasets needs pyarrow and av ({error}): "
            "pip install 'lewm-mpc[lerobot]'"
        ) from error
    return pa, pq, av


# --------------------------------------------------------------------------------------------
# meta/info.json and the episodes


@dataclass
class _Episode:
    """Where one episode's rows and frames are."""

    index: int
    length: int  # rows, as the episodes metadata says
    data: Path  # its parquet file
    video: Path | None  # its mp4 (video camera only)
    video_from: float  # time of its first frame in the video
    row: int = -1  # its first row in ``data`` (found by the scan)


@dataclass(frozen=True)
class _Layout:
    """The parts of a LeRobot dataset an import reads."""

    root: Path
    version: str
    fps: float
    robot_type: str | None
    camera: str
    camera_kind: str  # "video" or "image"
    frame_size: tuple[int, int]  # (H, W) as info.json says
    action_key: str
    action_width: int
    state_key: str | None  # None: the row's time is the state
    state_width: int
    episodes: list[_Episode]


def _load_info(root: Path) -> tuple[Path, dict[str, Any]]:
    info_path = root / INFO_PATH
    if not info_path.is_file():
        raise ValueError(f"{root} is not a LeRobot dataset: no {INFO_PATH}")
    try:
        info = json.loads(info_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{info_path} is not readable JSON: {error}") from error
    if not isinstance(info, dict) or not isinstance(info.get("features"), dict):
        raise ValueError(f"{info_path}: no 'features' object (is it a LeRobot info.json?)")
    version = info.get("codebase_version")
    if version not in VERSIONS:
        raise ValueError(
            f"{info_path}: codebase_version {version!r} is not supported (expected one of "
            f"{list(VERSIONS)}); convert the dataset with lerobot's converter first"
        )
    fps = info.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not (0 < fps < math.inf):
        raise ValueError(f"{info_path}: 'fps' must be a number > 0, got {fps!r}")
    return info_path, info


def _feature_shape(feature: Any, key: str, where: Path) -> tuple[int, ...]:
    shape = feature.get("shape") if isinstance(feature, dict) else None
    if not isinstance(shape, list | tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape
    ):
        raise ValueError(f"{where}: feature {key!r} has no valid 'shape' (got {shape!r})")
    return tuple(shape)


def _camera(
    info: dict[str, Any], camera: str | None, where: Path
) -> tuple[str, str, tuple[int, int]]:
    """``(key, dtype, (H, W))`` of the camera to import."""
    features = info["features"]
    cameras = [
        key
        for key, feature in features.items()
        if isinstance(feature, dict) and feature.get("dtype") in _CAMERA_DTYPES
    ]
    if camera is None:
        if len(cameras) != 1:
            what = "no camera (image or video feature)" if not cameras else f"cameras {cameras}"
            raise ValueError(f"{where}: it has {what}; choose one with camera= (--camera)")
        camera = cameras[0]
    elif camera not in cameras:
        raise ValueError(
            f"{where}: no image or video feature {camera!r}; its cameras are {cameras}"
        )
    feature = features[camera]
    shape = _feature_shape(feature, camera, where)
    names = feature.get("names")
    if len(shape) != 3:
        raise ValueError(f"{where}: camera {camera!r} has shape {list(shape)}, expected 3 dims")
    if isinstance(names, list) and len(names) == 3 and "height" in names and "width" in names:
        size = (shape[names.index("height")], shape[names.index("width")])
    elif shape[-1] in (1, 3, 4):
        size = shape[:2]  # (H, W, C)
    else:
        size = shape[1:]  # (C, H, W)
    return camera, feature["dtype"], (int(size[0]), int(size[1]))


def _vector_width(info: dict[str, Any], key: str, role: str, where: Path) -> int:
    features = info["features"]
    if key not in features:
        numeric = [k for k, f in features.items() if isinstance(f, dict)
                   and f.get("dtype") in _NUMERIC_DTYPES]  # fmt: skip
        raise ValueError(
            f"{where}: no feature {key!r} for the {role}; its numeric features are {numeric}"
        )
    feature = features[key]
    dtype = feature.get("dtype") if isinstance(feature, dict) else None
    if dtype not in _NUMERIC_DTYPES:
        raise ValueError(f"{where}: feature {key!r} ({role}) must be numeric, got dtype {dtype!r}")
    return int(np.prod(_feature_shape(feature, key, where)))


def _template(info: dict[str, Any], name: str, default: str, where: Path, **fields: Any) -> str:
    template = info.get(name) or default
    try:
        return str(template).format(**fields)
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(f"{where}: cannot fill {name} {template!r}: {error!r}") from error


def _v3_episodes(
    pq: Any, root: Path, info: dict[str, Any], camera: str, video: bool, where: Path
) -> list[_Episode]:
    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise ValueError(f"{root}: no meta/episodes/chunk-*/file-*.parquet (LeRobot v3.0 layout)")
    columns = [_EPISODE_COLUMN, "length", "data/chunk_index", "data/file_index"]
    video_columns = [f"videos/{camera}/{name}" for name in
                     ("chunk_index", "file_index", "from_timestamp")]  # fmt: skip
    if video:
        columns += video_columns
    episodes = []
    for path in files:
        try:
            names = pq.read_schema(path).names
            missing = [name for name in columns if name not in names]
            if missing:
                raise ValueError(f"no column {missing[0]!r} (expected {columns})")
            table = pq.read_table(path, columns=columns).to_pydict()
        except (OSError, ValueError) as error:  # ArrowInvalid is a ValueError
            raise ValueError(f"{path}: not a LeRobot episodes file: {error}") from error
        for row in range(len(table[_EPISODE_COLUMN])):
            value = {name: table[name][row] for name in columns}
            if any(entry is None for entry in value.values()):
                raise ValueError(f"{path}: row {row} has an empty entry: {value}")
            data = root / _template(
                info, "data_path", _V3_DATA_PATH, where,
                chunk_index=value["data/chunk_index"], file_index=value["data/file_index"],
            )  # fmt: skip
            episode = _Episode(int(value[_EPISODE_COLUMN]), int(value["length"]), data, None, 0.0)
            if video:
                chunk, file, start = (value[name] for name in video_columns)
                episode.video = root / _template(
                    info, "video_path", _V3_VIDEO_PATH, where,
                    video_key=camera, chunk_index=chunk, file_index=file,
                )  # fmt: skip
                episode.video_from = float(start)
            episodes.append(episode)
    return episodes


def _v2_episodes(root: Path, info: dict[str, Any], camera: str, video: bool) -> list[_Episode]:
    listing = root / "meta" / "episodes.jsonl"
    where = root / INFO_PATH
    if not listing.is_file():
        raise ValueError(f"{root}: no meta/episodes.jsonl (LeRobot {info['codebase_version']})")
    chunk_size = info.get("chunks_size") or 1000
    episodes = []
    with listing.open() as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                index, length = int(entry[_EPISODE_COLUMN]), int(entry["length"])
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(
                    f"{listing}:{number}: expected a JSON object with episode_index and length "
                    f"({error!r})"
                ) from error
            fields = {"episode_chunk": index // chunk_size, "episode_index": index}
            data = root / _template(info, "data_path", _V2_DATA_PATH, where, **fields)
            movie = None
            if video:
                name = _template(info, "video_path", _V2_VIDEO_PATH, where, video_key=camera,
                                 **fields)  # fmt: skip
                movie = root / name
            episodes.append(_Episode(index, length, data, movie, 0.0))
    return episodes


def _layout(
    pq: Any,
    root: Path,
    camera: str | None,
    state_key: str | None,
    action_key: str,
    episodes: Iterable[int] | None,
) -> _Layout:
    info_path, info = _load_info(root)
    camera, kind, size = _camera(info, camera, info_path)
    action_width = _vector_width(info, action_key, "action", info_path)
    if state_key is None and DEFAULT_STATE_KEY in info["features"]:
        state_key = DEFAULT_STATE_KEY
    state_width = 1 if state_key is None else _vector_width(info, state_key, "state", info_path)
    video = kind == "video"
    version = info["codebase_version"]
    listed = (
        _v3_episodes(pq, root, info, camera, video, info_path)
        if version == "v3.0"
        else _v2_episodes(root, info, camera, video)
    )
    by_index = {}
    for episode in listed:
        if episode.index in by_index:
            raise ValueError(f"{root}: episode {episode.index} is listed twice in its metadata")
        by_index[episode.index] = episode
    if episodes is None:
        wanted = sorted(by_index)
    else:
        wanted = sorted({int(index) for index in episodes})
        unknown = [index for index in wanted if index not in by_index]
        if unknown:
            span = f"{min(by_index)}..{max(by_index)}" if by_index else "none"
            raise ValueError(
                f"{root}: no episode {unknown[:5]} (its {len(by_index)} episodes: {span})"
            )
    chosen = [by_index[index] for index in wanted if by_index[index].length > 0]
    if not chosen:
        raise ValueError(f"{root}: it holds no episode with a frame (of those asked for)")
    robot = info.get("robot_type")
    return _Layout(
        root=root,
        version=version,
        fps=float(info["fps"]),
        robot_type=robot if isinstance(robot, str) and robot else None,
        camera=camera,
        camera_kind=kind,
        frame_size=size,
        action_key=action_key,
        action_width=action_width,
        state_key=state_key,
        state_width=state_width,
        episodes=chosen,
    )


# --------------------------------------------------------------------------------------------
# Reading parquet rows and video frames


class _Rows:
    """Some columns of one parquet file, read forward ``batch_rows`` rows at a time."""

    def __init__(self, pq: Any, path: Path, columns: Sequence[str], batch_rows: int) -> None:
        self.path = path
        try:
            self._file = pq.ParquetFile(path)
            names = self._file.schema_arrow.names
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: not a readable parquet file: {error}") from error
        missing = [name for name in columns if name not in names]
        if missing:
            raise ValueError(f"{path}: no column {missing[0]!r} (its columns: {names})")
        self.columns = tuple(columns)
        self._batches = self._file.iter_batches(batch_size=batch_rows, columns=list(columns))
        self._buffer: Any = None  # a pyarrow Table of the rows from ``position`` on
        self.position = 0

    def close(self) -> None:
        self._file.close()

    def take(self, start: int, count: int) -> Any:
        """Rows ``start .. start + count - 1`` (``start`` at or after the rows taken before)."""
        import pyarrow as pa

        if start < self.position:
            raise RuntimeError(f"{self.path}: row {start} was passed already")
        while self._buffer is None or self.position + self._buffer.num_rows < start + count:
            try:
                batch = next(self._batches, None)
            except (OSError, ValueError) as error:
                raise ValueError(f"{self.path}: reading rows: {error}") from error
            if batch is None:
                end = self.position + (0 if self._buffer is None else self._buffer.num_rows)
                raise ValueError(
                    f"{self.path}: it ends at row {end}; rows up to {start + count} were expected"
                )
            table = pa.Table.from_batches([batch])
            self._buffer = (
                table if self._buffer is None else pa.concat_tables([self._buffer, table])
            )
            drop = min(start - self.position, self._buffer.num_rows)  # rows no one will ask for
            self._buffer, self.position = self._buffer.slice(drop), self.position + drop
        self._buffer = self._buffer.slice(start - self.position)
        rows = self._buffer.slice(0, count)
        self._buffer, self.position = self._buffer.slice(count), start + count
        return rows.combine_chunks()


def _vectors(rows: Any, name: str, width: int, where: Path) -> np.ndarray:
    """Column ``name`` of ``rows`` as float64 (n, width): lists flattened, scalars (n, 1)."""
    import pyarrow as pa

    values = rows.column(name).combine_chunks()
    num_rows = len(values)
    lists = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)
    while any(is_list(values.type) for is_list in lists):
        if values.null_count:
            break
        values = values.flatten()
    if values.null_count or not (
        pa.types.is_integer(values.type)
        or pa.types.is_floating(values.type)
        or pa.types.is_boolean(values.type)
    ):
        raise ValueError(
            f"{where}: column {name!r} must hold numbers without empty entries, got "
            f"{rows.column(name).type} with {values.null_count} empty"
        )
    array = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
    if array.size != num_rows * width:
        raise ValueError(
            f"{where}: column {name!r} holds {array.size / max(num_rows, 1):g} numbers per row; "
            f"its feature in {INFO_PATH} says {width}"
        )
    return array.reshape(num_rows, width)


def _images(rows: Any, name: str, kept: np.ndarray, root: Path, where: Path) -> list[np.ndarray]:
    """The images of rows ``kept`` of an image column, decoded to uint8 RGB (H, W, 3)."""
    from PIL import Image

    frames = []
    for value in rows.column(name).take(kept).to_pylist():
        data = value.get("bytes") if isinstance(value, dict) else None
        if data is None and isinstance(value, dict) and value.get("path"):
            path = root / value["path"]
            data = path.read_bytes() if path.is_file() else None
        if data is None:
            raise ValueError(f"{where}: column {name!r} has a row with no image bytes: {value!r}")
        try:
            with Image.open(io.BytesIO(data)) as image:
                frames.append(np.asarray(image.convert("RGB")))
        except OSError as error:  # PIL.UnidentifiedImageError is an OSError
            raise ValueError(f"{where}: column {name!r}: undecodable image: {error}") from error
    return frames


class _Video:
    """One mp4 file's frames by time: decoded forward, with a seek per jump (lerobot's rule: the
    frame nearest the asked time, within the tolerance)."""

    def __init__(self, av: Any, path: Path, tolerance_s: float) -> None:
        self.path = path
        self._tolerance = tolerance_s
        if not path.is_file():
            raise ValueError(f"{path}: video file not found")
        try:
            self._container = av.open(str(path))
        except (av.FFmpegError, OSError) as error:
            raise ValueError(f"{path}: not a readable video: {error}") from error
        if not self._container.streams.video:
            self._container.close()
            raise ValueError(f"{path}: holds no video stream")
        self._stream = self._container.streams.video[0]
        self._errors = (av.FFmpegError, OSError)
        self._decoded: Any = None
        self._previous: Any = None  # the last frame at or before the last time asked
        self._next: Any = None  # the frame after it

    def close(self) -> None:
        self._container.close()

    def _advance(self) -> Any:
        try:
            frame = next(self._decoded, None)
        except self._errors as error:
            raise ValueError(f"{self.path}: decoding: {error}") from error
        if frame is not None and frame.time is None:
            raise ValueError(f"{self.path}: a frame has no timestamp")
        return frame

    def _seek(self, time_s: float) -> None:
        try:
            offset = int(max(time_s, 0.0) / self._stream.time_base)
            self._container.seek(offset, stream=self._stream, backward=True, any_frame=False)
        except self._errors as error:
            raise ValueError(f"{self.path}: seeking to {time_s:.4f} s: {error}") from error
        self._decoded = self._container.decode(self._stream)
        self._previous, self._next = None, self._advance()

    def frames_at(self, times: np.ndarray, episode: int) -> list[np.ndarray]:
        """The frames nearest to ``times`` (increasing seconds), uint8 RGB (H, W, 3) each."""
        first = float(times[0])
        if (
            self._decoded is None
            or (self._previous is not None and first < self._previous.time - self._tolerance)
            or (self._next is not None and first > self._next.time + _SEEK_AHEAD_S)
        ):
            self._seek(first - self._tolerance)
        frames = []
        for time in times.tolist():
            while self._next is not None and self._next.time <= time:
                self._previous, self._next = self._next, self._advance()
            near = [frame for frame in (self._previous, self._next) if frame is not None]
            best = min(near, key=lambda frame: abs(frame.time - time), default=None)
            if best is None or abs(best.time - time) > self._tolerance:
                found = "no frame" if best is None else f"the nearest at {best.time:.6f} s"
                raise ValueError(
                    f"{self.path}: no frame within {self._tolerance:g} s of {time:.6f} s "
                    f"(episode {episode}; {found}); the video and the parquet timestamps "
                    "disagree (raise tolerance_s / --tolerance-s if they are only jittered)"
                )
            try:
                frames.append(best.to_ndarray(format="rgb24"))
            except self._errors as error:
                raise ValueError(f"{self.path}: converting a frame: {error}") from error
        return frames


class _Opened:
    """At most one open reader at a time, reopened on a new path or a step back."""

    def __init__(self) -> None:
        self.reader: Any = None

    def get(self, path: Path, make: Any, start: int | None = None) -> Any:
        stale = self.reader is not None and (
            self.reader.path != path or (start is not None and start < self.reader.position)
        )
        if stale:
            self.close()
        if self.reader is None:
            self.reader = make()
        return self.reader

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None


# --------------------------------------------------------------------------------------------
# The two passes


def _source_rows(
    length: int, skip: int, chunk_rows: int
) -> Iterable[tuple[int, int, int, int, int]]:
    """``(first, last, blocks, begin, end)`` per output chunk: source rows ``begin .. end - 1``
    hold its kept frames (every ``skip``-th from ``begin``) and its ``blocks * skip`` actions."""
    for first, last, blocks in _episode_chunks(length, skip, chunk_rows):
        yield first, last, blocks, first * skip, min(last * skip, length)


def _find_rows(pq: Any, path: Path, group: list[_Episode], where_meta: str) -> None:
    """Set each episode's first row in ``path`` from its ``episode_index`` column."""
    if not path.is_file():
        raise ValueError(f"{path}: not found ({where_meta} puts episode {group[0].index} there)")
    try:
        ids = pq.read_table(path, columns=[_EPISODE_COLUMN]).column(0).to_numpy()
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: no readable {_EPISODE_COLUMN!r} column: {error}") from error
    ids = np.asarray(ids)
    if ids.size == 0:
        raise ValueError(f"{path}: it holds no rows")
    starts = np.flatnonzero(np.diff(ids)) + 1
    starts = np.concatenate([[0], starts])
    lengths = np.diff(np.append(starts, ids.size))
    for episode in group:
        runs = np.flatnonzero(ids[starts] == episode.index)
        if runs.size == 0:
            raise ValueError(f"{path}: it holds no row of episode {episode.index}")
        if runs.size > 1:
            raise ValueError(f"{path}: the rows of episode {episode.index} are not contiguous")
        run = int(runs[0])
        if int(lengths[run]) != episode.length:
            raise ValueError(
                f"{path}: episode {episode.index} has {int(lengths[run])} rows, but {where_meta} "
                f"says its length is {episode.length}"
            )
        episode.row = int(starts[run])


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


def _resized(frames: list[np.ndarray], size: int | None) -> np.ndarray:
    if size is None:
        return np.stack(frames)
    from PIL import Image

    out = np.empty((len(frames), size, size, 3), np.uint8)
    for number, frame in enumerate(frames):
        if frame.shape[:2] == (size, size):
            out[number] = frame
        else:
            image = Image.fromarray(frame).resize((size, size), Image.Resampling.BILINEAR)
            out[number] = np.asarray(image)
    return out


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
    ``action`` (see the module docstring for the layout read and the frame-to-row rule). A
    dataset without a state feature (and no ``state_key``) gets each frame's ``timestamp``
    (seconds from its episode's start) as a 1-d placeholder state.

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
