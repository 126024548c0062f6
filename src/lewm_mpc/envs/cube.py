"""Cube: OGBench's single-cube pick-and-place scene (UR5e arm + Robotiq 2F-85 gripper).

Built around ``ogbench.manipspace.envs.cube_env.CubeEnv`` (``cube-single``) by composition: OGBench
owns the MuJoCo scene, the 5-d end-effector action (dx, dy, dz, dyaw, gripper in [-1, 1], scaled by
(0.05 m, 0.05 m, 0.05 m, 0.3 rad, 1.0) and turned into joint targets by differential IK) and its
0.05 s control step (25 physics steps of 2 ms). This module adds the goal-conditioned contract of
``lewm_mpc`` (full-state goals, exact ``get_state``/``set_state``), its own fast renderer, and the
success test: the cube within ``success_radius`` (0.04 m, OGBench's threshold) of the goal cube.

The env state is MuJoCo's own state vector (``mj_getState``) with the components
``[time | qpos | qvel | act | history | qacc_warmstart | ctrl]``: positions and velocities of the
arm, the gripper and the cube's free joint, plus the solver warm start and the last control, so a
restored state steps bit-for-bit like the original. OGBench's controller keeps no state between
steps (the IK restarts from the current joints), and its target marker (a mocap body without
collisions, invisible here) only mirrors the goal, so it is not part of the state.
"""

from __future__ import annotations

import atexit
import functools
import os
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from lewm_mpc.envs import ENV_SPECS
from lewm_mpc.envs.spec import configure_spaces

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering unless the user chose a backend
try:
    import mujoco
    from ogbench.manipspace import lie
    from ogbench.manipspace.envs.cube_env import CubeEnv as _OGBenchCubeEnv
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"Cube needs mujoco and ogbench ({error}): pip install 'lewm-mpc[cube]'"
    ) from None

SUCCESS_RADIUS = 0.04  # OGBench: cube within 4 cm of its target
CAMERA = "front_pixels"  # OGBench's camera for its visual-cube tasks
ACTION_SCALE = (0.05, 0.05, 0.05, 0.3, 1.0)  # OGBench: action 1.0 -> metres, radians, opening
# mj_getState components; the order in the vector is MuJoCo's (time, qpos, qvel, act, history,
# warm start, ctrl), whatever the order of the flags here.
_STATE_SIG = int(
    mujoco.mjtState.mjSTATE_TIME
    | mujoco.mjtState.mjSTATE_QPOS
    | mujoco.mjtState.mjSTATE_QVEL
    | mujoco.mjtState.mjSTATE_ACT
    | mujoco.mjtState.mjSTATE_HISTORY
    | mujoco.mjtState.mjSTATE_WARMSTART
    | mujoco.mjtState.mjSTATE_CTRL
)
# Layout of the cube-single model (checked against the compiled model on first reset):
# time 1, qpos 21 (arm 6, gripper 8, cube 7), qvel 20, act 0, warm start 20, ctrl 7.
STATE_DIM = 69
CUBE_POS = slice(15, 18)  # cube xyz in the state: time (1) + arm and gripper qpos (14)
CUBE_QUAT = slice(18, 22)  # cube orientation (w, x, y, z)
_CUBE_Z = 0.02  # cube half-size: resting on the table


@dataclass(frozen=True)
class CubeConfig:
    """Rendering and success settings of the Cube environment.

    Attributes:
        image_size: Side of the square pixel observation.
        success_radius: Success when the cube-goal distance (m) is at most this.
        transparent_arm: Draw the arm nearly transparent (OGBench's visual-cube look), so the
            cube stays visible under it.
    """

    image_size: int = 64
    success_radius: float = SUCCESS_RADIUS
    transparent_arm: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int):
            raise ValueError(f"image_size must be an int >= 16, got {self.image_size!r}")
        if not 16 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be in [16, 1024], got {self.image_size!r}")
        if not (np.isfinite(self.success_radius) and self.success_radius > 0):
            raise ValueError(
                f"success_radius must be a positive finite number, got {self.success_radius!r}"
            )
        if not isinstance(self.transparent_arm, bool):
            raise ValueError(f"transparent_arm must be a bool, got {self.transparent_arm!r}")


