"""Reading a local LeRobot dataset's metadata and layout: ``meta/info.json`` (version, fps,
features, the camera, state and action to import, the file name templates) and the episode tables,
into a :class:`_Layout` (the ``lerobot`` package is not used).

**The LeRobot layout** (checked against lerobot 0.4.2's own writer and reader):

- ``meta/info.json``: ``codebase_version`` (``"v3.0"``; ``"v2.1"`` and ``"v2.0"`` are read too),
  ``fps``, ``robot_type``, ``features`` (name -> ``{"dtype", "shape", "names"}``; a camera has
  dtype ``"video"`` (frames in mp4 files) or ``"image"`` (frames in the parquet)),
  ``data_path`` and ``video_path`` (file name templates) and ``chunks_size``.
- v3.0: ``data/chunk-{c:03d}/file-{f:03d}.parquet`` files of many episodes each (chunk and
  file numbers), one row per frame with the columns ``episode_index``, ``frame_index``,
  ``timestamp`` (seconds from the episode's start), ``index``, ``action``,
  ``observation.state``, ...; ``meta/episodes/chunk-{c:03d}/file-{f:03d}.parquet``, one row per
  episode (``episode_index``, ``length``, ``data/chunk_index``, ``data/file_index``, and per
  video camera ``videos/<key>/chunk_index``, ``.../file_index``, ``.../from_timestamp``);
  ``videos/<key>/chunk-{c:03d}/file-{f:03d}.mp4`` holds episodes one after the other: an
  episode's frame at ``timestamp`` t is the video's frame at ``from_timestamp + t``.
- v2.x: one parquet and one mp4 per episode (``data/chunk-{episode_index // chunks_size:03d}/
  episode_{episode_index:06d}.parquet``, ``videos/chunk-.../<key>/episode_....mp4``; the frame at
  ``timestamp`` t is the video's frame at t); the episodes are listed in ``meta/episodes.jsonl``.
- An image camera's column holds ``{"bytes": PNG or JPEG, "path": ...}`` structs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

VERSIONS = ("v2.0", "v2.1", "v3.0")
"""LeRobot ``codebase_version`` values read."""
DEFAULT_STATE_KEY = "observation.state"
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
