"""Two-Room: a point agent in a square arena split by a wall with one door.

Coordinates are normalized: the arena is the unit square, x to the right, y up. Image row 0 is the
top of the arena (y = 1). The agent collides as an axis-aligned square of half-size
``agent_radius`` and is drawn as an anti-aliased disk of the same radius.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from lewm_mpc.envs.base import GoalEnv
from lewm_mpc.envs.spec import EnvDefinition, EnvRecipe, ProbeTarget
from lewm_mpc.envs.views import PlanarView

SUCCESS_RADIUS = 16 / 224  # reference threshold: 16 px of a 224 px arena
_EPS = 1e-6  # geometric tolerance: touching the wall is allowed, overlapping it is not
_BACKGROUND_RGB = np.array([235.0, 235.0, 235.0], dtype=np.float32)
_WALL_RGB = np.array([45.0, 45.0, 55.0], dtype=np.float32)
_AGENT_RGB = np.array([220.0, 30.0, 30.0], dtype=np.float32)


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


@functools.lru_cache(maxsize=16)
def _background(config: TwoRoomConfig, size: int) -> np.ndarray:
    """Static frame (light floor, dark wall with anti-aliased edges), float32 (size, size, 3)."""
    edges = np.arange(size + 1, dtype=np.float64) / size
    lo, hi = edges[:-1], edges[1:]  # pixel extents along x (columns) and along 1 - y (rows)

    def overlap(a: float, b: float, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
        return np.clip(np.minimum(stop, b) - np.maximum(start, a), 0.0, None) * size

    cover_x = overlap(config.wall_left, config.wall_right, lo, hi)  # (S,) per column
    row_bottom, row_top = 1.0 - hi, 1.0 - lo  # y extent of each row
    cover_y = overlap(0.0, config.door_low, row_bottom, row_top) + overlap(
        config.door_high, 1.0, row_bottom, row_top
    )  # (S,) per row
    coverage = (cover_y[:, None] * cover_x[None, :])[..., None]  # (S, S, 1)
    frame = _BACKGROUND_RGB + coverage * (_WALL_RGB - _BACKGROUND_RGB)  # (S, S, 3)
    frame = np.rint(frame).astype(np.float32)
    frame.flags.writeable = False
    return frame


def render_state(config: TwoRoomConfig, state: np.ndarray, size: int | None = None) -> np.ndarray:
    """Renders the arena with the agent at ``state`` (goal not drawn), uint8 (size, size, 3).

    The agent disk is anti-aliased by approximate pixel coverage, so sub-pixel motion changes
    the image. Only a small box around the agent is computed per call.
    """
    size = config.image_size if size is None else int(size)
    background = _background(config, size)
    frame = background.astype(np.uint8)
    col = float(state[0]) * size  # continuous pixel coordinates; pixel centres at k + 0.5
    row = (1.0 - float(state[1])) * size
    radius = config.agent_radius * size
    c0, c1 = max(int(col - radius - 1.0), 0), min(int(col + radius + 2.0), size)
    r0, r1 = max(int(row - radius - 1.0), 0), min(int(row + radius + 2.0), size)
    if c0 >= c1 or r0 >= r1:
        return frame
    dc = np.arange(c0, c1, dtype=np.float32) + (0.5 - col)  # (w,)
    dr = np.arange(r0, r1, dtype=np.float32) + (0.5 - row)  # (h,)
    dist = np.sqrt(dr[:, None] ** 2 + dc[None, :] ** 2)  # (h, w)
    alpha = np.clip(radius + 0.5 - dist, 0.0, 1.0)[..., None]  # (h, w, 1) coverage
    patch = background[r0:r1, c0:c1]  # (h, w, 3)
    frame[r0:r1, c0:c1] = patch + alpha * (_AGENT_RGB - patch) + 0.5
    return frame


class TwoRoomEnv(GoalEnv[TwoRoomConfig]):
    """Two rooms joined by one door; reach a goal position (a :class:`GoalEnv`).

    The state is the agent position, float64 (2,); the state observation is the same as
    float32. Success: agent within ``config.success_radius`` of the goal position.
    """

    name = "tworoom"
    config_class = TwoRoomConfig
    state_dim = 2
    action_dim = 2

    def __init__(self, config: TwoRoomConfig | None = None, obs_mode: str = "pixels",
                 render_mode: str | None = None) -> None:  # fmt: skip
        super().__init__(config, obs_mode, render_mode)
        self._pos = np.zeros(2)

    def state_observation_space(self) -> gym.spaces.Box:
        """The arena's unit square."""
        return gym.spaces.Box(0.0, 1.0, (2,), np.float32)

    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        """A free agent position, uniform over the free space, float64 (2,)."""
        return sample_free_position(self.config, rng)

    def sample_free_position(self, rng: np.random.Generator) -> np.ndarray:
        """Samples a free agent position uniformly, float64 (2,)."""
        return sample_free_position(self.config, rng)

    @classmethod
    def goal_error(cls, states: np.ndarray, goals: np.ndarray, config: TwoRoomConfig) -> np.ndarray:
        """Agent-goal distance (...,) in arena widths."""
        return np.linalg.norm(np.asarray(states) - np.asarray(goals), axis=-1)

    @classmethod
    def success_mask(
        cls, states: np.ndarray, goals: np.ndarray, config: TwoRoomConfig
    ) -> np.ndarray:
        """Agent within ``config.success_radius`` of the goal."""
        return cls.goal_error(states, goals, config) < config.success_radius

    def _coerce_state(self, state: np.ndarray, name: str) -> np.ndarray:
        state = super()._coerce_state(state, name)
        if not is_free_position(self.config, state):
            raise ValueError(
                f"{name} {state} is not free: the agent (radius {self.config.agent_radius}) "
                "must lie inside the arena and not overlap the wall"
            )
        return state

    def _write_state(self, state: np.ndarray) -> None:
        self._pos = state.copy()

    def _read_state(self) -> np.ndarray:
        return self._pos.copy()

    def _physics_step(self, action: np.ndarray) -> None:
        self._pos = move(self.config, self._pos, action)

    def _draw(self, state: np.ndarray, size: int) -> np.ndarray:
        return render_state(self.config, state, size)


def two_room_view(image_size: int) -> PlanarView:
    """Two-Room: the arena is the unit square, y up; image row 0 is y = 1."""
    size = float(image_size)
    return PlanarView(matrix=((size, 0.0), (0.0, -size)), offset=(0.0, size))


def goal_features(states: np.ndarray) -> np.ndarray:
    """Task features of (..., 2) states: the agent position in units of the default success
    radius, float64 (..., 2), so that a feature distance below 1 is a success."""
    return np.asarray(states, dtype=np.float64) / SUCCESS_RADIUS


DEFINITION = EnvDefinition(
    env_class=TwoRoomEnv,
    experts={"scripted": "lewm_mpc.envs.two_room_expert:TwoRoomExpert.from_env"},
    goal_features=goal_features,
    probe=ProbeTarget("agent xy", lambda states: np.asarray(states, np.float64)[..., :2]),
    view=lambda env: two_room_view(env.config.image_size),
    recipe=EnvRecipe(episodes=300, episode_steps=100),
)
