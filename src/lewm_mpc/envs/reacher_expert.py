"""Smoothed random-action data policy for Reacher (pure numpy: no simulator needed)."""

from __future__ import annotations

from typing import Any

import numpy as np


class ReacherRandomPolicy:
    """Uniform random motor commands, each held for a random number of steps.

    LeWorldModel collects Reacher data with random actions. I.i.d. uniform noise averages out on
    an arm with inertia and damping (it jitters in place), so this policy holds each uniform
    action in [-1, 1]^2 for a number of steps drawn uniformly from ``hold_steps`` (inclusive),
    which lets the arm build speed and sweep through the joint space. With probability
    ``rest_prob`` a held action is zero instead, so the data also shows the arm coasting and
    slowing down. ``state`` is ignored. All randomness comes from the generator given to
    ``reset``.

    Args:
        hold_steps: (min, max) number of env steps an action is held, 1 <= min <= max.
        rest_prob: Probability that a held action is zero.
    """

    def __init__(self, hold_steps: tuple[int, int] = (1, 10), rest_prob: float = 0.1) -> None:
        low, high = (int(v) for v in hold_steps)
        if not 1 <= low <= high:
            raise ValueError(f"hold_steps must satisfy 1 <= min <= max, got {hold_steps!r}")
        if not 0.0 <= rest_prob <= 1.0:
            raise ValueError(f"rest_prob must be in [0, 1], got {rest_prob!r}")
        self.hold_steps = (low, high)
        self.rest_prob = float(rest_prob)
        self._rng: np.random.Generator | None = None
        self._action = np.zeros(2, np.float32)
        self._steps_left = 0

    @classmethod
    def from_env(cls, env: Any) -> ReacherRandomPolicy:
        """The policy with default settings for ``env`` (an unwrapped Reacher env; unused)."""
        return cls()

    def reset(self, rng: np.random.Generator) -> None:
        """Starts an episode: takes ownership of ``rng`` and drops the held action."""
        self._rng = rng
        self._steps_left = 0

    def act(self, state: np.ndarray) -> np.ndarray:
        """The held action (a copy), float32 (2,) in [-1, 1]; ``state`` is not used."""
        if self._rng is None:
            raise RuntimeError("call reset(rng) before act()")
        if self._steps_left == 0:
            rng = self._rng
            self._steps_left = int(rng.integers(self.hold_steps[0], self.hold_steps[1] + 1))
            action = rng.uniform(-1.0, 1.0, size=2)
            if rng.random() < self.rest_prob:
                action = np.zeros(2)
            self._action = action.astype(np.float32)
        self._steps_left -= 1
        return self._action.copy()
