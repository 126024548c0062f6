"""Iteration timing for hard plan deadlines."""

from __future__ import annotations

import time


class IterationClock:
    """Recent durations of one kind of planner iteration, to tell whether the next fits.

    A deadline is a hard bound: an iteration starts only if the slowest of the last
    ``window`` iterations of its kind (times ``margin``) still ends before the deadline. The
    durations persist across plans, so from the second plan on even the first iteration is
    checked. The window is long because on a shared CPU an iteration now and then takes about
    twice its usual time (measured on a 2-core VM with two torch threads: in one or two plans
    of a hundred); a bound that holds at p99 has to budget for that tail, not for the recent
    typical iteration.

    Two kinds of outliers would otherwise stop a planner from ever iterating again (no
    iteration runs, so no new duration replaces the slow one): the very first iteration, which
    pays one-off costs (kernel selection, allocations for a new shape) and is not recorded; and
    a later stall (a scheduler hiccup), which is dropped when it makes an iteration not fit and
    took more than ``STALL`` times the median of the other recorded ones.
    """

    STALL = 3.0

    def __init__(self, window: int = 64, margin: float = 1.1) -> None:
        self.window, self.margin = window, margin
        self._recent: list[float] = []
        self._started: float | None = None
        self._cold = True  # the next recorded iteration is the first: not representative

    @property
    def estimate(self) -> float | None:
        """Seconds the next iteration is expected to take (None before any was timed)."""
        return self.margin * max(self._recent) if self._recent else None

    def fits(self, deadline: float | None) -> bool:
        """Whether an iteration started now is expected to end before ``deadline``."""
        if deadline is None or self.estimate is None:
            return deadline is None or time.perf_counter() < deadline
        now = time.perf_counter()
        if now + self.estimate <= deadline:
            return True
        slowest = max(self._recent)
        others = sorted(self._recent)[:-1]
        if others and slowest > self.STALL * others[len(others) // 2]:  # a stall: forget it
            self._recent.remove(slowest)
        return False

    def start(self) -> None:
        """Mark the start of an iteration."""
        self._started = time.perf_counter()

    def stop(self) -> None:
        """Record the duration of the iteration started last."""
        if self._started is None:
            return
        duration = time.perf_counter() - self._started
        self._started = None
        if self._cold:
            self._cold = False
            return
        self._recent = [*self._recent[-(self.window - 1) :], duration]
