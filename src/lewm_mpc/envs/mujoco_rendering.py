"""What the MuJoCo envs share: the fast offscreen renderer and a joint-state env base.

``mujoco.Renderer`` with no multisampling, shadows, reflections or skybox is 3-15x faster on the
software renderer than the default settings; :func:`simplify_meshes` coarsens detailed meshes for
rendering (the simulation unchanged). :class:`FastRenderers` keeps one renderer per image
size for a model, and frees the GL contexts of envs never closed before the GL backend's own exit
hook runs (``__del__`` at interpreter teardown raises EGL errors otherwise).
:class:`JointStateEnv` is the base of the dm_control envs whose state is ``[qpos, qvel]``.
"""

from __future__ import annotations

import atexit
import os
import sys
import weakref
from typing import Any, ClassVar

import numpy as np

if sys.platform.startswith("linux") and not (
    os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
):
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless: must be set before mujoco is imported

import mujoco

from lewm_mpc.envs.base import ConfigT, GoalEnv

_HIDDEN_GROUP = 5  # geom group switched off in the scene options (hidden geoms go there)
_OPEN: weakref.WeakSet[FastRenderers] = weakref.WeakSet()


def _close_all() -> None:
    for renderers in list(_OPEN):
        renderers.close()


class FastRenderers:
    """One fast ``mujoco.Renderer`` per image size for a MuJoCo model, created on first use.

    Args:
        model: the ``mujoco.MjModel`` to draw (None: the model given to the first ``render``).
    """

    def __init__(self, model: mujoco.MjModel | None = None) -> None:
        self.model = model
        self._renderers: dict[int, mujoco.Renderer] = {}

    def render(
        self, data: mujoco.MjData, size: int, camera: str | int,
        scene_option: mujoco.MjvOption | None = None, model: mujoco.MjModel | None = None,
    ) -> Any:  # fmt: skip
        """A fresh uint8 (size, size, 3) frame of ``data`` seen from ``camera``.

        ``model``: the model ``data`` belongs to, when it may have been recompiled since the
        last call (the renderers of the old one are freed).
        """
        if model is not None and model is not self.model:
            self.close()
            self.model = model
        renderer = self._renderer(size)
        renderer.update_scene(data, camera=camera, scene_option=scene_option)
        return renderer.render()  # a fresh array each call

    def close(self) -> None:
        """Frees the GL contexts (renderers are recreated on the next ``render``)."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        _OPEN.discard(self)

    def _renderer(self, size: int) -> mujoco.Renderer:
        renderer = self._renderers.get(size)
        if renderer is None:
            if size < 1:
                raise ValueError(f"size must be >= 1, got {size}")
            self.model.vis.quality.offsamples = 0
            visual = self.model.vis.global_
            visual.offwidth = max(int(visual.offwidth), size)
            visual.offheight = max(int(visual.offheight), size)
            renderer = mujoco.Renderer(self.model, height=size, width=size)
            for flag in ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX"):
                renderer.scene.flags[getattr(mujoco.mjtRndFlag, flag)] = False
            self._renderers[size] = renderer
            if not _OPEN:  # registered after the GL backend's own exit hook: runs before it
                atexit.unregister(_close_all)
                atexit.register(_close_all)
            _OPEN.add(self)
        return renderer


def simplify_meshes(model: mujoco.MjModel, cell: float) -> tuple[int, int]:
    """Coarsen every mesh's triangles in place for rendering, by vertex clustering.

    The mesh's vertices are binned into cubes of side ``cell`` (m, in the mesh's frame); each
    triangle is redrawn between its corners' bins (one existing vertex stands for each bin) and
    triangles that collapse are dropped. Only the triangle list shrinks: vertices, normals,
    convex hulls (what collisions use), masses and inertias are untouched, so the simulation
    steps exactly as before. What changes is the picture: on a software renderer, drawing costs
    time per triangle, and detailed robot meshes (OGBench's UR5e: 185k triangles) dominate a
    small frame's cost. Ray casts (``mj_ray``) against mesh geoms see the coarse triangles.

    Renderers (GL contexts) made for ``model`` before this call keep the detailed meshes; make
    them afterwards. Calling it again with the same ``cell`` changes nothing.

    Args:
        model: the compiled model, changed in place.
        cell: bin side in metres, > 0.

    Returns:
        Triangles before and after, over all meshes.
    """
    if not (np.isfinite(cell) and cell > 0):
        raise ValueError(f"cell must be a finite length > 0 (m), got {cell!r}")
    before = after = 0
    for mesh in range(model.nmesh):
        vertices = slice(
            model.mesh_vertadr[mesh], model.mesh_vertadr[mesh] + model.mesh_vertnum[mesh]
        )
        first, count = int(model.mesh_faceadr[mesh]), int(model.mesh_facenum[mesh])
        faces = model.mesh_face[first : first + count].copy()  # (F, 3) mesh-local vertex ids
        normals = model.mesh_facenormal[first : first + count].copy()  # (F, 3) normal ids
        bins = np.floor(model.mesh_vert[vertices] / cell).astype(np.int64)  # (V, 3)
        _, representative, bin_of = np.unique(bins, axis=0, return_index=True, return_inverse=True)
        stand_in = representative[bin_of.reshape(-1)]  # (V,) vertex -> its bin's vertex
        coarse = stand_in[faces]  # (F, 3)
        whole = ((coarse[:, 0] != coarse[:, 1]) & (coarse[:, 1] != coarse[:, 2])
                 & (coarse[:, 0] != coarse[:, 2]))  # fmt: skip
        coarse = coarse[whole]
        _, distinct = np.unique(np.sort(coarse, axis=1), axis=0, return_index=True)
        coarse = coarse[np.sort(distinct)]  # each triangle once, in the original order
        normal_of = np.zeros(len(bins), np.int32)  # a corner's normal id, from any face using it
        normal_of[faces.reshape(-1)] = normals.reshape(-1)
        model.mesh_face[first : first + len(coarse)] = coarse
        model.mesh_facenormal[first : first + len(coarse)] = normal_of[coarse]
        if model.mesh_texcoordnum[mesh]:
            texcoord_of = np.zeros(len(bins), np.int32)
            texcoords = model.mesh_facetexcoord[first : first + count].copy()
            texcoord_of[faces.reshape(-1)] = texcoords.reshape(-1)
            model.mesh_facetexcoord[first : first + len(coarse)] = texcoord_of[coarse]
        model.mesh_facenum[mesh] = len(coarse)
        before, after = before + count, after + len(coarse)
    return before, after


class JointStateEnv(GoalEnv[ConfigT]):
    """A :class:`GoalEnv` over a MuJoCo model whose state is ``[qpos, qvel]`` (hinge and slide
    joints), stepped ``config.frame_skip`` times per env step with the action as ``ctrl``.

    Solver warm starts are disabled, so the next state is a pure function of (state, action) and
    ``set_state`` reproduces a trajectory exactly. Frames come from ``camera`` through a separate
    ``MjData`` (the episode is never disturbed), with the geoms named in ``hidden_geoms`` hidden.

    Args:
        model: the compiled model.
        config, obs_mode, render_mode: as for :class:`GoalEnv`.
    """

    camera: ClassVar[str]
    hidden_geoms: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: mujoco.MjModel, config: ConfigT | None, obs_mode: str,
                 render_mode: str | None) -> None:  # fmt: skip
        super().__init__(config, obs_mode, render_mode)
        model.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_WARMSTART)
        for name in self.hidden_geoms:
            model.geom_group[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)] = (
                _HIDDEN_GROUP
            )
        self.model = model
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.dt)}
        self._data = mujoco.MjData(model)  # the simulation
        self._render_data = mujoco.MjData(model)  # posed by render_state only
        self._scene_option = mujoco.MjvOption()
        self._scene_option.geomgroup[_HIDDEN_GROUP] = 0
        self._renderers = FastRenderers(model)

    @property
    def dt(self) -> float:
        """Seconds of simulated time per env step."""
        return self.config.frame_skip * float(self.model.opt.timestep)  # type: ignore[attr-defined]

    def close(self) -> None:
        """Frees the renderers' GL contexts."""
        self._renderers.close()
        super().close()

    def _write_state(self, state: np.ndarray) -> None:
        mujoco.mj_resetData(self.model, self._data)
        self._data.qpos[:] = state[: self.model.nq]
        self._data.qvel[:] = state[self.model.nq :]

    def _read_state(self) -> np.ndarray:
        return np.concatenate([self._data.qpos, self._data.qvel])

    def _physics_step(self, action: np.ndarray) -> None:
        self._data.ctrl[:] = action
        mujoco.mj_step(self.model, self._data, nstep=self.config.frame_skip)  # type: ignore[attr-defined]

    def _draw(self, state: np.ndarray, size: int) -> np.ndarray:
        data = self._render_data
        data.qpos[:] = state[: self.model.nq]
        data.qvel[:] = state[self.model.nq :]
        mujoco.mj_forward(self.model, data)  # body, camera and light poses
        return self._renderers.render(data, size, self.camera, self._scene_option)
