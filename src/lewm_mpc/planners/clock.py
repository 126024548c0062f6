"""Iteration timing for hard plan deadlines."""

from __future__ import annotations

import time


class IterationClock:
    """Recent durations of one kind of planner iteration, to tell whether the next fits.

    A deadline is a hard bound: an iteration starts only if the slowest of the last
    ``window`` iterations of its kind (times ``margin``) still ends before the deadline. The
    durations persist across plans, so from the second plan on even the first iteration is
    checked.
    """

    def __init__(self, window: int = 8, margin: float = 1.2) -> None:
        self.window, self.margin = window, margin
        self._recent: list[float] = []
        self._started: float | None = None

    @property
    def estimate(self) -> float | None:
        """Seconds the next iteration is expected to take (None before any was timed)."""
        return self.margin * max(self._recent) if self._recent else None

    def fits(self, deadline: float | None) -> bool:
        """Whether an iteration started now is expected to end before ``deadline``."""
        if deadline is None or self.estimate is None:
            return deadline is None or time.perf_counter() < deadline
        return time.perf_counter() + self.estimate <= deadline

    def start(self) -> None:
        """Mark the start of an iteration."""
        self._started = time.perf_counter()

    def stop(self) -> None:
        """Record the duration of the iteration started last."""
        if self._started is not None:
            self._recent = [
                *self._recent[-(self.window - 1) :],
                time.perf_counter() - self._started,
            ]
            self._started = None
