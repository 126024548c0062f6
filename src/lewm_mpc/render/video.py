"""Episode videos: executed frames beside the goal image, upscaled for viewing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from lewm_mpc.atomic import atomic_write

SUCCESS_RGB = np.array([40, 170, 70], dtype=np.uint8)
PENDING_RGB = np.array([150, 150, 150], dtype=np.uint8)
BORDER = 8


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of an (H, W, 3) image."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def _framed(image: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Surround an (H, W, 3) image with a BORDER-pixel frame."""
    height, width = image.shape[:2]
    out = np.empty((height + 2 * BORDER, width + 2 * BORDER, 3), dtype=np.uint8)
    out[:] = colour
    out[BORDER:-BORDER, BORDER:-BORDER] = image
    return out


def side_by_side(frame: np.ndarray, goal: np.ndarray, succeeded: bool, scale: int) -> np.ndarray:
    """[executed frame | goal] with a green frame once the episode has succeeded."""
    colour = SUCCESS_RGB if succeeded else PENDING_RGB
    left = _framed(upscale(frame, scale), colour)
    right = _framed(upscale(goal, scale), PENDING_RGB)
    return np.concatenate([left, right], axis=1)


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

    Args:
        path: output file; ``.mp4`` uses ffmpeg (imageio-ffmpeg), ``.gif`` Pillow-free GIF.
        frames: (T, H, W, 3) uint8 executed observations.
        goal: (H, W, 3) uint8 goal image.
        success: (T,) per-frame success flag (the frame turns green from the first success).
        scale: integer upscaling factor (64 px frames are too small to watch).
        fps: frames per second.
        hold_last: show the last frame this many frame-times longer (mp4: repeated frames;
            GIF: a longer last-frame duration, so a GIF has exactly one frame per step).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if goal.shape != frames.shape[1:]:
        raise ValueError(f"goal shape {goal.shape} differs from frame shape {frames.shape[1:]}")
    if len(success) != len(frames):
        raise ValueError(f"success has {len(success)} flags for {len(frames)} frames")
    reached = np.maximum.accumulate(np.asarray(success, dtype=bool))
    composed = [side_by_side(f, goal, bool(r), scale) for f, r in zip(frames, reached, strict=True)]
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ValueError(f"video path must end in .mp4 or .gif, got {path.name}")
    with atomic_write(path, suffix=suffix) as tmp:
        if suffix == ".mp4":  # constant frame rate: hold the end by repeating the last frame
            imageio.mimsave(
                tmp,
                composed + [composed[-1]] * hold_last,
                fps=fps,
                codec="libx264",
                macro_block_size=8,
                ffmpeg_log_level="error",
            )
        else:  # GIF: one frame per step, the last one shown longer
            durations = [1000 / fps] * len(composed)
            durations[-1] *= 1 + hold_last
            imageio.mimsave(tmp, composed, duration=durations, loop=0)
    return path
