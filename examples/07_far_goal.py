"""A far goal on Two-Room: the goal in the other room, reached by hierarchical planning.

Flat CEM ranks its plans by the latent distance to the goal. For a goal behind the wall that
distance points straight through it, so the best short plan walks into the wall and stays there:
the door lies farther from the goal than the wall does. The hierarchical planner searches a
graph of latents from training episodes (:class:`lewm_mpc.LatentGraph`) for a path the data has
travelled, through the door, and hands the same CEM a subgoal on it: the farthest path point
within the CEM's reach that lies in straight latent line of sight (the door while the agent is
in the first room), then the goal itself once it is in sight.

One start/goal pair with the goal in the other room (the first of the env's random pairs whose
start and goal lie on opposite sides of the wall) is run with both planners. The video shows them
side by side: the goal (green disc), the executed trail and, for the hierarchical planner, the
current subgoal (orange disc) and the rest of its graph path (thin orange line), all placed by a
probe that reads the agent position from latents.

The default model is the shipped pretrained:tworoom; it comes without its dataset, so the graph
and the probe come from ``--graph-episodes`` regenerated episodes of its data policy (cached
after the first run, see lewm_mpc.load_run).

python examples/07_far_goal.py                           # the shipped Two-Room model, minutes
python examples/07_far_goal.py --video far_goal.gif      # flat | hierarchical, side by side
python examples/07_far_goal.py --model runs/demo/model   # yours (finds its dataset)
python examples/07_far_goal.py --smoke                   # tiny data + model: seconds
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import lewm_mpc as lm
from lewm_mpc.control import Episode
from lewm_mpc.evaluation import Pair, goal_observation, random_goal_pairs
from lewm_mpc.models.pretrained import is_pretrained
from lewm_mpc.recipes import SMOKE_NOTICE, build_from_recipe, smoke_recipe
from lewm_mpc.render import (
    Painter,
    ScaledView,
    check_video_path,
    display_frames,
    probe_plan,
    tile_videos,
    view_for_env,
    write_video,
)
from lewm_mpc.render.episode import plan_index
from lewm_mpc.render.layout import PENDING_RGB, SUCCESS_RGB, framed

WALL_X = 0.5  # Two-Room's wall is vertical at x = 0.5
DISPLAY = 256  # px per panel in the video
GOAL_RGB, SUBGOAL_RGB, TRAIL_RGB = (20, 160, 60), (240, 120, 0), (30, 30, 30)


@dataclass(frozen=True)
class Args:
    model: str = "pretrained:tworoom"  # Two-Room pixel model (shipped, or made by `make demo`)
    seed: int = 0
    budget: int = 200  # env steps per episode
    graph_episodes: int = 300  # regenerated episodes (a shipped model): the graph and the probe
    video: str | None = None  # optional .gif/.mp4: flat | hierarchical
    smoke: bool = False  # tiny data + model in a temp dir, tiny budgets


def cross_room_pair(pairs: list[Pair]) -> Pair:
    """The first pair whose start and goal lie on opposite sides of the wall."""
    for pair in pairs:
        if (pair.start_state[0] < WALL_X) != (pair.goal_state[0] < WALL_X):
            return pair
    raise SystemExit("no start/goal pair across the wall among the random pairs; try --seed")


def run_episode(env: Any, planner: Any, pair: Pair, steps: int) -> Episode:
    """One closed-loop episode from the pair's start toward its goal."""
    goal = goal_observation(env, pair.goal_state)  # resets the env: take it first
    obs, info = env.reset(options={"state": pair.start_state, "goal": pair.goal_state})
    with lm.MPCController(planner) as controller:
        report = lm.run_loop(env, controller, obs, info, goal, rate_hz=None, steps=steps,
                             stop_on_success=True)  # fmt: skip
    return report.episode


def describe(name: str, episode: Episode) -> str:
    steps = len(episode.actions)
    return f"{name}: success={episode.succeeded} after {steps} steps"


