"""Episode rendering: video files, the imagined-plan overlay, per-env projections, the CLI."""

from __future__ import annotations

import os
import stat

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import lewm_mpc as lm
from lewm_mpc.cli import build_parser, main
from lewm_mpc.control import run_episode
from lewm_mpc.envs import get_env_spec
from lewm_mpc.envs.two_room import two_room_view
from lewm_mpc.models.pretrained import ROOT_VARIABLE
from lewm_mpc.recipes import SMOKE_NOTICE, get_recipe
from lewm_mpc.render import (
    RegionBox,
    ScaledView,
    display_frames,
    render_episode,
    view_for_env,
    write_video,
)
from lewm_mpc.render.episode import HEADER
from lewm_mpc.render.layout import BORDER, MACRO_BLOCK
from lewm_mpc.render.overlay import PLAN_RGB

SCALE = 4


@pytest.fixture(scope="module")
def oracle_run():
    """A Two-Room episode planned on the simulator oracle: latents are the true states, so the
    probe selecting the agent xy columns is exact."""
    with lm.SimulatorModel(get_env_spec("tworoom")) as oracle:
        env = oracle.make_env()
        obs, info = env.reset(seed=3)
        goal = env.unwrapped.goal_state.copy()
        planner = lm.CEM(oracle, energy=oracle.energy(), num_samples=16, iterations=2, topk=4)
        episode = run_episode(env, planner, obs, info, goal, max_steps=12, stop_on_success=False)
        frames = np.stack([env.unwrapped.render_state(state) for state in episode.states])
        goal_frame = env.unwrapped.render_state(goal)
        env.close()
    return episode, frames, goal_frame


def _agent_probe() -> lm.Probe:
    return lm.Probe([torch.eye(2, dtype=torch.float64)], [torch.zeros(2, dtype=torch.float64)])


def _drawn_pixel(xy: np.ndarray) -> tuple[int, int]:
    """(row, column) in a rendered frame of the executed-panel pixel under arena point ``xy``."""
    column, row = two_room_view(64)(xy[None])[0, 0] * SCALE
    return HEADER + BORDER + int(row), BORDER + int(column)


def test_videos_have_one_frame_per_observation(oracle_run, tmp_path):
    episode, frames, goal_frame = oracle_run
    rendered = render_episode(
        episode, _agent_probe(), two_room_view(64), frames=frames, goal_frame=goal_frame,
        executed=episode.states, title="oracle",
    )  # fmt: skip
    steps = len(episode.states)
    assert rendered.shape[0] == steps and rendered.dtype == np.uint8
    assert rendered.shape[1] % 16 == 0 and rendered.shape[2] % 16 == 0
    assert rendered.shape[2] == 2 * (64 * SCALE + 2 * BORDER)  # executed | goal
    mp4 = iio.imread(write_video(tmp_path / "e.mp4", rendered, hold_last=0), index=None)
    gif = iio.imread(write_video(tmp_path / "e.gif", rendered), index=None)
    assert mp4.shape == rendered.shape and gif.shape[:3] == rendered.shape[:3]
    held = iio.imread(write_video(tmp_path / "held.mp4", rendered, hold_last=3), index=None)
    assert len(held) == steps + 3
    assert np.abs(gif[..., :3].astype(int) - rendered).mean() < 4  # palette quantization only
    with pytest.raises(ValueError, match=r"\.mp4 or \.gif"):
        write_video(tmp_path / "e.avi", rendered)
    umask = os.umask(0)
    os.umask(umask)
    for video in ("e.mp4", "e.gif"):  # the permissions datasets get: 0o666 less the umask
        assert stat.S_IMODE((tmp_path / video).stat().st_mode) == 0o666 & ~umask


def test_plan_overlay_starts_on_the_agent_and_refreshes_at_each_plan(oracle_run):
    episode, frames, goal_frame = oracle_run
    plain = render_episode(episode, frames=frames, goal_frame=goal_frame, strip_height=0)
    drawn = render_episode(
        episode, _agent_probe(), two_room_view(64), frames=frames, goal_frame=goal_frame,
        strip_height=0,
    )  # fmt: skip
    assert len(episode.plans) >= 2
    for plan, step in zip(episode.plans, episode.plan_steps, strict=True):
        assert np.allclose(plan.latents[0], episode.states[step])  # exact by construction
        row, column = _drawn_pixel(episode.states[step])
        assert tuple(plain[step, row, column]) == (220, 30, 30)  # the agent's red
        assert tuple(drawn[step, row, column]) == PLAN_RGB  # the plan's start marker on it
        later = min(step + 2, len(frames) - 1)  # between replans the same plan stays drawn
        assert tuple(drawn[later, row, column]) == PLAN_RGB


