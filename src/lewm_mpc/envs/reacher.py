"""Reacher: dm_control's two-link planar arm, goal = a target joint configuration.

The physics is the suite's reacher model (``dm_control.suite.reacher``: 0.02 s Euler steps, joint
damping 0.01, motors with gear 0.05 and control range [-1, 1], contacts disabled), stepped with
``mujoco.mj_step`` directly, ``frame_skip`` physics steps per env step. Joint 0 (shoulder) is an
unlimited hinge, joint 1 (wrist) is limited to +-160 degrees. The env state is
``[shoulder, wrist, shoulder_velocity, wrist_velocity]`` (float64); the shoulder angle is kept in
[-pi, pi). Solver warm starts are disabled so that the next state is a pure function of
(state, action): ``set_state`` then reproduces a trajectory exactly.

Frames come from the suite's top-down camera ``"fixed"`` through one ``mujoco.Renderer`` per image
size, with the fast settings (no multisampling, shadows, reflections or skybox). The suite's target
sphere is hidden: a goal is a pose of the arm, and its image is the arm in that pose.
"""

from __future__ import annotations

import atexit
import functools
import os
import sys
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

if sys.platform.startswith("linux") and not (
    os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
):
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless: must be set before mujoco is imported

try:
    import mujoco
    from dm_control.suite import reacher as _suite_reacher
except ImportError as _error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"Reacher needs dm-control and mujoco ({_error}): pip install 'lewm-mpc[reacher]'"
    ) from _error

from lewm_mpc.envs import ENV_SPECS
from lewm_mpc.envs.spec import configure_spaces

SUCCESS_TOLERANCE = 0.05  # rad, on every joint (reference threshold)
LINK_LENGTHS = (0.12, 0.12)  # shoulder -> wrist, wrist -> fingertip centre (m), from the suite XML
STATE_DIM = 4  # qpos (2) + qvel (2)
FINGERTIP_HEIGHT = 0.01  # m: the arm moves in the plane z = 0.01 (world xy = arm frame xy)
CAMERA = "fixed"  # the suite's top-down camera, 0.75 m above the arena centre
_HIDDEN_GROUP = 5  # geom group of the target sphere; switched off in the scene options
_WRIST_SLACK = 0.3  # rad a state's wrist may pass its +-160 deg stops (soft limit: <= 0.17 seen)


_OPEN_ENVS: weakref.WeakSet[ReacherEnv] = weakref.WeakSet()  # envs holding renderers


def _close_open_envs() -> None:
    """Frees the GL contexts left open at exit (``__del__`` at teardown raises EGL errors).

    Registered with ``atexit`` after the first renderer exists, hence after mujoco's own hook
    that terminates the EGL display: atexit runs hooks in reverse, so this one runs first.
    """
    for env in list(_OPEN_ENVS):
        env.close()


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
            raise ValueError(
                f"success_tolerance must be a positive finite number, got {tolerance!r}"
            )


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


def load_model() -> mujoco.MjModel:
    """The suite's reacher model, prepared: fast rendering, hidden target, no solver warm start."""
    xml, assets = _suite_reacher.get_model_and_assets()
    model = mujoco.MjModel.from_xml_string(xml, assets)
    model.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_WARMSTART)
    model.vis.quality.offsamples = 0
    target = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "target")
    model.geom_group[target] = _HIDDEN_GROUP
    return model


_STATE_HIGH = np.array([1.0, 1.0, 1.0, 1.0, np.inf, np.inf], dtype=np.float32)


