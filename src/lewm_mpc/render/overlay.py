"""What the planner imagined, drawn on the executed frame: the chosen plan's predicted latents
decoded by a probe and projected to pixels, the executed path, and guardrail regions."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lewm_mpc.envs.views import View
from lewm_mpc.render.draw import Colour, Painter

PLAN_RGB: Colour = (30, 100, 230)
TRAIL_RGB: Colour = (20, 20, 20)
REGION_RGB: Colour = (240, 150, 0)
SUBGOAL_RGB: Colour = (240, 110, 0)  # a hierarchical plan's subgoal
TRACK_RGB: tuple[Colour, ...] = (PLAN_RGB, (0, 150, 120), (150, 60, 200))  # one per track

LatentMap = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class RegionBox:
    """An axis-aligned box in the probed quantity's coordinates, drawn where it lies.

    Attributes:
        low: lower corner, one value per coordinate of the view's track (2 or 3).
        high: upper corner, > ``low``.
        label: text drawn beside the box ("" for none).
        track: which track of the view the box constrains (PushT: 0 agent, 1 block).
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    label: str = "keep-out"
    track: int = 0

    def __post_init__(self) -> None:
        low, high = np.asarray(self.low, float), np.asarray(self.high, float)
        if low.shape != high.shape or low.ndim != 1 or not np.all(high > low):
            raise ValueError(f"RegionBox needs low < high of equal length, got {low}, {high}")


def probe_plan(probe: LatentMap, latents: np.ndarray) -> np.ndarray:
    """Decode a predicted latent trajectory (H + 1, D) into (H + 1, P) probed quantities."""
    with torch.no_grad():
        points = probe(torch.as_tensor(np.asarray(latents), dtype=torch.float32))  # (H+1, P)
    return points.detach().cpu().numpy().astype(np.float64)


def draw_path(
    painter: Painter,
    pixels: np.ndarray,
    scale: float,
    colours: Sequence[Colour] = TRACK_RGB,
    min_alpha: float = 0.2,
    stroke: float | None = None,
) -> None:
    """An imagined path (H + 1, K, 2) (view pixels, drawn at ``scale`` times them), fading into
    the future.

    The first point (the plan's start) gets a ring marker; later points and segments fade
    linearly from opaque to ``min_alpha`` at the horizon. ``stroke`` sizes lines and markers
    (default ``scale``): the drawn image's side over 64 px, so they look the same at any
    resolution.
    """
    pixels = np.asarray(pixels, dtype=np.float64) * scale  # (H+1, K, 2) in drawn pixels
    stroke = scale if stroke is None else stroke
    steps = pixels.shape[0]
    alphas = np.linspace(1.0, min_alpha, max(steps, 2))[:steps]  # (H+1,)
    radius = max(1.5, 0.6 * stroke)
    width = max(1, round(stroke / 2))
    for track in range(pixels.shape[1]):
        colour = colours[track % len(colours)]
        painter.polyline(pixels[:, track], colour, width=width, alpha=alphas[1:])
        for point, alpha in zip(pixels[1:, track], alphas[1:], strict=True):
            painter.disc(point, radius, colour, alpha=alpha)
        painter.disc(pixels[0, track], 1.6 * radius, colour, outline=(255, 255, 255))


def draw_subgoal(painter: Painter, pixels: np.ndarray, scale: float, stroke: float) -> None:
    """A hierarchical plan's subgoal, (K, 2) view pixels, as an outlined orange disc per track."""
    for point in np.asarray(pixels, dtype=np.float64) * scale:
        painter.disc(point, max(2.5, stroke), SUBGOAL_RGB, outline=(255, 255, 255))


def draw_trail(painter: Painter, pixels: np.ndarray, scale: float) -> None:
    """The executed path so far, (t + 1, K, 2) observation pixels, as a thin dark line."""
    pixels = np.asarray(pixels, dtype=np.float64) * scale
    if len(pixels) >= 2:
        for track in range(pixels.shape[1]):
            painter.polyline(pixels[:, track], TRAIL_RGB, width=1, alpha=0.6)


def region_outline(box: RegionBox, view: View) -> list[np.ndarray]:
    """The box's edges as pixel segments [(2, 2), ...] (4 edges in 2-d, 12 in 3-d)."""
    dim = view.track_dim
    if len(box.low) != dim or not 0 <= box.track < view.tracks:
        raise ValueError(
            f"RegionBox has {len(box.low)} coordinates on track {box.track}; the view has "
            f"{view.tracks} track(s) of {dim}"
        )
    corners = np.array(list(itertools.product(*zip(box.low, box.high, strict=True))))  # (2^d, d)
    points = np.zeros((len(corners), view.tracks * dim))  # (2^d, K * d)
    points[:, box.track * dim : (box.track + 1) * dim] = corners
    pixels = view(points)[:, box.track]  # (2^d, 2)
    edges = [
        (i, j)
        for i, j in itertools.combinations(range(len(corners)), 2)
        if np.count_nonzero(corners[i] != corners[j]) == 1
    ]
    return [pixels[[i, j]] for i, j in edges]


def draw_region(painter: Painter, box: RegionBox, view: View, scale: float) -> None:
    """A guardrail box: translucent fill (2-d) and outline, with its label."""
    segments = [segment * scale for segment in region_outline(box, view)]
    if view.track_dim == 2:  # a planar box is a quadrilateral: fill it
        corners = _convex_order(np.unique(np.concatenate(segments), axis=0))
        painter.polygon(corners, REGION_RGB, width=2, fill_alpha=0.25)
    else:
        for segment in segments:
            painter.polyline(segment, REGION_RGB, width=2)
    if box.label:
        top_left = np.concatenate(segments).min(axis=0)
        painter.text((float(top_left[0]), float(top_left[1]) - 14), box.label, REGION_RGB, 11)


def _convex_order(points: np.ndarray) -> np.ndarray:
    """Sort points of a convex polygon by angle around their centroid."""
    centre = points.mean(axis=0)
    angles = np.arctan2(points[:, 1] - centre[1], points[:, 0] - centre[0])
    return points[np.argsort(angles)]
