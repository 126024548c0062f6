"""Render an MPC :class:`~lewm_mpc.control.Episode` to video frames.

Each frame shows the executed observation (upscaled) beside the goal image; on the executed
frame, the plan in force at that step (each plan's predicted latents decoded by a probe and
projected to pixels, fading into the future), the executed path so far and guardrail regions;
below, a strip of every plan's energy terms over env steps and the success flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lewm_mpc.control import Episode
from lewm_mpc.envs.views import View
from lewm_mpc.render.draw import Painter, upscale
from lewm_mpc.render.layout import (
    BACKGROUND_RGB,
    BORDER,
    PENDING_RGB,
    SUCCESS_RGB,
    framed,
    pad_to_multiple,
)
from lewm_mpc.render.overlay import (
    LatentMap,
    RegionBox,
    draw_path,
    draw_region,
    draw_subgoal,
    draw_trail,
    probe_plan,
)
from lewm_mpc.render.strip import EnergySeries, EnergyStrip

HEADER = 18  # px of the caption row above the panels
STROKE_SIZE = 64  # px: plan strokes are sized as on a frame of this side upscaled by ``scale``


def _images(value: np.ndarray, name: str) -> np.ndarray:
    value = np.asarray(value)
    if value.ndim != 4 or value.shape[-1] != 3 or value.dtype != np.uint8:
        raise ValueError(
            f"{name} must be uint8 images (T, H, W, 3), got {value.dtype} {value.shape}; pass "
            "frames= (e.g. env.unwrapped.render_state(s) per state) for a state-observation episode"
        )
    return value


def plan_index(plan_steps: Sequence[int], step: int) -> int:
    """Index of the plan in force at env ``step`` (the last made at or before it); -1: none."""
    return int(np.searchsorted(np.asarray(plan_steps), step, side="right")) - 1


def render_episode(
    episode: Episode,
    probe: LatentMap | None = None,
    view: View | None = None,
    *,
    frames: np.ndarray | None = None,
    goal_frame: np.ndarray | None = None,
    regions: Sequence[RegionBox] = (),
    executed: np.ndarray | None = None,
    title: str = "",
    scale: int = 4,
    strip_height: int = 96,
) -> np.ndarray:
    """Compose one video frame per observation of an episode.

    Args:
        episode: the episode (``run_episode`` / ``run_pair`` output).
        probe: latent (..., D) -> quantity (..., P) map (e.g. a fitted :class:`~lewm_mpc.Probe`);
            with ``view``, the imagined plan is drawn. None: no plan overlay.
        view: quantity -> observation pixels (:func:`~lewm_mpc.render.view_for_env`).
        frames: (T + 1, H, W, 3) uint8 images to draw on; default ``episode.observations``
            (which must then be images).
        goal_frame: (H, W, 3) goal image; default ``episode.goal``.
        regions: guardrail boxes to draw (in the probed quantity's coordinates); needs ``view``.
        executed: (T + 1, P) true quantity per observation (e.g. the recipe's probe target of
            ``episode.states``), drawn as the executed path; needs ``view``.
        title: caption above the executed frame (the step counter is appended).
        scale: integer upscaling of the frames (and of the view's pixels). Plan strokes grow
            with the drawn side (``scale`` x frame side / 64), so frames rendered at a display
            size (:func:`display_frames`, with a :class:`~lewm_mpc.envs.views.ScaledView`)
            look like upscaled 64 px observations, only sharper.
        strip_height: height of the energy strip in px (0: no strip).

    Returns:
        (T + 1, H', W', 3) uint8 frames; H' and W' are multiples of 16. The executed panel's
        top-left pixel is at (HEADER + BORDER, BORDER).
    """
    frames = _images(episode.observations if frames is None else frames, "frames")
    goal = np.asarray(episode.goal if goal_frame is None else goal_frame)
    if goal.shape != frames.shape[1:]:
        raise ValueError(f"goal image {goal.shape} differs from the frames {frames.shape[1:]}")
    steps = len(episode.success)
    if len(frames) != steps:
        raise ValueError(f"{len(frames)} frames for {steps} observations")
    if probe is not None and view is None:
        raise ValueError("drawing the plan needs a view as well as the probe")
    if (regions or executed is not None) and view is None:
        raise ValueError("regions and the executed path need a view")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an int >= 1, got {scale!r}")
    plan_pixels = _plan_pixels(episode, probe, view)  # per plan (H+1, K, 2), or None
    subgoal_pixels = _subgoal_pixels(episode, probe, view)  # per plan (K, 2) or None
    stroke = scale * frames.shape[1] / STROKE_SIZE
    trail = None if executed is None or view is None else view(np.asarray(executed))  # (T+1,K,2)
    if trail is not None and len(trail) != steps:
        raise ValueError(f"executed has {len(trail)} rows for {steps} observations")

    goal_panel = framed(upscale(goal, scale), PENDING_RGB)
    panel_width = 2 * goal_panel.shape[1]
    strip = (
        EnergyStrip(EnergySeries.from_episode(episode), panel_width, strip_height)
        if strip_height > 0 and episode.plans
        else None
    )
    reached = np.maximum.accumulate(np.asarray(episode.success, dtype=bool))
    out = []
    for t in range(steps):
        painter = Painter(upscale(frames[t], scale))
        for box in regions:
            draw_region(painter, box, view, scale)  # type: ignore[arg-type]
        if trail is not None:
            draw_trail(painter, trail[: t + 1], scale)
        index = plan_index(episode.plan_steps, t)
        if plan_pixels is not None and index >= 0:
            draw_path(painter, plan_pixels[index], scale, stroke=stroke)
            subgoal = subgoal_pixels[index] if subgoal_pixels is not None else None
            if subgoal is not None:  # a hierarchical plan heading for a subgoal
                draw_subgoal(painter, subgoal, scale, stroke)
        left = framed(painter.image(), SUCCESS_RGB if reached[t] else PENDING_RGB)
        rows = [_header(title, t, steps - 1, left.shape[1]), np.concatenate([left, goal_panel], 1)]
        if strip is not None:
            rows.append(strip.render(t))
        out.append(pad_to_multiple(np.concatenate(rows, axis=0)))
    return np.stack(out)  # (T+1, H', W', 3)


def display_frames(env: Any, states: np.ndarray, size: int) -> np.ndarray:
    """Frames of env states for a video, rendered by the env at ``size`` px.

    The env draws each state afresh at the display size (``render_display``, which may brighten
    a dark scene; else ``render_state``), whatever size its observations (the model's input)
    have. Pair them with ``ScaledView(view_for_env(env), size / image_size)``.

    Args:
        env: a started :class:`~lewm_mpc.envs.base.GoalEnv` (or a wrapper of one).
        states: (N, Ds) env states (e.g. ``episode.states``).
        size: side of the frames in px (16 to 1024).

    Returns:
        (N, size, size, 3) uint8 frames.
    """
    unwrapped = env.unwrapped
    draw = getattr(unwrapped, "render_display", None) or unwrapped.render_state
    return np.stack([draw(state, size) for state in np.asarray(states)])


def _plan_pixels(
    episode: Episode, probe: LatentMap | None, view: View | None
) -> list[np.ndarray] | None:
    if probe is None or view is None or not episode.plans:
        return None
    latents = [np.asarray(plan.latents) for plan in episode.plans]
    if any(z.ndim != 2 for z in latents):
        raise ValueError("plans must be unbatched, with latents (H + 1, D)")
    stacked = np.concatenate(latents)  # (sum of H+1, D)
    pixels = view(probe_plan(probe, stacked))  # (sum of H+1, K, 2)
    return np.split(pixels, np.cumsum([len(z) for z in latents])[:-1])


def _subgoal_pixels(
    episode: Episode, probe: LatentMap | None, view: View | None
) -> list[np.ndarray | None] | None:
    """Per plan, the pixels (K, 2) of the subgoal a hierarchical plan headed for (None where it
    targeted the goal itself, or for other planners)."""
    if probe is None or view is None or not episode.plans:
        return None
    pixels: list[np.ndarray | None] = []
    for plan in episode.plans:
        subgoal = getattr(plan, "subgoal", None)
        if subgoal is None or getattr(plan, "direct", True):
            pixels.append(None)
        else:
            pixels.append(view(probe_plan(probe, np.asarray(subgoal)[None]))[0])  # (K, 2)
    return pixels if any(p is not None for p in pixels) else None


def _header(title: str, step: int, last: int, panel_width: int) -> np.ndarray:
    image = np.empty((HEADER, 2 * panel_width, 3), dtype=np.uint8)
    image[:] = BACKGROUND_RGB
    painter = Painter(image)
    caption = f"{title}  step {step}/{last}" if title else f"step {step}/{last}"
    painter.text((BORDER, 2), caption, (30, 30, 30), 12)
    painter.text((panel_width + BORDER, 2), "goal", (30, 30, 30), 12)
    return painter.image()
