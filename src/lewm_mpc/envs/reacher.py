"""Reacher: dm_control's two-link planar arm, goal = a target joint configuration.

The suite's reacher model (``dm_control.suite.reacher``: 0.02 s Euler steps, joint damping 0.01,
motors of gear 0.05, contacts disabled), ``frame_skip`` ``mujoco.mj_step`` calls per env step. The
shoulder is an unlimited hinge (kept in [-pi, pi)), the wrist is limited to +-160 degrees. Solver
warm starts are disabled, so ``set_state`` reproduces a trajectory exactly. Frames come from the
suite's top-down camera ``"fixed"``; its target sphere is hidden (a goal's image is the arm in the
goal pose).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

try:
    import mujoco
    from dm_control.suite import reacher as _suite_reacher

    from lewm_mpc.envs.mujoco_rendering import JointStateEnv
except ImportError as _error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"Reacher needs dm-control and mujoco ({_error}): pip install 'lewm-mpc[reacher]'"
    ) from _error

from lewm_mpc.envs.spec import EnvDefinition, EnvRecipe, ProbeTarget
from lewm_mpc.envs.views import PinholeView

SUCCESS_TOLERANCE = 0.05  # rad, on every joint (reference threshold)
LINK_LENGTHS = (0.12, 0.12)  # shoulder -> wrist, wrist -> fingertip centre (m), from the suite XML
STATE_DIM = 4  # qpos (2) + qvel (2)
FINGERTIP_HEIGHT = 0.01  # m: the arm moves in the plane z = 0.01 (world xy = arm frame xy)
CAMERA = "fixed"  # the suite's top-down camera, 0.75 m above the arena centre
_WRIST_SLACK = 0.3  # rad a state's wrist may pass its +-160 deg stops (soft limit: <= 0.17 seen)


@dataclass(frozen=True)
class ReacherConfig:
    """Control, success and rendering settings of the Reacher environment.

    Attributes:
        image_size: Side of the square pixel observation.
        frame_skip: Physics steps (0.02 s each) per env step; 2 (0.04 s) as in
            stable-worldmodel's Reacher, which LeWorldModel's data comes from.
        success_tolerance: Success when every joint is within this many radians of the goal.
    """

    image_size: int = 64
    frame_skip: int = 2
    success_tolerance: float = SUCCESS_TOLERANCE

    def __post_init__(self) -> None:
        for name, minimum in (("image_size", 16), ("frame_skip", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
        tolerance = self.success_tolerance
        if not (isinstance(tolerance, (int, float)) and np.isfinite(tolerance) and tolerance > 0):
            raise ValueError(f"success_tolerance must be finite and > 0, got {tolerance!r}")


def wrap_angle(angle: np.ndarray | float) -> np.ndarray:
    """Maps angles to [-pi, pi) (elementwise, float64)."""
    wrapped = np.mod(np.asarray(angle, dtype=np.float64) + np.pi, 2 * np.pi) - np.pi
    return np.where(wrapped >= np.pi, wrapped - 2 * np.pi, wrapped)  # mod can round up to 2 pi


def joint_errors(states: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """Absolute joint-angle errors (..., 2) of (..., 4) states to goals (broadcast).

    The shoulder error is wrapped (the joint turns freely); the wrist error is not (it is limited
    to +-160 degrees, so poses on either side of its stop differ by the plain difference).
    """
    states = np.asarray(states, dtype=np.float64)
    goals = np.asarray(goals, dtype=np.float64)
    if states.shape[-1:] != (STATE_DIM,) or goals.shape[-1:] != (STATE_DIM,):
        raise ValueError(
            f"states and goals must end with a dimension of {STATE_DIM} (qpos, qvel), "
            f"got {states.shape} and {goals.shape}"
        )
    shoulder = np.abs(wrap_angle(states[..., 0] - goals[..., 0]))
    wrist = np.abs(states[..., 1] - goals[..., 1])
    return np.stack([shoulder, wrist], axis=-1)


def fingertip_position(state: np.ndarray) -> np.ndarray:
    """Planar position (..., 2) of the fingertip centre for (..., 4) states, in metres."""
    state = np.asarray(state, dtype=np.float64)
    shoulder, elbow = state[..., 0], state[..., 0] + state[..., 1]
    x = LINK_LENGTHS[0] * np.cos(shoulder) + LINK_LENGTHS[1] * np.cos(elbow)
    y = LINK_LENGTHS[0] * np.sin(shoulder) + LINK_LENGTHS[1] * np.sin(elbow)
    return np.stack([x, y], axis=-1)


_STATE_HIGH = np.array([1.0, 1.0, 1.0, 1.0, np.inf, np.inf], dtype=np.float32)


class ReacherEnv(JointStateEnv[ReacherConfig]):
    """Two-link planar arm; reach a goal joint configuration (a :class:`GoalEnv`).

    The state is ``[shoulder, wrist, d_shoulder, d_wrist]`` float64 (4,); the state observation is
    ``[cos q0, sin q0, cos q1, sin q1, dq0, dq1]`` float32 (6,). Actions are the two motor
    commands in [-1, 1] (torque = 0.05 N m per unit). Success: every joint within
    ``config.success_tolerance`` rad of the goal's (velocities ignored).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}  # noqa: RUF012
    name = "reacher"
    config_class = ReacherConfig
    state_dim = STATE_DIM
    action_dim = 2
    camera = CAMERA
    hidden_geoms = ("target",)  # a goal is a pose of the arm: its image is the arm there

    def __init__(self, config: ReacherConfig | None = None, obs_mode: str = "pixels",
                 render_mode: str | None = None) -> None:  # fmt: skip
        xml, assets = _suite_reacher.get_model_and_assets()
        super().__init__(mujoco.MjModel.from_xml_string(xml, assets), config, obs_mode, render_mode)
        wrist = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, "wrist")
        self.wrist_range = tuple(float(v) for v in self.model.jnt_range[wrist])

    def state_observation_space(self) -> gym.spaces.Box:
        """``(cos q, sin q)`` of both joints and their velocities."""
        return gym.spaces.Box(-_STATE_HIGH, _STATE_HIGH, (6,), np.float32)

    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random pose at rest (the suite's: shoulder and wrist uniform in their ranges)."""
        shoulder = rng.uniform(-np.pi, np.pi)
        wrist = rng.uniform(*self.wrist_range)
        return np.array([shoulder, wrist, 0.0, 0.0])

    @staticmethod
    def state_from_angles(angles: np.ndarray, velocities: np.ndarray | None = None) -> np.ndarray:
        """A full state (4,) from joint angles (2,) and optional velocities (2,, default 0)."""
        angles = np.asarray(angles, dtype=np.float64).reshape(2)
        velocities = np.zeros(2) if velocities is None else np.asarray(velocities, np.float64)
        return np.concatenate([angles, velocities.reshape(2)])

    @classmethod
    def goal_error(cls, states: np.ndarray, goals: np.ndarray, config: ReacherConfig) -> np.ndarray:
        """The largest joint error (...,), rad."""
        return np.max(joint_errors(states, goals), axis=-1)

    @classmethod
    def success_mask(
        cls, states: np.ndarray, goals: np.ndarray, config: ReacherConfig
    ) -> np.ndarray:
        """Every joint within ``config.success_tolerance`` of the goal's."""
        return cls.goal_error(states, goals, config) < config.success_tolerance

    def _coerce_state(self, state: np.ndarray, name: str) -> np.ndarray:
        if state.shape != (STATE_DIM,):
            raise ValueError(
                f"{name} must have shape ({STATE_DIM},) = [shoulder, wrist, d_shoulder, d_wrist], "
                f"got {state.shape}"
            )
        low, high = self.wrist_range
        if not low - _WRIST_SLACK <= state[1] <= high + _WRIST_SLACK:
            raise ValueError(
                f"{name} wrist angle {state[1]:.3f} rad is outside the joint range "
                f"[{low:.3f}, {high:.3f}] (+-{_WRIST_SLACK} slack)"
            )
        if not -np.pi <= state[0] < np.pi:
            state[0] = wrap_angle(state[0])
        return state

    def _physics_step(self, action: np.ndarray) -> None:
        super()._physics_step(action)
        if not -np.pi <= self._data.qpos[0] < np.pi:  # the shoulder turns freely
            self._data.qpos[0] = wrap_angle(self._data.qpos[0])

    def _state_observation(self, state: np.ndarray) -> np.ndarray:
        cos, sin = np.cos(state[:2]), np.sin(state[:2])
        return np.array([cos[0], sin[0], cos[1], sin[1], state[2], state[3]], dtype=np.float32)

    def _extra_info(self, state: np.ndarray) -> dict[str, Any]:
        return {
            "joint_errors": joint_errors(state, self._goal),
            "fingertip": fingertip_position(state),
        }


def goal_features(states: np.ndarray) -> np.ndarray:
    """Task features of (..., 4) states: ``(cos q, sin q)`` of each joint over the success
    tolerance, float64 (..., 4).

    The chord between two angles is about their difference for small errors, so a feature
    distance below 1 is about a success (exactly the per-joint test when one joint is off).
    """
    angles = np.asarray(states, dtype=np.float64)[..., :2]
    features = np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # (..., 2 joints, 2)
    return features.reshape(*angles.shape[:-1], 4) / SUCCESS_TOLERANCE


DEFINITION = EnvDefinition(
    env_class=ReacherEnv,
    experts={"random": "lewm_mpc.envs.reacher_expert:ReacherRandomPolicy.from_env"},
    goal_features=goal_features,
    probe=ProbeTarget("fingertip xy", fingertip_position),
    view=lambda env: PinholeView.from_mujoco(
        env.model, CAMERA, env.config.image_size, FINGERTIP_HEIGHT
    ),
    recipe=EnvRecipe(episodes=300, episode_steps=200),
)