def test_a_hierarchical_plan_draws_its_subgoal(oracle_run):
    """Plans that head for a subgoal (HierarchicalResult: ``subgoal``, ``direct=False``) get an
    orange disc at the subgoal's probed position; plans aimed at the goal itself do not."""
    import dataclasses
    from types import SimpleNamespace

    from lewm_mpc.render.overlay import SUBGOAL_RGB

    episode, frames, goal_frame = oracle_run
    subgoal = np.array([0.2, 0.75])
    plans = [SimpleNamespace(**{f.name: getattr(plan, f.name) for f in dataclasses.fields(plan)},
                             subgoal=subgoal, direct=index > 0)
             for index, plan in enumerate(episode.plans)]  # fmt: skip
    drawn = render_episode(
        dataclasses.replace(episode, plans=plans), _agent_probe(), two_room_view(64),
        frames=frames, goal_frame=goal_frame, strip_height=0,
    )  # fmt: skip
    row, column = _drawn_pixel(subgoal)
    assert tuple(drawn[episode.plan_steps[0], row, column]) == SUBGOAL_RGB
    assert tuple(drawn[episode.plan_steps[1], row, column]) != SUBGOAL_RGB  # direct: no subgoal


def test_render_cli_plans_hierarchically(tmp_path, capsys):
    gif = tmp_path / "h.gif"
    argv = ["render", "--smoke", "--hierarchical", "--steps", "10", "--display-size", "64"]
    assert main([*argv, "--out", str(gif)]) == 0
    assert gif.is_file() and "video:" in capsys.readouterr().out


def test_regions_are_drawn_in_world_coordinates(oracle_run):
    episode, frames, goal_frame = oracle_run
    box = RegionBox((0.1, 0.1), (0.3, 0.3))
    drawn = render_episode(
        episode, view=two_room_view(64), frames=frames, goal_frame=goal_frame, regions=[box],
        strip_height=0,
    )  # fmt: skip
    plain = render_episode(episode, frames=frames, goal_frame=goal_frame, strip_height=0)
    inside, outside = _drawn_pixel(np.array([0.2, 0.2])), _drawn_pixel(np.array([0.2, 0.4]))
    assert not np.array_equal(drawn[0][inside], plain[0][inside])  # tinted
    assert np.array_equal(drawn[0][outside], plain[0][outside])
    with pytest.raises(ValueError, match="view"):
        render_episode(episode, _agent_probe(), frames=frames, goal_frame=goal_frame)


def _red_centroid(frame: np.ndarray) -> np.ndarray:
    rgb = frame.astype(int)
    red = (
        (rgb[..., 0] > 90) & (rgb[..., 1] < 0.45 * rgb[..., 0]) & (rgb[..., 2] < 0.6 * rgb[..., 0])
    )
    rows, columns = np.nonzero(red)
    assert len(rows) >= 8, "the cube is not visible"
    return np.array([columns.mean(), rows.mean()]) + 0.5  # pixel centres


def test_cube_projection_lands_on_the_rendered_cube():
    env = get_env_spec("cube").make(obs_mode="pixels")
    try:
        for seed in (0, 1, 3):
            obs, _ = env.reset(seed=seed)
            view = view_for_env(env)
            cube = get_recipe("cube").probe_target(env.unwrapped.get_state()[None])  # (1, 3) m
            pixel = view(cube)[0, 0]
            assert np.linalg.norm(pixel - _red_centroid(obs)) < 1.0
    finally:
        env.close()


def test_display_frames_are_rendered_at_the_display_size_and_the_plan_follows(oracle_run):
    episode, frames, _ = oracle_run
    env = get_env_spec("tworoom").make(obs_mode="pixels")
    try:
        env.reset(seed=3)
        display = display_frames(env, episode.states, 256)  # the model's frames are 64 px
        goal = display_frames(env, episode.states[-1:], 256)[0]
        view = ScaledView(view_for_env(env), 256 / env.unwrapped.image_size)
    finally:
        env.close()
    assert frames.shape[1:] == (64, 64, 3) and display.shape == (len(frames), 256, 256, 3)
    drawn = render_episode(episode, _agent_probe(), view, frames=display, goal_frame=goal,
                           scale=1, strip_height=0)  # fmt: skip
    assert drawn.shape[2] == 2 * (256 + 2 * BORDER)  # executed | goal, each 256 px wide
    for step in episode.plan_steps:  # the plan's start marker sits on the agent, at 256 px
        column, row = view(episode.states[step][None])[0, 0]
        assert tuple(display[step, int(row), int(column)]) == (220, 30, 30)  # the agent's red
        assert tuple(drawn[step, HEADER + BORDER + int(row), BORDER + int(column)]) == PLAN_RGB