def cube_position(state: np.ndarray) -> np.ndarray:
    """The cube's xyz (m) in a state (or a batch of states (..., STATE_DIM)), float64 (..., 3)."""
    state = np.asarray(state, dtype=np.float64)
    if state.shape[-1:] != (STATE_DIM,):
        raise ValueError(f"a Cube state has {STATE_DIM} entries, got shape {state.shape}")
    return state[..., CUBE_POS].copy()


class _OGBenchScene(_OGBenchCubeEnv):
    """OGBench's cube scene whose observations are made by ``CubeEnv``, not by OGBench.

    OGBench renders an observation inside every ``reset`` and ``step`` when ``ob_type="pixels"``
    (with its slow default renderer); ``CubeEnv`` renders only when it needs a frame.
    """

    def compute_observation(self) -> None:
        return None


_OPEN_RENDERERS: weakref.WeakSet[Any] = weakref.WeakSet()


def _close_open_renderers() -> None:
    """Frees renderers of envs never closed while EGL still works (no noise at exit)."""
    for renderer in list(_OPEN_RENDERERS):
        renderer.close()


def _fast_renderer(model: Any, size: int) -> Any:
    """A ``mujoco.Renderer`` without multisampling, shadows, reflections or skybox."""
    model.vis.quality.offsamples = 0
    model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), size)
    model.vis.global_.offheight = max(int(model.vis.global_.offheight), size)
    renderer = mujoco.Renderer(model, height=size, width=size)
    if not _OPEN_RENDERERS:  # registered after the GL backend's own exit hook: runs before it
        atexit.unregister(_close_open_renderers)
        atexit.register(_close_open_renderers)
    for flag in (
        mujoco.mjtRndFlag.mjRND_SHADOW,
        mujoco.mjtRndFlag.mjRND_REFLECTION,
        mujoco.mjtRndFlag.mjRND_SKYBOX,
    ):
        renderer.scene.flags[flag] = 0
    _OPEN_RENDERERS.add(renderer)
    return renderer


