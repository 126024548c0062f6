"""PushT geometry: gym-pusht's world, the T, poses and their errors, and the env's config.

Shared by the env (``lewm_mpc.envs.pusht``) and its data policies; pure numpy (no gym-pusht
import). Coordinates are gym-pusht's pixels: x to the right, y down (image row = y), angles in
radians. A state is ``[agent_x, agent_y, block_x, block_y, block_angle, agent_vx, agent_vy,
block_vx, block_vy, block_angular_velocity]``; its first five entries are the pose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lewm_mpc.envs.symmetry import PlanarSymmetry

STATE_DIM = 10
POSE_DIM = 5  # agent xy, block xy, block angle
WORLD_SIZE = 512  # gym-pusht's world and drawing surface, in px
AGENT_RADIUS = 15.0  # gym-pusht's agent disk
AGENT_LOW, AGENT_HIGH = 22.0, 489.0  # agent centre range inside the walls (faces at 7 and 504)
ARENA_CENTER = (AGENT_LOW + AGENT_HIGH) / 2  # 255.5 px: walls and agent range are symmetric
SUCCESS_DISTANCE = 20.0  # px, on the stacked (agent xy, block xy) error
SUCCESS_ANGLE = math.pi / 9  # rad, on the wrapped block angle error
# The T in the block frame (gym-pusht's add_tee, scale 30), boxes as (cx, cy, half_w, half_h).
TEE_BOXES = np.array([[0.0, 15.0, 60.0, 15.0], [0.0, 75.0, 15.0, 45.0]])  # bar, stem
TEE_OUTLINE = np.array(
    [[-60, 0], [60, 0], [60, 30], [15, 30], [15, 120], [-15, 120], [-15, 30], [-60, 30]], float
)  # (8, 2) counter-clockwise on screen (y down)


@dataclass(frozen=True)
class PushTConfig:
    """Action scale, success thresholds and rendering of the PushT environment.

    Attributes:
        image_size: Side of the square pixel observation.
        action_scale: Offset of the agent's PD target from the agent at ``|action| = 1``, px.
        success_distance: Success needs ``||(agent xy, block xy) - goal's||`` (the norm of the
            stacked 4-vector) below this, px.
        success_angle: ... and the wrapped block angle error below this, rad.
    """

    image_size: int = 64
    action_scale: float = 40.0
    success_distance: float = SUCCESS_DISTANCE
    success_angle: float = SUCCESS_ANGLE

    def __post_init__(self) -> None:
        if not isinstance(self.image_size, int) or self.image_size < 16:
            raise ValueError(f"image_size must be an int >= 16, got {self.image_size!r}")
        if not (np.isfinite(self.action_scale) and 0 < self.action_scale <= 200):
            raise ValueError(f"action_scale must be in (0, 200] px, got {self.action_scale!r}")
        if not (np.isfinite(self.success_distance) and self.success_distance > 0):
            raise ValueError(
                f"success_distance must be a positive finite number, got {self.success_distance!r}"
            )
        if not 0 < self.success_angle <= math.pi:
            raise ValueError(f"success_angle must be in (0, pi], got {self.success_angle!r}")


# ------------------------------------------------------------------------ geometry helpers
def wrap_angle(angle: np.ndarray | float) -> np.ndarray:
    """Wraps angles to [-pi, pi)."""
    return (np.asarray(angle, dtype=np.float64) + np.pi) % (2 * np.pi) - np.pi


def pose_error(state: np.ndarray, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position error ``||(agent xy, block xy) - goal's||`` and wrapped angle error, px and rad.

    ``state`` and ``goal`` are (..., 5) poses or (..., 10) states (broadcast); only the pose is
    compared.
    """
    state, goal = np.asarray(state, np.float64), np.asarray(goal, np.float64)
    if state.shape[-1] not in (POSE_DIM, STATE_DIM) or goal.shape[-1] not in (POSE_DIM, STATE_DIM):
        raise ValueError(
            f"state and goal must end in {POSE_DIM} (pose) or {STATE_DIM} (state), "
            f"got {state.shape} and {goal.shape}"
        )
    distance = np.linalg.norm(state[..., :4] - goal[..., :4], axis=-1)
    angle_error = np.abs(wrap_angle(state[..., 4] - goal[..., 4]))
    return distance, angle_error


def rotate(vectors: np.ndarray, angle: float) -> np.ndarray:
    """Rotates (..., 2) vectors by ``angle`` (pymunk's convention: x toward y)."""
    cos, sin = math.cos(angle), math.sin(angle)
    x, y = vectors[..., 0], vectors[..., 1]
    return np.stack([cos * x - sin * y, sin * x + cos * y], -1)


def world_to_block(state: np.ndarray, points: np.ndarray) -> np.ndarray:
    """World points (N, 2) expressed in the block frame of ``state`` (N, 2)."""
    return rotate(np.asarray(points, np.float64) - state[2:4], -state[4])


def block_to_world(state: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Block-frame points (N, 2) of ``state`` in world coordinates (N, 2)."""
    return rotate(np.asarray(points, np.float64), state[4]) + state[2:4]


def tee_distance(local_points: np.ndarray) -> np.ndarray:
    """Distance (N,) from block-frame points (N, 2) to the T (0 inside it)."""
    offset = np.abs(local_points[:, None, :] - TEE_BOXES[None, :, :2]) - TEE_BOXES[None, :, 2:]
    return np.linalg.norm(np.maximum(offset, 0.0), axis=-1).min(axis=1)  # (N, 2 boxes) -> (N,)


def transform_state(states: np.ndarray, symmetry: PlanarSymmetry) -> np.ndarray:
    """(..., 10) states -> the states of the scene turned or mirrored about the arena's centre.

    Positions map about :data:`ARENA_CENTER`, velocities by the matrix. The T is mirror
    symmetric about its stem (block-frame x -> -x) and its origin lies on that axis, so a
    rotation by ``phi`` adds ``phi`` to the block angle, and a reflection ``R(phi) F`` (``F``
    mirrors x) maps it to ``phi - angle`` and reverses the angular velocity. Physics and
    walls are symmetric alike, so stepping a transformed state with the transformed action
    gives the transformed next state.
    """
    states = np.asarray(states, np.float64)
    if states.shape[-1] != STATE_DIM:
        raise ValueError(f"states must end in {STATE_DIM}, got {states.shape}")
    out = np.empty_like(states)
    out[..., 0:2] = symmetry.points(states[..., 0:2], ARENA_CENTER)
    out[..., 2:4] = symmetry.points(states[..., 2:4], ARENA_CENTER)
    out[..., 5:7] = symmetry.vectors(states[..., 5:7])
    out[..., 7:9] = symmetry.vectors(states[..., 7:9])
    sign = 1.0 if symmetry.is_rotation else -1.0
    out[..., 4] = wrap_angle(symmetry.angle + sign * states[..., 4])
    out[..., 9] = sign * states[..., 9]
    return out


def sample_state(rng: np.random.Generator) -> np.ndarray:
    """A random state at rest, float64 (10,): gym-pusht's ranges (agent xy in [50, 450], block
    xy in [100, 400], angle uniform), rejecting agents that touch the block."""
    while True:
        state = np.zeros(STATE_DIM)
        state[:2] = rng.uniform(50.0, 450.0, size=2)
        state[2:4] = rng.uniform(100.0, 400.0, size=2)
        state[4] = rng.uniform(-np.pi, np.pi)
        if tee_distance(world_to_block(state, state[None, :2]))[0] > AGENT_RADIUS + 5.0:
            return state


# ---------------------------------------------------------------------------------- env
