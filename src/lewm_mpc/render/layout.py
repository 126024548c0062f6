"""Arranging images into video frames: borders, side by side, padding, tiling videos."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lewm_mpc.render.draw import Colour, upscale

SUCCESS_RGB = np.array([40, 170, 70], dtype=np.uint8)
PENDING_RGB = np.array([150, 150, 150], dtype=np.uint8)
BACKGROUND_RGB: Colour = (255, 255, 255)
BORDER = 8
MACRO_BLOCK = 16  # frame sides are padded to a multiple of this (H.264 macroblocks)


def framed(image: np.ndarray, colour: np.ndarray | Colour, border: int = BORDER) -> np.ndarray:
    """Surround an (H, W, 3) image with a ``border``-pixel frame of ``colour``."""
    height, width = image.shape[:2]
    out = np.empty((height + 2 * border, width + 2 * border, 3), dtype=np.uint8)
    out[:] = colour
    out[border : border + height, border : border + width] = image
    return out


def side_by_side(frame: np.ndarray, goal: np.ndarray, succeeded: bool, scale: int) -> np.ndarray:
    """[executed frame | goal], upscaled, with a green frame once the episode has succeeded."""
    colour = SUCCESS_RGB if succeeded else PENDING_RGB
    left = framed(upscale(frame, scale), colour)
    right = framed(upscale(goal, scale), PENDING_RGB)
    return np.concatenate([left, right], axis=1)


def pad_to(
    image: np.ndarray, height: int, width: int, colour: Colour = BACKGROUND_RGB
) -> np.ndarray:
    """Pad an (h, w, 3) image at the bottom and right to (height, width, 3)."""
    h, w = image.shape[:2]
    if h > height or w > width:
        raise ValueError(f"cannot pad a {h}x{w} image to {height}x{width}")
    if (h, w) == (height, width):
        return image
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[...] = np.asarray(colour, dtype=np.uint8)
    out[:h, :w] = image
    return out


def pad_to_multiple(image: np.ndarray, multiple: int = MACRO_BLOCK) -> np.ndarray:
    """Pad an (h, w, 3) image so that both sides are multiples of ``multiple``."""
    h, w = image.shape[:2]
    return pad_to(image, -(-h // multiple) * multiple, -(-w // multiple) * multiple)


def tile_videos(videos: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    """Videos (T_i, H_i, W_i, 3) side by side, ``gap`` px apart.

    Shorter videos hold their last frame; shorter frames are padded at the bottom. Returns
    (max T_i, H, W, 3) with H and W multiples of :data:`MACRO_BLOCK`.
    """
    if not videos:
        raise ValueError("tile_videos needs at least one video")
    length = max(len(video) for video in videos)
    height = max(video.shape[1] for video in videos)
    frames = []
    for t in range(length):
        row = []
        for index, video in enumerate(videos):
            if index:
                row.append(np.full((height, gap, 3), BACKGROUND_RGB, dtype=np.uint8))
            frame = video[min(t, len(video) - 1)]  # hold the last frame
            row.append(pad_to(frame, height, frame.shape[1]))
        frames.append(pad_to_multiple(np.concatenate(row, axis=1)))
    return np.stack(frames)  # (T, H, W, 3)