class CubeEnv(gym.Env):
    """Move a cube to a goal position with a UR5e arm (OGBench cube-single; gymnasium API).

    Observations are the frame of OGBench's ``front_pixels`` camera (``obs_mode="pixels"``,
    uint8 (S, S, 3)) or the env state itself (``obs_mode="state"``, float32 (69,)). The goal is a
    full env state (arm and cube); only its cube position matters for success. It is not drawn:
    its image is ``render_state(goal)``. Reward is 1.0 on success; episodes never terminate (the
    time limit comes from registration).

    Args:
        config: Environment configuration; defaults to ``CubeConfig()``.
        obs_mode: ``"pixels"`` or ``"state"``.
        render_mode: ``None`` or ``"rgb_array"``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        config: CubeConfig | None = None,
        obs_mode: str = "pixels",
        render_mode: str | None = None,
    ) -> None:
        self.config = CubeConfig() if config is None else config
        configure_spaces(
            self, obs_mode, render_mode, self.config.image_size,
            gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32), 5,
        )  # fmt: skip
        radius = self.config.success_radius
        self.is_success = functools.partial(CubeEnv.is_success, success_radius=radius)
        self.is_success_batch = functools.partial(CubeEnv.is_success_batch, success_radius=radius)
        # The MuJoCo model is compiled on the first reset (1-3 s).
        self.sim = _OGBenchScene(
            env_type="single",
            ob_type="pixels",  # OGBench's visual-cube colours (purple gripper, see-through arm)
            width=self.config.image_size,
            height=self.config.image_size,
            terminate_at_goal=False,
            mode="data_collection",  # random arm and cube on reset, no fixed evaluation tasks
            visualize_info=False,  # no target marker, no success colouring
            pixel_transparent_arm=self.config.transparent_arm,
        )
        self._renderers: dict[int, Any] = {}
        self._renderer_model: Any = None
        self._goal: np.ndarray | None = None
        self._compiled = False  # the model is compiled by the first reset

    # ----------------------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts an episode; ``options`` may set ``"state"`` and/or ``"goal"`` (env states).

        By default the arm and the cube start at random (OGBench's sampling: effector above the
        table, cube anywhere on the table with a random yaw) and the goal is a random arm pose
        with the cube resting elsewhere on the table, more than ``success_radius`` away.
        """
        super().reset(seed=seed)
        options = {} if options is None else dict(options)
        unknown = set(options) - {"state", "goal"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; known: ['goal', 'state']")
        state = options.get("state")
        goal = options.get("goal")
        state = None if state is None else self._validated(state, "state")
        goal = None if goal is None else self._validated(goal, "goal")
        self.sim.np_random = self.np_random  # OGBench's random initialization uses our seed
        self.sim.reset()
        if not self._compiled:
            self._check_layout()
            self._compiled = True
        if state is not None:
            self._restore(state)
        else:
            self._refresh()
        self.set_goal(self._sample_goal() if goal is None else goal)
        return self._observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Applies ``clip(action, -1, 1)`` for one 0.05 s control step; reward 1.0 on success."""
        if self._goal is None:
            raise RuntimeError("call reset() before step()")
        self.sim.pre_step()  # OGBench's bookkeeping: the previous qpos/qvel of ogbench_info
        self._advance(action)
        self.sim.post_step()  # OGBench's success flag
        info = self._info()
        return self._observation(), float(info["success"]), False, False, info

    def render(self) -> np.ndarray | None:
        """The current frame at ``image_size`` if ``render_mode == "rgb_array"``, else None."""
        if self.render_mode != "rgb_array" or self._goal is None:
            return None
        return self._render_current(self.config.image_size)

    def close(self) -> None:
        """Releases the renderers (their GL contexts)."""
        for renderer in self._renderers.values():
            renderer.close()
            _OPEN_RENDERERS.discard(renderer)
        self._renderers.clear()
        super().close()

    # ------------------------------------------------------------------------ state access
    def get_state(self) -> np.ndarray:
        """The full MuJoCo state, float64 (69,) copy (layout in the module docstring)."""
        if self._goal is None:
            raise RuntimeError("call reset() before get_state()")
        return self._read_state()

    def set_state(self, state: np.ndarray) -> None:
        """Restores a state from ``get_state``; ValueError for a bad shape or non-finite values."""
        if self._goal is None:
            raise RuntimeError("call reset() before set_state()")
        self._restore(self._validated(state, "state"))

    @property
    def goal_state(self) -> np.ndarray:
        """The goal state, float64 (69,) copy."""
        if self._goal is None:
            raise RuntimeError("call reset() before goal_state")
        return self._goal.copy()

    def set_goal(self, goal: np.ndarray) -> None:
        """Sets the goal state (same validation as ``set_state``); moves the hidden marker."""
        if not self._compiled:
            raise RuntimeError("call reset() before set_goal()")
        goal = self._validated(goal, "goal")
        mocap = self.sim.model.body("object_target_0").mocapid[0]
        self.sim.data.mocap_pos[mocap] = goal[CUBE_POS]
        self.sim.data.mocap_quat[mocap] = goal[CUBE_QUAT]
        self._goal = goal

    def render_state(self, state: np.ndarray, size: int | None = None) -> np.ndarray:
        """Renders the scene at ``state`` (goal not drawn), uint8 (size, size, 3).

        The current episode is left untouched (its state is saved and restored).
        """
        if self._goal is None:
            raise RuntimeError("call reset() before render_state()")
        state = self._validated(state, "state")
        size = self.config.image_size if size is None else int(size)
        if not 16 <= size <= 1024:
            raise ValueError(f"size must be in [16, 1024], got {size}")
        saved = self._read_state()
        try:
            self._restore(state)
            return self._render_current(size)
        finally:
            self._restore(saved)

    def ogbench_info(self) -> dict[str, Any]:
        """OGBench's observation-info dict at the current state (as its scripted oracles read).

        Effector pose, gripper opening and contact, cube pose (``privileged/block_0_*``) and
        OGBench's target (``privileged/target_block_*``, here the goal's cube).
        """
        if self._goal is None:
            raise RuntimeError("call reset() before ogbench_info()")
        return self.sim.compute_ob_info()

    @staticmethod
    def is_success(
        state: np.ndarray, goal: np.ndarray, success_radius: float = SUCCESS_RADIUS
    ) -> bool:
        """Whether the cube of ``state`` is within ``success_radius`` of the cube of ``goal``.

        On an instance the radius defaults to that instance's ``config.success_radius``.
        """
        state, goal = np.asarray(state), np.asarray(goal)
        if state.shape != (STATE_DIM,) or goal.shape != (STATE_DIM,):
            raise ValueError(
                f"state and goal must have shape ({STATE_DIM},), got {state.shape}, {goal.shape}"
            )
        distance = np.linalg.norm(cube_position(state) - cube_position(goal))
        return bool(distance <= success_radius)

    @staticmethod
    def is_success_batch(
        states: np.ndarray, goals: np.ndarray, success_radius: float = SUCCESS_RADIUS
    ) -> np.ndarray:
        """Vectorized ``is_success`` over (..., 69) arrays (broadcast); returns bool (...)."""
        distance = np.linalg.norm(cube_position(states) - cube_position(goals), axis=-1)
        return distance <= success_radius

    # ---------------------------------------------------------------------------- helpers
    def _validated(self, value: np.ndarray, name: str) -> np.ndarray:
        state = np.array(value, dtype=np.float64)  # copy: never alias the caller's array
        if state.shape != (STATE_DIM,):
            raise ValueError(f"{name} must have shape ({STATE_DIM},), got {state.shape}")
        if not np.all(np.isfinite(state)):
            raise ValueError(f"{name} must be finite, got non-finite entries")
        if not np.linalg.norm(state[CUBE_QUAT]) > 1e-6:
            raise ValueError(f"{name} has a zero cube quaternion (entries {CUBE_QUAT})")
        return state

    def _check_layout(self) -> None:
        """Checks that the compiled OGBench model matches the state layout constants."""
        model = self.sim.model
        cube_address = int(model.jnt_qposadr[model.joint("object_joint_0").id])
        size = mujoco.mj_stateSize(model, _STATE_SIG)
        if size != STATE_DIM or 1 + cube_address != CUBE_POS.start:
            raise RuntimeError(
                f"this ogbench version's cube scene has a state of {size} entries with the cube "
                f"at {1 + cube_address}; lewm_mpc expects {STATE_DIM} and {CUBE_POS.start} "
                "(install the versions of the 'cube' extra)"
            )

    def _read_state(self) -> np.ndarray:
        state = np.empty(STATE_DIM, dtype=np.float64)
        mujoco.mj_getState(self.sim.model, self.sim.data, state, _STATE_SIG)
        return state

    def _refresh(self) -> None:
        """Recomputes positions, contacts and contact forces from the state."""
        mujoco.mj_forward(self.sim.model, self.sim.data)
        mujoco.mj_rnePostConstraint(self.sim.model, self.sim.data)  # gripper contact force

    def _advance(self, action: np.ndarray) -> None:
        """The dynamics of ``step`` alone, as the simulator oracle steps: OGBench's control
        (differential IK) and physics, then the derived quantities at the new state; none of
        OGBench's bookkeeping, no observation or info."""
        if self._goal is None:
            raise RuntimeError("call reset() before step()")
        action = np.array(action, dtype=np.float64)
        if action.shape != (5,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be a finite array of shape (5,), got {action!r}")
        sim = self.sim
        sim.set_control(np.clip(action, -1.0, 1.0))
        mujoco.mj_step(sim.model, sim.data, nstep=sim._n_steps)
        self._refresh()  # derived quantities at the new state, as after set_state

    def _restore(self, state: np.ndarray) -> None:
        mujoco.mj_setState(self.sim.model, self.sim.data, state, _STATE_SIG)
        self._refresh()

    def _sample_goal(self) -> np.ndarray:
        """A random arm pose with the cube at rest on the table, away from the current cube."""
        start = self._read_state()
        rng = self.np_random
        try:
            self.sim.initialize_arm()  # random effector pose above the table (OGBench, IK)
            while True:
                xy = rng.uniform(*self.sim._target_sampling_bounds)
                position = np.array([xy[0], xy[1], _CUBE_Z])
                if np.linalg.norm(position - start[CUBE_POS]) > self.config.success_radius:
                    break
            quat = lie.SO3.from_z_radians(rng.uniform(0.0, 2 * np.pi)).wxyz
            cube_joint = self.sim.data.joint("object_joint_0")
            cube_joint.qpos[:3] = position
            cube_joint.qpos[3:] = quat
            self.sim.data.qvel[:] = 0.0
            self._refresh()
            return self._read_state()
        finally:
            self._restore(start)

    def _render_current(self, size: int) -> np.ndarray:
        model = self.sim.model
        if self._renderer_model is not model:  # first use, or OGBench recompiled its model
            self.close()
            self._renderer_model = model
        renderer = self._renderers.get(size)
        if renderer is None:
            renderer = self._renderers[size] = _fast_renderer(model, size)
        renderer.update_scene(self.sim.data, camera=CAMERA, scene_option=self.sim._scene_option)
        return renderer.render()  # a fresh array

    def _observation(self) -> np.ndarray:
        if self.obs_mode == "pixels":
            return self._render_current(self.config.image_size)
        return self._read_state().astype(np.float32)

    def _info(self) -> dict[str, Any]:
        state = self._read_state()
        cube, goal_cube = state[CUBE_POS], self._goal[CUBE_POS]
        distance = float(np.linalg.norm(cube - goal_cube))
        return {
            "state": state,
            "goal": self._goal.copy(),
            "success": distance <= self.config.success_radius,
            "distance": distance,
            "cube_pos": cube.copy(),
            "goal_pos": goal_cube.copy(),
            "effector_pos": self.sim.data.site_xpos[self.sim._pinch_site_id].copy(),
        }


# ------------------------------------------------------------- EnvSpec module contract
SPEC = ENV_SPECS["cube"]  # the registry in lewm_mpc.envs is the single source


def make_env(
    obs_mode: str = "pixels", env_config: Mapping[str, Any] | None = None, **kwargs: Any
) -> gym.Env:
    """``gym.make`` of Cube with optional config-field overrides (see ``EnvSpec``)."""
    try:
        config = CubeConfig(**env_config) if env_config else None
    except TypeError as error:
        raise ValueError(f"invalid Cube env_config {dict(env_config or {})}: {error}") from None
    return gym.make(SPEC.gym_id, obs_mode=obs_mode, config=config, **kwargs)


def make_expert(env: gym.Env) -> Any:
    """OGBench's noisy pick-and-place oracle (a ``Policy``) driving ``env``."""
    from lewm_mpc.envs.cube_expert import CubeExpert

    return CubeExpert(env.unwrapped)


def is_success(state: np.ndarray, goal: np.ndarray) -> bool:
    """Cube within the default success radius (0.04 m) of the goal's cube."""
    return CubeEnv.is_success(state, goal)


def goal_features(states: np.ndarray) -> np.ndarray:
    """Task features of (..., 69) states: the cube position over the default success radius
    (0.04 m), float64 (..., 3), so that a feature distance of at most 1 is a success."""
    return cube_position(states) / SUCCESS_RADIUS
