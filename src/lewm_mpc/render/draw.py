"""Drawing primitives on uint8 RGB images (Pillow's ImageDraw underneath).

Coordinates are continuous pixel coordinates ``(x, y) = (column, row)``: pixel ``k`` covers
``[k, k + 1)``, so its centre is at ``k + 0.5`` (the convention of :mod:`lewm_mpc.envs.views`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Colour = tuple[int, int, int]


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of an (H, W, 3) image by an integer factor."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


@functools.lru_cache(maxsize=8)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` px (cached)."""
    return ImageFont.load_default(size=size)


def _rgba(colour: Colour, alpha: float) -> tuple[int, int, int, int]:
    return (*(int(c) for c in colour), round(255 * min(max(alpha, 0.0), 1.0)))


class Painter:
    """Draws on a copy of an (H, W, 3) uint8 image; :meth:`image` returns the result.

    Every primitive takes an ``alpha`` in [0, 1] and blends into what is already drawn.

    Args:
        image: (H, W, 3) uint8 image (not modified).
    """

    def __init__(self, image: np.ndarray) -> None:
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        self._image = Image.fromarray(image)
        self._draw = ImageDraw.Draw(self._image, "RGBA")  # RGBA colours blend into RGB

    def image(self) -> np.ndarray:
        """The drawn image, (H, W, 3) uint8."""
        return np.asarray(self._image).copy()

    @staticmethod
    def _xy(points: np.ndarray) -> list[tuple[float, float]]:
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2) - 0.5  # Pillow: centre at k
        return [(float(x), float(y)) for x, y in points]

    def polyline(
        self,
        points: np.ndarray,
        colour: Colour,
        width: int = 2,
        alpha: float | Sequence[float] = 1.0,
    ) -> None:
        """Segments through (N, 2) points; ``alpha`` is one value or one per segment (N - 1)."""
        xy = self._xy(points)
        alphas = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (max(len(xy) - 1, 0),))
        for start, stop, a in zip(xy[:-1], xy[1:], alphas, strict=True):
            self._draw.line([start, stop], fill=_rgba(colour, a), width=width)

    def disc(
        self,
        center: np.ndarray,
        radius: float,
        colour: Colour,
        alpha: float = 1.0,
        outline: Colour | None = None,
    ) -> None:
        """A filled disc, optionally with a 1 px outline."""
        ((x, y),) = self._xy(center)
        box = [x - radius, y - radius, x + radius, y + radius]
        edge = None if outline is None else _rgba(outline, alpha)
        self._draw.ellipse(box, fill=_rgba(colour, alpha), outline=edge)

    def polygon(
        self,
        points: np.ndarray,
        colour: Colour,
        width: int = 2,
        alpha: float = 1.0,
        fill_alpha: float = 0.0,
    ) -> None:
        """A closed polygon outline through (N, 2) points, optionally filled."""
        xy = self._xy(points)
        if fill_alpha > 0:
            self._draw.polygon(xy, fill=_rgba(colour, fill_alpha))
        self._draw.line([*xy, xy[0]], fill=_rgba(colour, alpha), width=width, joint="curve")

    def rectangle(
        self,
        corner: tuple[float, float],
        size: tuple[float, float],
        colour: Colour,
        alpha: float = 1.0,
    ) -> None:
        """A filled axis-aligned rectangle with top-left ``corner`` and ``size`` (w, h) in px."""
        x, y = corner
        self._draw.rectangle([x, y, x + size[0] - 1, y + size[1] - 1], fill=_rgba(colour, alpha))

    def text(
        self, corner: tuple[float, float], string: str, colour: Colour, size: int = 12
    ) -> None:
        """Text with its top-left at ``corner``."""
        self._draw.text(corner, string, fill=_rgba(colour, 1.0), font=font(size))


def text_width(string: str, size: int = 12) -> int:
    """Width in px of ``string`` in :func:`font` at ``size``."""
    return int(np.ceil(font(size).getlength(string)))