class ReacherEnv(gym.Env):
    """Two-link planar arm; reach a goal joint configuration (gymnasium API).

    Observations are the top-down frame (``obs_mode="pixels"``, uint8 (S, S, 3)) or
    ``[cos q0, sin q0, cos q1, sin q1, dq0, dq1]`` (``obs_mode="state"``, float32 (6,)). Actions
    are the two motor commands in [-1, 1] (the suite's control range; torque = 0.05 N m per unit).
    The goal is a full state (its velocities are ignored): ``goal_state`` / ``info["goal"]``,
    its image is ``render_state(goal)``. Reward is 1.0 on success; episodes never terminate (the
    time limit comes from registration).

    Args:
        config: Environment configuration; defaults to ``ReacherConfig()``.
        obs_mode: ``"pixels"`` or ``"state"``.
        render_mode: ``None`` or ``"rgb_array"``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(
        self,
        config: ReacherConfig | None = None,
        obs_mode: str = "pixels",
        render_mode: str | None = None,
    ) -> None:
        self.config = ReacherConfig() if config is None else config
        configure_spaces(
            self, obs_mode, render_mode, self.config.image_size,
            gym.spaces.Box(-_STATE_HIGH, _STATE_HIGH, (6,), np.float32), 2,
        )  # fmt: skip
        # Instance-bound success tests with this config's tolerance (shadow the static defaults).
        tolerance = self.config.success_tolerance
        self.is_success = functools.partial(ReacherEnv.is_success, tolerance=tolerance)
        self.is_success_batch = functools.partial(ReacherEnv.is_success_batch, tolerance=tolerance)

        self.model = load_model()
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.dt)}
        self._data = mujoco.MjData(self.model)  # the simulation
        self._render_data = mujoco.MjData(self.model)  # posed by render_state only
        wrist = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, "wrist")
        self.wrist_range = tuple(float(v) for v in self.model.jnt_range[wrist])
        self._scene_option = mujoco.MjvOption()
        self._scene_option.geomgroup[_HIDDEN_GROUP] = 0
        self._renderers: dict[int, mujoco.Renderer] = {}
        self._goal: np.ndarray | None = None
        self._started = False

    @property
    def dt(self) -> float:
        """Seconds of simulated time per env step."""
        return self.config.frame_skip * float(self.model.opt.timestep)

    # ----------------------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts an episode; ``options`` may set ``"state"`` and/or ``"goal"`` (full states).

        By default the start and the goal are drawn like the suite's episodes: shoulder uniform
        in [-pi, pi), wrist uniform in its range, zero velocity.
        """
        super().reset(seed=seed)
        options = {} if options is None else dict(options)
        unknown = set(options) - {"state", "goal"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; known: ['goal', 'state']")
        start = options.get("state")
        goal = options.get("goal")
        # Validate both before changing anything.
        start = (
            self.sample_state(self.np_random) if start is None else self._validated(start, "state")
        )
        goal = self.sample_state(self.np_random) if goal is None else self._validated(goal, "goal")
        self._write_state(start)
        self._goal = goal
        self._started = True
        return self._observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Applies ``clip(action, -1, 1)`` to the motors for ``frame_skip`` physics steps."""
        self._advance(action)
        info = self._info()
        return self._observation(), float(info["success"]), False, False, info

    def render(self) -> np.ndarray | None:
        """The current frame at ``image_size`` if ``render_mode == "rgb_array"``, else None."""
        if self.render_mode != "rgb_array" or not self._started:
            return None
        return self.render_state(self.get_state())

    def close(self) -> None:
        """Frees the renderers' GL contexts."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        _OPEN_ENVS.discard(self)
        super().close()

    # ------------------------------------------------------------------------ state access
    def get_state(self) -> np.ndarray:
        """``[qpos, qvel]``, float64 (4,) copy."""
        if not self._started:
            raise RuntimeError("call reset() before get_state()")
        return np.concatenate([self._data.qpos, self._data.qvel])

    def set_state(self, state: np.ndarray) -> None:
        """Sets angles and velocities; ValueError for a bad shape, NaN or a wrist off its range."""
        self._write_state(self._validated(state, "state"))
        self._started = True

    @property
    def goal_state(self) -> np.ndarray:
        """The goal state, float64 (4,) copy (only its joint angles matter)."""
        if self._goal is None:
            raise RuntimeError("call reset() before goal_state")
        return self._goal.copy()

    def set_goal(self, goal: np.ndarray) -> None:
        """Sets the goal state (same validation as ``set_state``)."""
        self._goal = self._validated(goal, "goal")

    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random pose at rest: shoulder in [-pi, pi), wrist in its range; float64 (4,)."""
        shoulder = rng.uniform(-np.pi, np.pi)
        wrist = rng.uniform(*self.wrist_range)
        return np.array([shoulder, wrist, 0.0, 0.0])

    @staticmethod
    def state_from_angles(angles: np.ndarray, velocities: np.ndarray | None = None) -> np.ndarray:
        """A full state (4,) from joint angles (2,) and optional velocities (2,, default 0)."""
        angles = np.asarray(angles, dtype=np.float64).reshape(2)
        velocities = np.zeros(2) if velocities is None else np.asarray(velocities, np.float64)
        return np.concatenate([angles, velocities.reshape(2)])

    def render_state(self, state: np.ndarray, size: int | None = None) -> np.ndarray:
        """Renders the arm at ``state`` (target hidden), uint8 (size, size, 3).

        Uses a separate ``MjData``: the running episode is not disturbed.
        """
        state = self._validated(state, "state")
        size = self.config.image_size if size is None else int(size)
        data = self._render_data
        data.qpos[:] = state[:2]
        data.qvel[:] = state[2:]
        mujoco.mj_forward(self.model, data)  # body, camera and light poses
        renderer = self._renderer(size)
        renderer.update_scene(data, camera=CAMERA, scene_option=self._scene_option)
        return renderer.render()  # a fresh array each call

    @staticmethod
    def is_success(
        state: np.ndarray, goal: np.ndarray, tolerance: float = SUCCESS_TOLERANCE
    ) -> bool:
        """Whether every joint of ``state`` is within ``tolerance`` rad of ``goal`` (both (4,)).

        On an instance the tolerance defaults to that instance's ``config.success_tolerance``.
        """
        state = np.asarray(state, dtype=np.float64)
        goal = np.asarray(goal, dtype=np.float64)
        if state.shape != (STATE_DIM,) or goal.shape != (STATE_DIM,):
            raise ValueError(
                f"state and goal must have shape ({STATE_DIM},), got {state.shape} and {goal.shape}"
            )
        return bool(np.max(joint_errors(state, goal)) < tolerance)

    @staticmethod
    def is_success_batch(
        states: np.ndarray, goals: np.ndarray, tolerance: float = SUCCESS_TOLERANCE
    ) -> np.ndarray:
        """Vectorized ``is_success`` over (..., 4) arrays (broadcast); returns bool (...)."""
        return np.max(joint_errors(states, goals), axis=-1) < tolerance

    # ---------------------------------------------------------------------------- helpers
    def _validated(self, value: np.ndarray, name: str) -> np.ndarray:
        state = np.array(value, dtype=np.float64)  # copy: never alias the caller's array
        if state.shape != (STATE_DIM,):
            raise ValueError(
                f"{name} must have shape ({STATE_DIM},) = [shoulder, wrist, d_shoulder, d_wrist], "
                f"got {state.shape}"
            )
        if not np.all(np.isfinite(state)):
            raise ValueError(f"{name} must be finite, got {state}")
        low, high = self.wrist_range
        if not low - _WRIST_SLACK <= state[1] <= high + _WRIST_SLACK:
            raise ValueError(
                f"{name} wrist angle {state[1]:.3f} rad is outside the joint range "
                f"[{low:.3f}, {high:.3f}] (+-{_WRIST_SLACK} slack)"
            )
        if not -np.pi <= state[0] < np.pi:
            state[0] = wrap_angle(state[0])
        return state

    def _advance(self, action: np.ndarray) -> None:
        """The dynamics of ``step`` alone (no observation or info), as the simulator oracle
        steps."""
        if not self._started or self._goal is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be a finite array of shape (2,), got {action!r}")
        data = self._data
        data.ctrl[:] = np.clip(action, -1.0, 1.0)
        mujoco.mj_step(self.model, data, nstep=self.config.frame_skip)
        if not -np.pi <= data.qpos[0] < np.pi:
            data.qpos[0] = wrap_angle(data.qpos[0])

    def _write_state(self, state: np.ndarray) -> None:
        mujoco.mj_resetData(self.model, self._data)
        self._data.qpos[:] = state[:2]
        self._data.qvel[:] = state[2:]

    def _renderer(self, size: int) -> mujoco.Renderer:
        renderer = self._renderers.get(size)
        if renderer is None:
            if size < 1:
                raise ValueError(f"size must be >= 1, got {size}")
            visual = self.model.vis.global_
            visual.offwidth = max(visual.offwidth, size)
            visual.offheight = max(visual.offheight, size)
            renderer = mujoco.Renderer(self.model, height=size, width=size)
            flags = renderer.scene.flags
            for flag in ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX"):
                flags[getattr(mujoco.mjtRndFlag, flag)] = False
            self._renderers[size] = renderer
            if not _OPEN_ENVS:
                atexit.unregister(_close_open_envs)
                atexit.register(_close_open_envs)
            _OPEN_ENVS.add(self)
        return renderer

    def _observation(self) -> np.ndarray:
        state = self.get_state()
        if self.obs_mode == "pixels":
            return self.render_state(state)
        cos, sin = np.cos(state[:2]), np.sin(state[:2])
        return np.array([cos[0], sin[0], cos[1], sin[1], state[2], state[3]], dtype=np.float32)

    def _info(self) -> dict[str, Any]:
        state = self.get_state()
        errors = joint_errors(state, self._goal)
        distance = float(np.max(errors))
        return {
            "state": state,
            "goal": self._goal.copy(),
            "success": distance < self.config.success_tolerance,
            "distance": distance,
            "joint_errors": errors,
            "fingertip": fingertip_position(state),
        }


# ------------------------------------------------------------- EnvSpec module contract
SPEC = ENV_SPECS["reacher"]  # the registry in lewm_mpc.envs is the single source


def make_env(
    obs_mode: str = "pixels", env_config: Mapping[str, Any] | None = None, **kwargs: Any
) -> gym.Env:
    """``gym.make`` of Reacher with optional config-field overrides (see ``EnvSpec``)."""
    try:
        config = ReacherConfig(**env_config) if env_config else None
    except TypeError as error:
        raise ValueError(f"invalid Reacher env_config {dict(env_config or {})}: {error}") from None
    return gym.make(SPEC.gym_id, obs_mode=obs_mode, config=config, **kwargs)


def make_expert(env: gym.Env) -> Any:
    """The smoothed random-action data policy (a ``Policy``) for a Reacher env."""
    from lewm_mpc.envs.reacher_expert import ReacherRandomPolicy

    return ReacherRandomPolicy()


def is_success(state: np.ndarray, goal: np.ndarray) -> bool:
    """Every joint within the default tolerance (0.05 rad) of the goal."""
    return ReacherEnv.is_success(state, goal)


def goal_features(states: np.ndarray) -> np.ndarray:
    """Task features of (..., 4) states: ``(cos q, sin q)`` of each joint over the success
    tolerance, float64 (..., 4).

    The chord between two angles is about their difference for small errors, so a feature
    distance below 1 is about a success (exactly the per-joint test when one joint is off).
    """
    states = np.asarray(states, dtype=np.float64)
    if states.shape[-1:] != (STATE_DIM,):
        raise ValueError(f"Reacher states have shape (..., {STATE_DIM}), got {states.shape}")
    angles = states[..., :2]
    features = np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # (..., 2 joints, 2)
    return features.reshape(*states.shape[:-1], 4) / SUCCESS_TOLERANCE
