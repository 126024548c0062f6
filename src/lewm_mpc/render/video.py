"""Writing frames to mp4 (H.264 via imageio-ffmpeg) or GIF, atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from lewm_mpc.atomic import atomic_write
from lewm_mpc.render.layout import pad_to_multiple, side_by_side

VIDEO_SUFFIXES = (".mp4", ".gif")


def check_video_path(path: str | Path) -> Path:
    """``path`` as a Path if it ends in .mp4 or .gif (any case), else a ValueError."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"video path must end in .mp4 or .gif, got {path.name}")
    return path


def write_video(
    path: str | Path,
    frames: Sequence[np.ndarray] | np.ndarray,
    fps: int = 10,
    hold_last: int = 5,
) -> Path:
    """Write (T, H, W, 3) uint8 frames to an mp4 or a GIF (chosen by the extension).

    The file appears only complete (temp file + rename). An mp4 frame is padded at the bottom
    and right to multiples of 16 px (H.264 macroblocks) if it is not already.

    Args:
        path: output ``.mp4`` or ``.gif``.
        frames: the frames, all the same size.
        fps: frames per second.
        hold_last: show the last frame this many frame-times longer (mp4: repeated frames;
            GIF: a longer last-frame duration, so a GIF has exactly one frame per input frame).

    Returns:
        The path written.
    """
    path = check_video_path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(f"frames must be uint8 (T, H, W, 3), T >= 1, got {frames.dtype} "
                         f"{frames.shape}")  # fmt: skip
    if fps < 1 or hold_last < 0:
        raise ValueError(f"fps must be >= 1 and hold_last >= 0, got {fps} and {hold_last}")
    suffix = path.suffix.lower()
    with atomic_write(path, suffix=suffix) as tmp:
        if suffix == ".mp4":  # constant frame rate: hold the end by repeating the last frame
            padded = [pad_to_multiple(frame) for frame in frames]
            imageio.mimsave(
                tmp,
                padded + [padded[-1]] * hold_last,
                fps=fps,
                codec="libx264",
                macro_block_size=1,
                ffmpeg_log_level="error",
            )
        else:  # GIF: one frame per step, the last one shown longer
            durations = [1000 / fps] * len(frames)
            durations[-1] *= 1 + hold_last
            imageio.mimsave(tmp, list(frames), duration=durations, loop=0)
    return path


def write_episode_video(
    path: str | Path,
    frames: Sequence[np.ndarray] | np.ndarray,
    goal: np.ndarray,
    success: Sequence[bool] | np.ndarray,
    scale: int = 4,
    fps: int = 10,
    hold_last: int = 5,
) -> Path:
    """Write an mp4 (or .gif by extension) of executed frames beside the goal image.

    Without overlays; :func:`lewm_mpc.render.render_episode` adds the imagined plan and the
    energy strip.

    Args:
        path: output file; ``.mp4`` uses ffmpeg (imageio-ffmpeg), ``.gif`` Pillow.
        frames: (T, H, W, 3) uint8 executed observations.
        goal: (H, W, 3) uint8 goal image.
        success: (T,) per-frame success flag (the frame turns green from the first success).
        scale: integer upscaling factor (64 px frames are too small to watch).
        fps: frames per second.
        hold_last: show the last frame this many frame-times longer (see :func:`write_video`).
    """
    check_video_path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if goal.shape != frames.shape[1:]:
        raise ValueError(f"goal shape {goal.shape} differs from frame shape {frames.shape[1:]}")
    if len(success) != len(frames):
        raise ValueError(f"success has {len(success)} flags for {len(frames)} frames")
    reached = np.maximum.accumulate(np.asarray(success, dtype=bool))
    composed = [side_by_side(f, goal, bool(r), scale) for f, r in zip(frames, reached, strict=True)]
    return write_video(path, np.stack(composed), fps=fps, hold_last=hold_last)
