"""Two-Room geometry and dynamics: the arena, the wall with its door, free positions and motion.

Coordinates are normalized: the arena is the unit square, x to the right, y up. The agent
collides as an axis-aligned square of half-size ``agent_radius``. Pure numpy; shared by the env
(``lewm_mpc.envs.two_room``), its data policy and the keep-out scenario.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUCCESS_RADIUS = 16 / 224  # reference threshold: 16 px of a 224 px arena
_EPS = 1e-6  # geometric tolerance: touching the wall is allowed, overlapping it is not


@dataclass(frozen=True)
class TwoRoomConfig:
    """Geometry, dynamics and rendering of the Two-Room environment (arena = unit square).

    Attributes:
        image_size: Side of the square pixel observation.
        speed: Displacement per env step at ``|action| = 1``, in arena widths.
        wall_thickness: Thickness of the vertical wall centred at ``x = 0.5``.
        door_center: Height (y) of the door centre.
        door_width: Height of the door gap; must exceed the agent's diameter.
        agent_radius: Agent radius (half-size of its collision square).
        success_radius: Success when the agent-goal distance is below this.
    """

    image_size: int = 64
    speed: float = 0.03
    wall_thickness: float = 0.04
    door_center: float = 0.5
    door_width: float = 0.2
    agent_radius: float = 0.04
    success_radius: float = SUCCESS_RADIUS

    def __post_init__(self) -> None:
        if not isinstance(self.image_size, int) or self.image_size < 16:
            raise ValueError(f"image_size must be an int >= 16, got {self.image_size!r}")
        for name in ("speed", "wall_thickness", "door_width", "agent_radius", "success_radius"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not (self.door_low >= 0.0 and self.door_high <= 1.0):
            raise ValueError(
                f"the door [{self.door_low:.3f}, {self.door_high:.3f}] must lie inside [0, 1]"
            )
        if self.door_width <= 2 * self.agent_radius:
            raise ValueError(
                f"door_width ({self.door_width}) must exceed the agent diameter "
                f"({2 * self.agent_radius}), otherwise the rooms are disconnected"
            )
        if self.wall_left - 2 * self.agent_radius <= 0.0:
            raise ValueError("agent_radius and wall_thickness leave no free space in the rooms")

    @property
    def wall_left(self) -> float:
        """Left face of the wall (x)."""
        return 0.5 - self.wall_thickness / 2

    @property
    def wall_right(self) -> float:
        """Right face of the wall (x)."""
        return 0.5 + self.wall_thickness / 2

    @property
    def door_low(self) -> float:
        """Bottom edge of the door gap (y)."""
        return self.door_center - self.door_width / 2

    @property
    def door_high(self) -> float:
        """Top edge of the door gap (y)."""
        return self.door_center + self.door_width / 2


def room_of(pos: np.ndarray) -> int:
    """Returns the room of a position: 0 for the left room (x < 0.5), 1 for the right one."""
    return int(np.asarray(pos, dtype=np.float64)[0] >= 0.5)


def _in_wall_columns(config: TwoRoomConfig, x: float) -> bool:
    """Whether the agent square at abscissa ``x`` overlaps the wall's x-range."""
    r = config.agent_radius
    return x - r < config.wall_right - _EPS and x + r > config.wall_left + _EPS


def _outside_door_rows(config: TwoRoomConfig, y: float) -> bool:
    """Whether the agent square at ordinate ``y`` sticks out of the door gap."""
    r = config.agent_radius
    return y - r < config.door_low - _EPS or y + r > config.door_high + _EPS


def is_free_position(config: TwoRoomConfig, pos: np.ndarray) -> bool:
    """Whether the agent fits at ``pos``: inside the arena and not overlapping the wall."""
    x, y = (float(v) for v in pos)
    if not (np.isfinite(x) and np.isfinite(y)):
        return False
    lo, hi = config.agent_radius - _EPS, 1.0 - config.agent_radius + _EPS
    if not (lo <= x <= hi and lo <= y <= hi):
        return False
    return not (_in_wall_columns(config, x) and _outside_door_rows(config, y))


def sample_free_position(config: TwoRoomConfig, rng: np.random.Generator) -> np.ndarray:
    """Samples a position uniformly over the free space (rejection sampling), float64 (2,)."""
    r = config.agent_radius
    while True:
        pos = rng.uniform(r, 1.0 - r, size=2)
        if is_free_position(config, pos):
            return pos


def move(config: TwoRoomConfig, pos: np.ndarray, action: np.ndarray) -> np.ndarray:
    """One deterministic step of the dynamics: ``pos + speed * clip(action)`` with collisions.

    Motion is axis-separated (x first, then y); each axis move is swept against the wall, so the
    agent cannot tunnel through it, and is clamped to the contact boundary.

    Args:
        config: Environment geometry.
        pos: Current free position, shape (2,).
        action: Action, shape (2,); clipped to [-1, 1].

    Returns:
        The next position, float64 (2,).
    """
    r = config.agent_radius
    dx, dy = config.speed * np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    x, y = float(pos[0]), float(pos[1])
    new_x = min(max(x + dx, r), 1.0 - r)
    if _outside_door_rows(config, y):  # the wall blocks horizontal motion at this height
        if x < 0.5:
            new_x = min(new_x, config.wall_left - r)
        else:
            new_x = max(new_x, config.wall_right + r)
    new_y = min(max(y + dy, r), 1.0 - r)
    if _in_wall_columns(config, new_x):  # inside the doorway: stay between the door posts
        new_y = min(max(new_y, config.door_low + r), config.door_high - r)
    return np.array([new_x, new_y], dtype=np.float64)
