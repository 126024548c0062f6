"""Two-Room: a point agent in a square arena split by a wall with one door.

Geometry and dynamics live in :mod:`lewm_mpc.envs.two_room_geometry` (arena = unit square, y up).
Image row 0 is the top of the arena (y = 1). The agent is drawn as an anti-aliased disk of radius
``agent_radius``.
"""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np

from lewm_mpc.envs.base import GoalEnv
from lewm_mpc.envs.spec import EnvDefinition, EnvRecipe, ProbeTarget
from lewm_mpc.envs.two_room_geometry import (
    SUCCESS_RADIUS,
    TwoRoomConfig,
    is_free_position,
    move,
    sample_free_position,
)
from lewm_mpc.envs.views import PlanarView

_BACKGROUND_RGB = np.array([235.0, 235.0, 235.0], dtype=np.float32)
_WALL_RGB = np.array([45.0, 45.0, 55.0], dtype=np.float32)
_AGENT_RGB = np.array([220.0, 30.0, 30.0], dtype=np.float32)


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

    _pos: np.ndarray  # the agent position, set by every reset

    def state_observation_space(self) -> gym.spaces.Box:
        """The arena's unit square."""
        return gym.spaces.Box(0.0, 1.0, (2,), np.float32)

    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        """A free agent position, uniform over the free space, float64 (2,)."""
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
