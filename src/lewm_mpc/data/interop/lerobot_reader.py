"""Reading a LeRobot dataset's rows and frames: parquet columns streamed forward a batch at a time
(:class:`_Rows`), numeric and image columns decoded (:func:`_vectors`, :func:`_images`), mp4
frames by time (:class:`_Video`, lerobot's nearest-frame rule within a tolerance), and the source
rows of each output chunk (:func:`_source_rows`, :func:`_find_rows`).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lewm_mpc.data.interop._columns import _episode_chunks
from lewm_mpc.data.interop.lerobot_layout import _EPISODE_COLUMN, INFO_PATH, _Episode

TOLERANCE_S = 1e-4
"""Largest distance between a row's time and its video frame's (lerobot's default)."""
_SEEK_AHEAD_S = 5.0  # seek instead of decoding forward when the next frame is further ahead


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
