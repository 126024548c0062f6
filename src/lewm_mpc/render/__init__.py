"""Rendering MPC episodes to mp4/GIF: the executed frames beside the goal, the imagined plan
(predicted latents decoded by a probe and projected to pixels), guardrail regions and the
energy terms over time.

    frames = render_episode(episode, probe, view_for_env(env), regions=[RegionBox(low, high)])
    write_video("episode.mp4", frames)
    write_video("episode.gif", frames)

Modules: :mod:`.draw` (primitives), :mod:`.overlay` (plan, path and regions), :mod:`.strip`
(energy strip), :mod:`.layout` (frames and tiling), :mod:`.video` (writers), :mod:`.episode`
(the episode renderer). World -> pixel views come from each env's definition
(:mod:`lewm_mpc.envs.views`, :func:`lewm_mpc.envs.view_for_env`).
"""

from lewm_mpc.envs import view_for_env
from lewm_mpc.envs.views import PinholeView, PlanarView, ScaledView, View
from lewm_mpc.render.draw import Painter, upscale
from lewm_mpc.render.episode import display_frames, render_episode
from lewm_mpc.render.layout import side_by_side, tile_videos
from lewm_mpc.render.overlay import RegionBox, probe_plan
from lewm_mpc.render.strip import EnergySeries, EnergyStrip
from lewm_mpc.render.video import check_video_path, write_episode_video, write_video

__all__ = [
    "EnergySeries",
    "EnergyStrip",
    "Painter",
    "PinholeView",
    "PlanarView",
    "RegionBox",
    "ScaledView",
    "View",
    "check_video_path",
    "display_frames",
    "probe_plan",
    "render_episode",
    "side_by_side",
    "tile_videos",
    "upscale",
    "view_for_env",
    "write_episode_video",
    "write_video",
]
