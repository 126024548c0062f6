"""Point mass: dm_control's planar point mass, goal = a position in its walled arena.

The physics is the suite's ``point_mass`` model (``dm_control.suite.point_mass``: a 0.3 kg sphere
on two slide joints limited to +-0.29 m with damping 1 N s/m, two motors of gear 0.1 along x and y
with control range [-1, 1], 0.02 s Euler steps, contacts disabled), stepped with
``mujoco.mj_step`` directly, ``frame_skip`` physics steps per env step. The state is
``[x, y, vx, vy]`` (float64, m and m/s); solver warm starts are disabled, so ``set_state``
reproduces a trajectory exactly.

Frames come from the suite's top-down camera ``"fixed"`` with the fast MuJoCo settings. The
suite's target sphere is hidden (a goal's image is the mass at the goal), and the mass is drawn
with a radius of ``draw_radius`` (the suite's 1 cm sphere would be one pixel at 64 px); contacts
are disabled and the mass is given explicitly, so the drawn size does not change the physics.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

try:
    import mujoco
    from dm_control.suite import point_mass as _suite_point_mass

    from lewm_mpc.envs.mujoco_rendering import JointStateEnv  # sets MUJOCO_GL when headless
except ImportError as _error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"Point mass needs dm-control and mujoco ({_error}): pip install 'lewm-mpc[pointmass]'"
    ) from _error

from lewm_mpc.envs.spec import EnvDefinition, EnvRecipe, ProbeTarget
from lewm_mpc.envs.views import PinholeView

SUCCESS_RADIUS = 0.03  # m (the arena is 0.58 m wide)
POSITION_LIMIT = 0.29  # m, the suite's slide-joint range
HEIGHT = 0.01  # m: the mass moves in the plane z = 0.01
CAMERA = "fixed"  # the suite's top-down camera, 0.75 m above the arena centre


@dataclass(frozen=True)
class PointMassConfig:
    """Control, success and rendering settings of the point mass.

    Attributes:
        image_size: Side of the square pixel observation.
        frame_skip: Physics steps (0.02 s each) per env step; 5 gives 10 Hz control (full force
            moves the mass ~1 cm per step at its terminal speed of 0.1 m/s).
        success_radius: Success when the mass is within this distance (m) of the goal position.
        draw_radius: Radius (m) the mass is drawn with.
    """

    image_size: int = 64
    frame_skip: int = 5
    success_radius: float = SUCCESS_RADIUS
    draw_radius: float = 0.025

    def __post_init__(self) -> None:
        for name, minimum in (("image_size", 16), ("frame_skip", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
        for name in ("success_radius", "draw_radius"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and 0 < value < 0.3):
                raise ValueError(f"{name} must be in (0, 0.3) m, got {value!r}")


class PointMassEnv(JointStateEnv[PointMassConfig]):
    """A planar point mass pushed by two motors; reach a goal position (a :class:`GoalEnv`).

    The state is ``[x, y, vx, vy]`` float64 (4,), also the state observation (float32). The goal
    is a state whose velocity is ignored. Success: the mass within ``config.success_radius`` of
    the goal position.
    """

    name = "pointmass"
    config_class = PointMassConfig
    state_dim = 4
    action_dim = 2
    camera = CAMERA
    hidden_geoms = ("target",)  # a goal's image is the mass at the goal

    def __init__(self, config: PointMassConfig | None = None, obs_mode: str = "pixels",
                 render_mode: str | None = None) -> None:  # fmt: skip
        xml, assets = _suite_point_mass.get_model_and_assets()
        super().__init__(mujoco.MjModel.from_xml_string(xml, assets), config, obs_mode, render_mode)
        mass = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, "pointmass")
        self.model.geom_size[mass, 0] = self.config.draw_radius  # drawing only: no contacts

    def state_observation_space(self) -> gym.spaces.Box:
        """Position within the joint limits, unbounded velocity."""
        high = np.array([POSITION_LIMIT, POSITION_LIMIT, np.inf, np.inf], np.float32)
        return gym.spaces.Box(-high, high, (4,), np.float32)

    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random position at rest, uniform over the joint range (as the suite's episodes)."""
        position = rng.uniform(-POSITION_LIMIT, POSITION_LIMIT, size=2)
        return np.array([position[0], position[1], 0.0, 0.0])

    @classmethod
    def goal_error(
        cls, states: np.ndarray, goals: np.ndarray, config: PointMassConfig
    ) -> np.ndarray:
        """Distance (...,) of the mass to the goal position, m."""
        return np.linalg.norm(np.asarray(states)[..., :2] - np.asarray(goals)[..., :2], axis=-1)

    @classmethod
    def success_mask(
        cls, states: np.ndarray, goals: np.ndarray, config: PointMassConfig
    ) -> np.ndarray:
        """The mass within ``config.success_radius`` of the goal position."""
        return cls.goal_error(states, goals, config) < config.success_radius

    def _coerce_state(self, state: np.ndarray, name: str) -> np.ndarray:
        state = super()._coerce_state(state, name)
        if np.any(np.abs(state[:2]) > POSITION_LIMIT + 0.02):
            raise ValueError(
                f"{name} position {state[:2]} is outside the arena (|x|, |y| <= {POSITION_LIMIT})"
            )
        return state


def _position(states: np.ndarray) -> np.ndarray:
    return np.asarray(states, np.float64)[..., :2]


DEFINITION = EnvDefinition(
    env_class=PointMassEnv,
    experts={"random": "lewm_mpc.envs.reacher_expert:ReacherRandomPolicy.from_env"},
    goal_features=lambda states: _position(states) / SUCCESS_RADIUS,
    probe=ProbeTarget("mass xy", _position),
    view=lambda env: PinholeView.from_mujoco(env.model, CAMERA, env.config.image_size, HEIGHT),
    recipe=EnvRecipe(episodes=300, episode_steps=100),
)
