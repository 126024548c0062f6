"""PushT: push a T-shaped block to a goal pose with a round agent (gym-pusht's pymunk physics).

The simulator is gym-pusht's ``PushTEnv`` (pinned ``gym-pusht==0.1.8``), used by composition: its
world (512 x 512 px, walls, a kinematic agent disk of radius 15 tracking a target with a PD
controller, a dynamic T block), its control step (10 Hz, 10 physics substeps), its coverage and
its drawing code. On top of it this module adds relative actions, a goal that is a full state,
pose-based success, a Markov state vector and 64 px observations without gym-pusht's fixed goal.

Coordinates are gym-pusht's pixels: x to the right, y down (image row = y), angles in radians.
State layout (float64, ``STATE_DIM = 10``)::

    [agent_x, agent_y, block_x, block_y, block_angle,          # the pose, as gym-pusht's state
     agent_vx, agent_vy, block_vx, block_vy, block_angular_velocity]

``block_x, block_y`` is the block body's origin (where the T's bar meets its stem), as in
gym-pusht; the angle is wrapped to [-pi, pi); the block velocity is that of its centre of gravity.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from lewm_mpc.envs.base import GoalEnv
from lewm_mpc.envs.pusht_geometry import (
    AGENT_HIGH,
    AGENT_LOW,
    POSE_DIM,
    STATE_DIM,
    SUCCESS_ANGLE,
    SUCCESS_DISTANCE,
    WORLD_SIZE,
    PushTConfig,
    pose_error,
    sample_state,
    transform_state,
    wrap_angle,
)
from lewm_mpc.envs.spec import EnvDefinition, EnvRecipe, ProbeTarget
from lewm_mpc.envs.symmetry import SceneSymmetries, square_symmetries
from lewm_mpc.envs.views import PlanarView

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame prints a banner on import
try:
    import cv2
    import pygame
    from gym_pusht.envs import pusht as gym_pusht
    from gym_pusht.envs.pymunk_override import DrawOptions
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(f"PushT needs gym-pusht ({error}): pip install 'lewm-mpc[pusht]'") from error


class _PushTScene(gym_pusht.PushTEnv):
    """gym-pusht's simulator whose ``step`` runs only the control and the physics.

    gym-pusht computes its coverage (shapely polygons), observation and info (with a contact
    count from a collision callback) inside every ``step``; ``PushTEnv`` asks for the coverage
    only when it reports one (``coverage``) and makes its own observations. The physics is
    unchanged: the callback runs after the contact solver and only counts.
    """

    def coverage(self) -> float:
        """gym-pusht's coverage of its goal pose by the block."""
        return float(super()._get_coverage())

    def _get_coverage(self) -> float:
        return float("nan")

    def get_obs(self) -> None:
        return None

    def _get_info(self) -> dict[str, Any]:
        return {}

    def _handle_collision(self, arbiter: Any, space: Any, data: Any) -> None:
        return None