def test_cube_display_is_brighter_and_the_observations_are_unchanged():
    env = get_env_spec("cube").make(obs_mode="pixels")
    try:
        for seed in (0, 3):
            obs, _ = env.reset(seed=seed)
            state = env.unwrapped.get_state()
            display = display_frames(env, state[None], 256)[0]
            assert display.shape == (256, 256, 3)
            assert display.mean() > env.unwrapped.render_state(state, 256).mean() + 15
            assert np.array_equal(env.unwrapped.render_state(state), obs)  # the model's look
            view = ScaledView(view_for_env(env), 4.0)
            pixel = view(get_recipe("cube").probe_target(state[None]))[0, 0]
            assert np.linalg.norm(pixel - _red_centroid(display)) < 5.0  # 1.25 observation px
    finally:
        env.close()


def test_reacher_projection_lands_on_the_fingertip():
    import mujoco

    env = get_env_spec("reacher").make(obs_mode="pixels", env_config={"image_size": 128})
    model = env.unwrapped.model
    finger = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "finger")
    renderer = mujoco.Renderer(model, 128, 128)
    renderer.enable_segmentation_rendering()  # per pixel: (object id, object type)
    data = mujoco.MjData(model)
    try:
        for seed in range(3):
            obs, _ = env.reset(seed=seed)
            state = env.unwrapped.get_state()
            pixel = view_for_env(env)(get_recipe("reacher").probe_target(state[None]))[0, 0]
            data.qpos[:] = state[:2]
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera="fixed")
            segments = renderer.render()
            rows, columns = np.nonzero(
                (segments[..., 0] == finger) & (segments[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM))
            )
            centroid = np.array([columns.mean(), rows.mean()]) + 0.5
            assert np.linalg.norm(pixel - centroid) < 0.5
            r, _, b = obs[int(pixel[1]), int(pixel[0])].astype(int)  # the arm's orange
            assert r > 200 and r > b + 80
    finally:
        renderer.close()
        env.close()


def test_pusht_view_tracks_agent_and_block():
    env = get_env_spec("pusht").make(obs_mode="pixels")
    try:
        obs, _ = env.reset(seed=0)
        pixels = view_for_env(env)(get_recipe("pusht").probe_target(env.unwrapped.get_state()))
        assert pixels.shape == (2, 2)  # agent, block
        r, _, b = obs[int(pixels[0, 1]), int(pixels[0, 0])].astype(int)
        assert b > r + 60  # gym-pusht's blue agent disc
    finally:
        env.close()


def test_render_cli_smoke_writes_mp4_and_gif(tmp_path, capsys):
    mp4, gif = tmp_path / "k.mp4", tmp_path / "k.gif"
    argv = ["render", "--smoke", "--keepout", "--steps", "10", "--display-size", "128"]
    assert main([*argv, "--out", str(mp4), str(gif)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == SMOKE_NOTICE
    assert "video:" in out and mp4.is_file() and gif.is_file()
    frames = iio.imread(gif, index=None)
    assert len(iio.imread(mp4, index=None)) == len(frames) + 5  # hold_last
    width = 2 * (128 + 2 * BORDER)  # executed | goal at the display size, not the model's 64 px
    assert frames.shape[2] == -(-width // MACRO_BLOCK) * MACRO_BLOCK


def test_render_defaults_to_the_shipped_model_with_regenerated_data(tmp_path, capsys):
    out = tmp_path / "p.mp4"
    argv = ["render", "--env", "tworoom", "--steps", "5", "--probe", "linear"]
    argv += ["--probe-samples", "200", "--display-size", "64", "--device", "cpu"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "data: 40 regenerated tworoom episodes (scripted data policy" in printed
    assert "video:" in printed and len(iio.imread(out, index=None)) >= 2


def test_render_without_a_model_names_the_flag_to_pass(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ROOT_VARIABLE, str(tmp_path / "none"))  # nothing shipped
    monkeypatch.chdir(tmp_path)  # no runs/demo/model either
    assert main(["render", "--env", "tworoom"]) == 2
    err = capsys.readouterr().err
    assert "no model is shipped for tworoom" in err and "pass --model DIR" in err


def test_render_displays_at_256_px_by_default():
    args = build_parser().parse_args(["render"])
    assert args.display_size == 256 and args.scale == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--smoke", "--out", "x.avi"], ".mp4 or .gif"),
        (["--env", "nosuchenv"], "tworoom"),
        (["--model", "missing", "--data", "missing.h5"], "no model checkpoint"),
        (["--env", "reacher", "--keepout", "--smoke"], "tworoom only"),
    ],
)
def test_render_cli_errors_are_one_line(argv, message, capsys):
    assert main(["render", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lewm-mpc render: error:") and message in err and "\n" not in err
