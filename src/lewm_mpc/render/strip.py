"""The strip under an episode video: each plan's energy terms over env steps, and success."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lewm_mpc.control import Episode
from lewm_mpc.render.draw import Colour, Painter, text_width

TERM_RGB: tuple[Colour, ...] = ((30, 100, 230), (240, 150, 0), (200, 40, 40), (120, 60, 180))
SUCCESS_RGB: Colour = (40, 170, 70)
PENDING_RGB: Colour = (200, 200, 200)
BACKGROUND_RGB: Colour = (250, 250, 250)
AXIS_RGB: Colour = (120, 120, 120)
_PAD = 8
_LEGEND_H = 20
_SUCCESS_H = 10


@dataclass(frozen=True)
class EnergySeries:
    """Energy terms of every plan of an episode.

    Attributes:
        names: term names, the task first (``PlanResult.terms`` keys).
        steps: (num_plans,) env step at which each plan was made.
        values: (num_plans, num_terms) value of each term of each chosen plan.
        success: (T + 1,) success flag per observation.
    """

    names: tuple[str, ...]
    steps: np.ndarray
    values: np.ndarray
    success: np.ndarray

    @classmethod
    def from_episode(cls, episode: Episode) -> EnergySeries:
        """Collect the terms of ``episode.plans`` (unbatched plans)."""
        names: list[str] = []
        for plan in episode.plans:
            names += [name for name in plan.terms if name not in names]
        names.sort(key=lambda name: name != "task")  # stable: task first, others in order
        values = np.array(
            [[float(plan.terms.get(name, np.nan)) for name in names] for plan in episode.plans]
        ).reshape(len(episode.plans), len(names))  # (num_plans, num_terms)
        return cls(
            names=tuple(names),
            steps=np.asarray(episode.plan_steps, dtype=np.int64),
            values=values,
            success=np.asarray(episode.success, dtype=bool),
        )


class EnergyStrip:
    """Draws an :class:`EnergySeries` as a (height, width) strip, revealed up to a step.

    Each term is scaled to its own maximum over the episode (the legend gives its current
    value); the bottom bar is green at the steps where the success test held.

    Args:
        series: the episode's energy terms.
        width: strip width in px.
        height: strip height in px (>= 48).
    """

    def __init__(self, series: EnergySeries, width: int, height: int = 96) -> None:
        if height < 48 or width < 64:
            raise ValueError(f"strip needs width >= 64 and height >= 48, got {width}x{height}")
        self.series = series
        self.width, self.height = width, height
        self._last_step = max(len(series.success) - 1, 1)
        top, bottom = _LEGEND_H, height - _SUCCESS_H - 2 * _PAD
        scale = np.nanmax(np.abs(series.values), axis=0) if series.values.size else np.ones(0)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)  # (num_terms,)
        heights = np.nan_to_num(series.values / scale)  # (num_plans, num_terms) in [-1, 1]
        self._ys = bottom - np.clip(heights, 0.0, 1.0) * (bottom - top)  # (num_plans, num_terms)
        self._plot = (top, bottom)

    def x_of(self, step: float) -> float:
        """Strip column of an env step."""
        return _PAD + (self.width - 2 * _PAD) * step / self._last_step

    def render(self, step: int) -> np.ndarray:
        """The strip with everything up to ``step`` drawn, (height, width, 3) uint8."""
        image = np.empty((self.height, self.width, 3), dtype=np.uint8)
        image[:] = BACKGROUND_RGB
        painter = Painter(image)
        top, bottom = self._plot
        painter.polyline(np.array([[_PAD, bottom], [self.width - _PAD, bottom]]), AXIS_RGB, 1)
        shown = self.series.steps <= step  # plans made so far
        current = int(np.count_nonzero(shown)) - 1
        for index in range(len(self.series.names)):
            colour = TERM_RGB[index % len(TERM_RGB)]
            xs = np.array([self.x_of(s) for s in self.series.steps[shown]])
            points = np.stack([xs, self._ys[shown, index]], axis=-1)  # (plans so far, 2)
            painter.polyline(points, colour, width=2)
            for point in points[-1:]:
                painter.disc(point, 2.5, colour)
        self._legend(painter, current)
        self._success_bar(painter, step)
        cursor = self.x_of(step)
        painter.polyline(np.array([[cursor, top], [cursor, bottom]]), AXIS_RGB, 1, alpha=0.5)
        return painter.image()

    def _legend(self, painter: Painter, current: int) -> None:
        x = float(_PAD)
        for index, name in enumerate(self.series.names):
            colour = TERM_RGB[index % len(TERM_RGB)]
            value = self.series.values[current, index] if current >= 0 else np.nan
            text = f"{name} {_number(value)}"
            painter.rectangle((x, 6), (8, 8), colour)
            painter.text((x + 11, 3), text, (40, 40, 40), 11)
            x += 11 + text_width(text, 11) + 12
        label = "energy terms, each scaled to its max"
        if x < self.width - _PAD - text_width(label, 10):
            painter.text((self.width - _PAD - text_width(label, 10), 4), label, AXIS_RGB, 10)

    def _success_bar(self, painter: Painter, step: int) -> None:
        y = self.height - _PAD - _SUCCESS_H
        success = self.series.success
        painter.rectangle((_PAD, y), (self.width - 2 * _PAD, _SUCCESS_H), PENDING_RGB)
        for t in np.flatnonzero(success[: step + 1]):
            x0, x1 = self.x_of(max(t - 0.5, 0)), self.x_of(min(t + 0.5, self._last_step))
            painter.rectangle((x0, y), (max(x1 - x0, 1.0), _SUCCESS_H), SUCCESS_RGB)
        painter.text((_PAD + 2, y - 1), "success", (60, 60, 60), 9)


def _number(value: float) -> str:
    if not np.isfinite(value):
        return "-"
    return f"{value:.3g}"
