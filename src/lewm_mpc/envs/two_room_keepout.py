"""Two-Room keep-out scenario: a square box across the straight path from start to goal.

The box is centred on the midpoint of the segment from start to goal. A pair qualifies when
start and goal lie in the same room, at least ``min_distance`` apart, and a lane of
``clearance`` remains beside the box grown by its safety margin, across the direction of
travel (so a detour exists). ``benchmarks/tworoom_guardrails.py`` measures this scenario;
``lewm-mpc render --keepout`` and ``examples/03_guardrails.py`` show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lewm_mpc.envs.two_room import TwoRoomConfig, room_of


@dataclass(frozen=True)
class KeepOutScenario:
    """Geometry of the keep-out box (arena widths).

    Attributes:
        box_half: half side of the square box.
        margin: safety margin the guardrail adds around the box.
        min_distance: least start-goal distance, so the box holds neither.
        clearance: free lane needed beside the grown box.
        env: the arena (room and wall geometry).
    """

    box_half: float = 0.07
    margin: float = 0.03
    min_distance: float = 0.3
    clearance: float = 0.08
    env: TwoRoomConfig = field(default_factory=TwoRoomConfig)

    def __post_init__(self) -> None:
        if not 0 < self.box_half < 0.5:
            raise ValueError(f"box_half must be in (0, 0.5), got {self.box_half}")
        for name in ("margin", "min_distance", "clearance"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def box(self, start: np.ndarray, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) corners of the box between agent positions ``start`` and ``goal``."""
        center = (np.asarray(start[:2], float) + np.asarray(goal[:2], float)) / 2
        return center - self.box_half, center + self.box_half

    def accepts(self, start: np.ndarray, goal: np.ndarray) -> bool:
        """Whether the pair suits the scenario (see the module docstring)."""
        start, goal = np.asarray(start[:2], float), np.asarray(goal[:2], float)
        room = room_of(start)
        if room != room_of(goal) or np.linalg.norm(goal - start) < self.min_distance:
            return False
        radius = self.env.agent_radius  # limits of the agent centre in each room
        x_range = ((radius, self.env.wall_left - radius),
                   (self.env.wall_right + radius, 1 - radius))[room]  # fmt: skip
        y_range = (radius, 1 - radius)
        center = (start + goal) / 2
        reach = self.box_half + self.margin + self.clearance
        across = 1 if abs(goal[0] - start[0]) >= abs(goal[1] - start[1]) else 0  # lane axis
        low, high = (x_range, y_range)[across]
        return bool(low <= center[across] - reach or center[across] + reach <= high)


def inside_box(
    states: np.ndarray, low: Sequence[float] | np.ndarray, high: Sequence[float] | np.ndarray
) -> np.ndarray:
    """(T,) whether the agent position of each (T, >= 2) state lies in the box [low, high]."""
    xy = np.asarray(states)[..., :2]  # (T, 2)
    return np.all((xy >= np.asarray(low)) & (xy <= np.asarray(high)), axis=-1)
