"""Cube: OGBench's single-cube pick-and-place scene (UR5e arm + Robotiq 2F-85 gripper).

OGBench's ``CubeEnv`` (``cube-single``), used by composition, owns the MuJoCo scene, the 5-d
end-effector action (dx, dy, dz, dyaw, gripper in [-1, 1], scaled by (0.05 m, 0.05 m, 0.05 m,
0.3 rad, 1.0), turned into joint targets by differential IK) and the 0.05 s control step. This
module adds full-state goals, exact state save/restore, the fast renderer and the success test (cube
within ``success_radius``, OGBench's 0.04 m, of the goal cube). The state is MuJoCo's own
(``mj_getState``: ``[time | qpos | qvel | act | history | qacc_warmstart | ctrl]``), so a restored
state steps bit-for-bit like the original; OGBench's controller keeps no state between steps and
its target marker (invisible) only mirrors the goal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lewm_mpc.envs.base import GoalEnv
from lewm_mpc.envs.spec import EnvDefinition, EnvRecipe, ProbeTarget
from lewm_mpc.envs.views import PinholeView

try:
    import mujoco
    from ogbench.manipspace import lie
    from ogbench.manipspace.envs.cube_env import CubeEnv as _OGBenchCubeEnv

    from lewm_mpc.envs.mujoco_rendering import (  # sets MUJOCO_GL when headless
        FastRenderers,
        simplify_meshes,
    )
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"Cube needs mujoco and ogbench ({error}): pip install 'lewm-mpc[cube]'"
    ) from None

SUCCESS_RADIUS = 0.04  # OGBench: cube within 4 cm of its target
CAMERA = "front_pixels"  # OGBench's camera for its visual-cube tasks
ACTION_SCALE = (0.05, 0.05, 0.05, 0.3, 1.0)  # OGBench: action 1.0 -> metres, radians, opening
# mj_getState components (MuJoCo orders them: time, qpos, qvel, act, history, warm start, ctrl).
_STATE_SIG = sum(
    int(getattr(mujoco.mjtState, f"mjSTATE_{part}"))
    for part in ("TIME", "QPOS", "QVEL", "ACT", "HISTORY", "WARMSTART", "CTRL")
)
STATE_DIM = 69  # time 1, qpos 21 (arm 6, gripper 8, cube 7), qvel 20, warm start 20, ctrl 7
CUBE_POS = slice(15, 18)  # cube xyz in the state: time (1) + arm and gripper qpos (14)
CUBE_QUAT = slice(18, 22)  # cube orientation (w, x, y, z)
_CUBE_Z = 0.02  # cube half-size: resting on the table
# Videos only (render_display): a brighter headlight (OGBench's: ambient 0.1, diffuse 0.6) and a
# gamma lift of the dark table. Observations keep OGBench's look, which the models were trained on.
DISPLAY_HEADLIGHT = (0.4, 0.8)  # ambient, diffuse
_DISPLAY_GAMMA = np.rint(255.0 * (np.arange(256) / 255.0) ** 0.7).astype(np.uint8)  # lookup table


@dataclass(frozen=True)
class CubeConfig:
    """Rendering and success settings of the Cube environment.

    Attributes:
        image_size: Side of the square pixel observation.
        success_radius: Success when the cube-goal distance (m) is at most this.
        transparent_arm: Draw the arm nearly transparent (OGBench's visual-cube look), so the
            cube stays visible under it.
        mesh_cell: 0 draws the arm's meshes as they are; a length in metres (at most 0.05)
            draws them coarsened to that resolution (:func:`simplify_meshes`), which makes a
            frame several times cheaper on a software renderer (0.005: 64 px frames 5x faster,
            0.45 of 255 intensity levels off on average). The simulation is the same; the
            frames are not, so a model must be trained and evaluated with one setting.
    """

    image_size: int = 64
    success_radius: float = SUCCESS_RADIUS
    transparent_arm: bool = True
    mesh_cell: float = 0.0

    def __post_init__(self) -> None:
        size = self.image_size
        if type(size) is not int or not 16 <= size <= 1024:
            raise ValueError(f"image_size must be an int in [16, 1024], got {size!r}")
        if not (np.isfinite(self.success_radius) and self.success_radius > 0):
            raise ValueError(f"success_radius must be finite and > 0, got {self.success_radius!r}")
        if not isinstance(self.transparent_arm, bool):
            raise ValueError(f"transparent_arm must be a bool, got {self.transparent_arm!r}")
        cell = self.mesh_cell
        if isinstance(cell, bool) or not isinstance(cell, int | float) or not 0 <= cell <= 0.05:
            raise ValueError(f"mesh_cell must be 0 or a length in (0, 0.05] m, got {cell!r}")


def cube_position(state: np.ndarray) -> np.ndarray:
    """The cube's xyz (m) in a state (or a batch of states (..., STATE_DIM)), float64 (..., 3)."""
    state = np.asarray(state, dtype=np.float64)
    if state.shape[-1:] != (STATE_DIM,):
        raise ValueError(f"a Cube state has {STATE_DIM} entries, got shape {state.shape}")
    return state[..., CUBE_POS].copy()


class _OGBenchScene(_OGBenchCubeEnv):
    """OGBench's cube scene without its (slow) observation rendering in ``reset`` and ``step``."""

    def compute_observation(self) -> None:
        return None


class CubeEnv(GoalEnv[CubeConfig]):
    """Move a cube to a goal position with a UR5e arm (OGBench cube-single; a :class:`GoalEnv`).

    Frames come from OGBench's ``front_pixels`` camera; the state observation is the env state
    itself as float32 (69,). The goal is a full env state (arm and cube); only its cube position
    matters for success. The MuJoCo model is compiled on the first reset (1-3 s).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}  # noqa: RUF012
    name = "cube"
    config_class = CubeConfig
    state_dim = STATE_DIM
    action_dim = 5

    def __init__(self, config: CubeConfig | None = None, obs_mode: str = "pixels",
                 render_mode: str | None = None) -> None:  # fmt: skip
        super().__init__(config, obs_mode, render_mode)
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
        self._renderers = FastRenderers()  # for the model compiled by the first reset
        self._compiled = False  # the model is compiled by the first reset
        self._coarsened: mujoco.MjModel | None = None  # the model simplify_meshes changed

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One 0.05 s control step, with OGBench's bookkeeping (what its oracles read)."""
        self._require_started("step()")
        self.sim.pre_step()  # the previous qpos/qvel of ogbench_info
        result = super().step(action)
        self.sim.post_step()  # OGBench's success flag
        return result

    def close(self) -> None:
        """Releases the renderers (their GL contexts)."""
        self._renderers.close()
        super().close()

    def ogbench_info(self) -> dict[str, Any]:
        """OGBench's observation-info dict (effector, gripper, cube pose, target = the goal's
        cube) at the current state, as its scripted oracles read it."""
        self._require_started("ogbench_info()")
        return self.sim.compute_ob_info()

    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        """OGBench's random start (drawn by ``reset``): effector above the table, cube on it."""
        self._refresh()
        return self._read_state()

    def sample_goal(self, rng: np.random.Generator, start: np.ndarray) -> np.ndarray:
        """A random arm pose with the cube at rest on the table, more than ``success_radius``
        from the start's cube."""
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
            self._write_state(start)

    @classmethod
    def goal_error(cls, states: np.ndarray, goals: np.ndarray, config: CubeConfig) -> np.ndarray:
        """Cube-goal distance (...,), m."""
        return np.linalg.norm(cube_position(states) - cube_position(goals), axis=-1)

    @classmethod
    def success_mask(cls, states: np.ndarray, goals: np.ndarray, config: CubeConfig) -> np.ndarray:
        """Cube within ``config.success_radius`` of the goal's cube (OGBench's test)."""
        return cls.goal_error(states, goals, config) <= config.success_radius

    def _coerce_state(self, state: np.ndarray, name: str) -> np.ndarray:
        state = super()._coerce_state(state, name)
        if not np.linalg.norm(state[CUBE_QUAT]) > 1e-6:
            raise ValueError(f"{name} has a zero cube quaternion (entries {CUBE_QUAT})")
        return state

    def _begin_episode(self) -> None:
        self.sim.np_random = self.np_random  # OGBench's random initialization uses our seed
        self.sim.reset()
        if not self._compiled:
            self._check_layout()
            self._compiled = True
        if self.config.mesh_cell and self._coarsened is not self.sim.model:
            simplify_meshes(self.sim.model, self.config.mesh_cell)  # before any renderer of it
            self._coarsened = self.sim.model

    def _goal_changed(self) -> None:
        mocap = self.sim.model.body("object_target_0").mocapid[0]  # the hidden target marker
        self.sim.data.mocap_pos[mocap] = self._goal[CUBE_POS]
        self.sim.data.mocap_quat[mocap] = self._goal[CUBE_QUAT]

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

    def _write_state(self, state: np.ndarray) -> None:
        mujoco.mj_setState(self.sim.model, self.sim.data, state, _STATE_SIG)
        self._refresh()

    def _refresh(self) -> None:
        """Recomputes positions, contacts and contact forces from the state."""
        mujoco.mj_forward(self.sim.model, self.sim.data)
        mujoco.mj_rnePostConstraint(self.sim.model, self.sim.data)  # gripper contact force

    def _physics_step(self, action: np.ndarray) -> None:
        """OGBench's control (differential IK) and physics, then the derived quantities at the
        new state (as after ``set_state``); none of OGBench's bookkeeping."""
        self.sim.set_control(action)
        mujoco.mj_step(self.sim.model, self.sim.data, nstep=self.sim._n_steps)
        self._refresh()

    def _draw(self, state: np.ndarray, size: int) -> np.ndarray:
        saved = self._read_state()
        try:
            self._write_state(state)
            sim = self.sim
            return self._renderers.render(sim.data, size, CAMERA, sim._scene_option, sim.model)
        finally:
            if not np.array_equal(saved, state):
                self._write_state(saved)

    def render_display(self, state: np.ndarray, size: int | None = None) -> np.ndarray:
        """``render_state`` under a brighter headlight, with the dark table lifted (gamma 0.7):
        the same camera, for videos; observations are unchanged."""
        self._require_started("render_display()")
        headlight = self.sim.model.vis.headlight
        saved = headlight.ambient.copy(), headlight.diffuse.copy()
        headlight.ambient[:], headlight.diffuse[:] = DISPLAY_HEADLIGHT
        try:
            frame = self.render_state(state, size)
        finally:
            headlight.ambient[:], headlight.diffuse[:] = saved
        return _DISPLAY_GAMMA[frame]

    def _extra_info(self, state: np.ndarray) -> dict[str, Any]:
        return {
            "cube_pos": state[CUBE_POS].copy(),
            "goal_pos": self._goal[CUBE_POS].copy(),
            "effector_pos": self.sim.data.site_xpos[self.sim._pinch_site_id].copy(),
        }


DEFINITION = EnvDefinition(
    env_class=CubeEnv,
    experts={
        "ogbench": "lewm_mpc.envs.cube_expert:CubeExpert.from_env",
        "ogbench-lewm": "lewm_mpc.envs.cube_expert:CubeExpert.lewm",
    },
    goal_features=lambda states: cube_position(states) / SUCCESS_RADIUS,
    probe=ProbeTarget("cube xyz", cube_position),
    view=lambda env: PinholeView.from_mujoco(env.sim.model, CAMERA, env.config.image_size),
    # Rendering-bound: few regenerated episodes, with only their kept frames rendered.
    recipe=EnvRecipe(
        episodes=100,
        episode_steps=200,
        workers=2,
        regenerated_episodes=10,
        regenerate_in_blocks=True,
    ),
)