class PushTEnv(GoalEnv[PushTConfig]):
    """Push the T block (and bring the agent) to a goal state (a :class:`GoalEnv`).

    Actions are relative: the agent's PD target is ``agent xy + action_scale * clip(action)``,
    clipped to the workspace, held for one 0.1 s control step (10 physics substeps). Frames show
    the agent and the block (gym-pusht's fixed green goal T is not drawn). States (and the reset
    options, ``set_state``, ``set_goal``) may also be given as 5-d poses, meaning at rest.

    The state vector is Markov: every step rebuilds gym-pusht's pymunk space from it (fresh
    contact cache and broadphase), so ``set_state(get_state())`` reproduces a trajectory
    exactly. The price: contact impulses are not warm-started across control steps.
    """

    name = "pusht"
    config_class = PushTConfig
    state_dim = STATE_DIM
    action_dim = 2

    def __init__(self, config: PushTConfig | None = None, obs_mode: str = "pixels",
                 render_mode: str | None = None) -> None:  # fmt: skip
        super().__init__(config, obs_mode, render_mode)
        self._sim = _PushTScene(obs_type="state", render_mode="rgb_array")
        self._sim._setup()  # builds the pymunk space (walls, agent, block)
        self._screen = pygame.Surface((WORLD_SIZE, WORLD_SIZE), depth=32)
        self._draw_options = DrawOptions(self._screen)
        shifts = self._screen.get_shifts()[:3]  # bit offsets of R, G, B in a pixel word
        byte = [shift // 8 if sys.byteorder == "little" else 3 - shift // 8 for shift in shifts]
        self._rgb_bytes = np.array(byte)
        self._state = np.zeros(STATE_DIM)

    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random state at rest (see :func:`sample_state`)."""
        return sample_state(rng)

    @classmethod
    def goal_error(cls, states: np.ndarray, goals: np.ndarray, config: PushTConfig) -> np.ndarray:
        """``||(agent xy, block xy) - goal's||`` (...,), px."""
        return pose_error(states, goals)[0]

    @classmethod
    def success_mask(cls, states: np.ndarray, goals: np.ndarray, config: PushTConfig) -> np.ndarray:
        """Position error below ``success_distance`` and wrapped angle error below
        ``success_angle`` (velocities ignored)."""
        distance, angle_error = pose_error(states, goals)
        return (distance < config.success_distance) & (angle_error < config.success_angle)

    def _coerce_state(self, state: np.ndarray, name: str) -> np.ndarray:
        if state.shape not in ((STATE_DIM,), (POSE_DIM,)):
            raise ValueError(
                f"{name} must have shape ({STATE_DIM},) (full state) or ({POSE_DIM},) (pose at "
                f"rest), got {state.shape}"
            )
        full = np.zeros(STATE_DIM)
        full[: state.size] = state
        full[4] = wrap_angle(full[4])
        return full

    def _write_state(self, state: np.ndarray) -> None:
        self._state = state.copy()
        self._load(self._state)

    def _read_state(self) -> np.ndarray:
        return self._state.copy()

    def _physics_step(self, action: np.ndarray) -> None:
        target = np.clip(self._state[:2] + self.config.action_scale * action, AGENT_LOW, AGENT_HIGH)
        self._load(self._state)
        self._sim.step(target)  # gym-pusht's PD control and physics
        agent, block = self._sim.agent, self._sim.block
        self._state = np.array(
            [*agent.position, *block.position, wrap_angle(block.angle), *agent.velocity,
             *block.velocity, block.angular_velocity],
            dtype=np.float64,
        )  # fmt: skip

    def _draw(self, state: np.ndarray, size: int) -> np.ndarray:
        """gym-pusht's drawing code (pygame) at its native 512 px, box-averaged down to ``size``
        by repeated exact 2x halving (anti-aliased: about 1/8 px resolution at 64 px). The
        episode is not disturbed (every step rebuilds the simulator from the state vector)."""
        self._place_bodies(state)
        self._screen.fill((255, 255, 255))
        self._sim.space.debug_draw(self._draw_options)
        # Zero-copy view of the 32-bit surface: (x, y) words, transposed to rows = y.
        frame = np.asarray(self._screen.get_view("2")).T.view(np.uint8)
        frame = frame.reshape(WORLD_SIZE, WORLD_SIZE, 4)  # (H, W, 4) bytes in surface order
        while frame.shape[0] >= 2 * size:  # bilinear at exactly 1/2 = mean of 2x2 blocks
            half = frame.shape[0] // 2
            frame = cv2.resize(frame, (half, half), interpolation=cv2.INTER_LINEAR)
        if frame.shape[0] != size:
            interpolation = cv2.INTER_AREA if size < frame.shape[0] else cv2.INTER_LINEAR
            frame = cv2.resize(frame, (size, size), interpolation=interpolation)
        return frame[..., self._rgb_bytes]  # fancy indexing: a new (size, size, 3) array

    def _extra_info(self, state: np.ndarray) -> dict[str, Any]:
        self._place_bodies(state)
        self._sim.goal_pose = self._goal[2:5].copy()  # gym-pusht's coverage is against this
        coverage = self._sim.coverage()
        return {
            "angle_error": float(pose_error(state, self._goal)[1]),
            "coverage": coverage,  # gym-pusht's: block/goal-T overlap area over the T's area
            "iou": coverage / (2.0 - coverage),  # the two T's have the same area
        }

    def _place_bodies(self, state: np.ndarray) -> None:
        """Puts gym-pusht's bodies at ``state`` (angle before position: the block rotates about
        its centre of gravity, so this order puts its origin at ``block xy``)."""
        agent, block = self._sim.agent, self._sim.block
        agent.position = (state[0], state[1])
        agent.velocity = (state[5], state[6])
        block.angle = state[4]
        block.position = (state[2], state[3])
        block.velocity = (state[7], state[8])
        block.angular_velocity = state[9]
        for shape in (*agent.shapes, *block.shapes):
            shape.cache_bb()  # debug drawing reads the shapes' cached world geometry

    def _load(self, state: np.ndarray) -> None:
        """Rebuilds the simulator at ``state``: a fresh pymunk space, then the bodies."""
        self._sim._setup()
        self._place_bodies(state)


def pusht_view(image_size: int) -> PlanarView:
    """PushT: gym-pusht's 512 px world, y down; tracks: agent xy, block xy."""
    ratio = image_size / WORLD_SIZE
    return PlanarView(matrix=((ratio, 0.0), (0.0, ratio)), offset=(0.0, 0.0), tracks=2)


def goal_features(states: np.ndarray) -> np.ndarray:
    """Task features of (..., 10) states, float64 (..., 6).

    ``[agent xy, block xy] / success_distance`` and ``(cos, sin)`` of the block angle over
    ``success_angle`` (defaults: 20 px, pi/9): a feature distance below 1 is about a success
    (the position part is exactly the success test's norm; the chord is about the angle error).
    """
    states = np.asarray(states, dtype=np.float64)
    angle = states[..., 4:5]
    return np.concatenate(
        [states[..., :4] / SUCCESS_DISTANCE, np.cos(angle) / SUCCESS_ANGLE,
         np.sin(angle) / SUCCESS_ANGLE],
        axis=-1,
    )  # fmt: skip


DEFINITION = EnvDefinition(
    env_class=PushTEnv,
    experts={
        "scripted": "lewm_mpc.envs.pusht_expert:PushTExpert.from_env",
        "goal": "lewm_mpc.envs.pusht_goal_expert:PushTGoalExpert.from_env",
    },
    goal_features=goal_features,
    probe=ProbeTarget(
        "agent xy + block xy", lambda states: np.asarray(states, np.float64)[..., :4]
    ),
    view=lambda env: pusht_view(env.config.image_size),
    recipe=EnvRecipe(episodes=300, episode_steps=200),
    symmetries=SceneSymmetries(square_symmetries(), transform_state),
)