def render(
    env: Any,
    episode: Episode,
    pair: Pair,
    title: str,
    probe: Any = None,
    node_xy: np.ndarray | None = None,
) -> np.ndarray:
    """(T + 1, H, W, 3) frames of one episode at the display size: the goal, the trail and,
    with ``probe`` and ``node_xy`` (probed xy of every graph node), the subgoal and the rest of
    the graph path of the plan in force."""
    frames = display_frames(env, episode.states, DISPLAY)
    view = ScaledView(view_for_env(env), DISPLAY / episode.observations.shape[1])
    trail = view(episode.states[:, :2])[:, 0]  # (T + 1, 2) px
    goal = view(pair.goal_state[:2])[0]  # (2,) px
    reached = np.maximum.accumulate(episode.success)
    out = []
    for t, frame in enumerate(frames):
        painter = Painter(frame)
        painter.disc(goal, 10, GOAL_RGB, alpha=0.3)
        painter.disc(goal, 3, GOAL_RGB)
        if t:
            painter.polyline(trail[: t + 1], TRAIL_RGB, width=2, alpha=0.8)
        painter.disc(trail[t], 3, TRAIL_RGB)
        caption = f"{title}  step {t}/{len(frames) - 1}"
        index = plan_index(episode.plan_steps, t)
        if probe is not None and node_xy is not None and index >= 0:
            result = episode.plans[index]  # a HierarchicalResult
            if not result.direct:
                path = view(node_xy[list(result.path)])[:, 0]  # (P, 2) px
                points = np.concatenate([trail[t][None], path, goal[None]])
                painter.polyline(points, SUBGOAL_RGB, width=1, alpha=0.7)
                subgoal = view(probe_plan(probe, result.subgoal[None]))[0, 0]
                painter.disc(subgoal, 6, SUBGOAL_RGB, outline=(255, 255, 255))
                caption += "  subgoal"
            else:
                caption += "  goal direct"
        painter.text((4, 4), caption, (0, 0, 0), 13)
        out.append(framed(painter.image(), SUCCESS_RGB if reached[t] else PENDING_RGB))
    return np.stack(out)


def main(args: Args) -> None:
    if args.smoke:
        print(SMOKE_NOTICE)
    with tempfile.TemporaryDirectory() as scratch:
        if args.smoke:  # a throwaway seconds-scale dataset + model
            model_dir, data = build_from_recipe(smoke_recipe("tworoom"), scratch, args.seed)
            run = lm.load_run(model_dir, data)
        else:  # a shipped model: regenerated episodes of its data policy (cached)
            run = lm.load_run(args.model, regenerated_episodes=args.graph_episodes)
        assert run.env_spec is not None, "this example needs a built-in env (Two-Room)"
        env_config = run.dataset.meta.env_config
        graph = lm.LatentGraph.from_dataset(run.model, run.dataset, run.train_ids)
        kind = "linear" if args.smoke else "mlp"
        probe = lm.fit_probe_from_dataset(run.model, run.dataset, run.train_ids, kind=kind,
                                          max_samples=4000)  # fmt: skip
        print(f"graph: {graph.num_nodes} latents of {len(run.train_ids)} episodes; probe R^2 "
              f"{probe.r2_mean:.3f}")  # fmt: skip

        pairs, _ = random_goal_pairs(run.env_spec, 50, seed=args.seed, env_config=env_config)
        pair = cross_room_pair(pairs)
        start, goal = pair.start_state, pair.goal_state
        print(f"start ({start[0]:.2f}, {start[1]:.2f}) -> goal ({goal[0]:.2f}, {goal[1]:.2f}), "
              "across the wall")  # fmt: skip

        budget = {"num_samples": 16, "iterations": 2, "topk": 4} if args.smoke else {}
        steps = 20 if args.smoke else args.budget
        # The env's own time limit (100 steps) would cut the episodes short of the budget.
        limit = max(steps, run.env_spec.max_episode_steps)
        env = run.env_spec.make(run.obs_mode, env_config, max_episode_steps=limit)
        flat = run_episode(env, lm.CEM(run.model, seed=args.seed, **budget), pair, steps)
        print(describe("flat CEM    ", flat))
        low = lm.CEM(run.model, seed=args.seed, **budget)
        hier = run_episode(env, lm.HierarchicalPlanner(low, graph), pair, steps)
        with_subgoal = sum(not plan.direct for plan in hier.plans)
        print(
            f"{describe('hierarchical', hier)}; {len(hier.plans)} plans, {with_subgoal} toward "
            f"a subgoal, first graph path {hier.plans[0].path_cost:.0f} env steps"
        )

        video = args.video or (f"{scratch}/far_goal.gif" if args.smoke else None)
        if video:
            node_xy = probe_plan(probe, graph.latents.numpy())  # (N, 2) agent xy per node
            videos = [
                render(env, flat, pair, "flat CEM"),
                render(env, hier, pair, "hierarchical", probe, node_xy),
            ]
            write_video(video, tile_videos(videos))  # the shorter one holds its last frame
        env.close()
        if args.video:
            print(f"video: {args.video} (flat | hierarchical)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=Args.model)
    parser.add_argument("--seed", type=int, default=Args.seed)
    parser.add_argument("--budget", type=int, default=Args.budget)
    parser.add_argument("--graph-episodes", type=int, default=Args.graph_episodes)
    parser.add_argument("--video", default=Args.video)
    parser.add_argument("--smoke", action="store_true")
    args = Args(**vars(parser.parse_args()))
    if not (args.smoke or is_pretrained(args.model) or Path(args.model).is_dir()):
        parser.error(f"no model at {args.model}; pass --model DIR (a checkpoint folder)")
    if args.video is not None:
        try:
            check_video_path(args.video)
        except ValueError as error:
            parser.error(f"--video: {error}")
    main(args)
