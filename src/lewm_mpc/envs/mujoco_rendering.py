"""The fast offscreen MuJoCo renderer every MuJoCo env shares.

``mujoco.Renderer`` with no multisampling, shadows, reflections or skybox is 3-15x faster on the
software renderer than the default settings. :class:`FastRenderers` keeps one renderer per image
size for a model, and frees the GL contexts of envs never closed before the GL backend's own exit
hook runs (``__del__`` at interpreter teardown raises EGL errors otherwise).
"""

from __future__ import annotations

import atexit
import os
import sys
import weakref
from typing import Any

if sys.platform.startswith("linux") and not (
    os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
):
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless: must be set before mujoco is imported

import mujoco

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
