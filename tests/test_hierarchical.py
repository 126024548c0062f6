"""Hierarchical planning on a maze with a known shortest path: a wall between start and goal with
a door at the top. Flat CEM toward the goal presses against the wall; subgoals from a graph of
latent trajectories lead through the door; a guardrail over the door removes that path."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch

import lewm_mpc as lm
from lewm_mpc.planners.hierarchical import HierarchicalPlanner, LatentGraph

STEP = 0.05  # distance per unit action
WALL_X, DOOR_Y = 0.5, 0.8  # the wall x = 0.5 stands below y = 0.8
START, GOAL = np.array([0.25, 0.2], np.float32), np.array([0.75, 0.2], np.float32)


def blocked(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """(S,) whether the move old -> new crosses the wall (below the door)."""
    crosses = (old[..., 0] - WALL_X) * (new[..., 0] - WALL_X) <= 0
    return crosses & (torch.maximum(old[..., 1], new[..., 1]) < DOOR_Y)


def move(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    new = (state + STEP * action.clamp(-1, 1)).clamp(0.0, 1.0)
    return torch.where(blocked(state, new)[..., None], state, new)


class Maze:
    """The exact maze dynamics as a protocol model (latent = position)."""

    latent_dim = action_dim = 2
    action_block = 1
    obs_shape = (2,)
    obs_dtype = torch.float32
    device = torch.device("cpu")
    action_low = torch.full((2,), -1.0)
    action_high = torch.full((2,), 1.0)
    differentiable = False

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float()

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        states = [z0]
        for t in range(actions.shape[1]):
            states.append(move(states[-1], actions[:, t]))
        return torch.stack(states, dim=1)


class MazeEnv(gym.Env):
    observation_space = gym.spaces.Box(0, 1, (2,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = START.copy()
        return self.x.copy(), self._info()

    def step(self, action):
        state = move(torch.from_numpy(self.x), torch.as_tensor(action, dtype=torch.float32))
        self.x = state.numpy().astype(np.float32)
        return self.x.copy(), 0.0, False, False, self._info()

    def _info(self):
        near = bool(np.linalg.norm(self.x - GOAL) < 0.06)
        return {"state": self.x.astype(np.float64), "success": near}


def corridor(points: list[tuple[float, float]]) -> torch.Tensor:
    """Latents every STEP along a polyline (what a data policy walking it would record)."""
    out = []
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        n = round(np.hypot(x1 - x0, y1 - y0) / STEP)
        out += [(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n) for i in range(n)]
    out.append(points[-1])
    return torch.tensor(out, dtype=torch.float32)


TRAJECTORIES = [  # the data: walks on both sides, one through the door
    corridor([(0.25, 0.1), (0.25, 0.9)]),
    corridor([(0.1, 0.5), (0.4, 0.5)]),
    corridor([(0.25, 0.9), (0.75, 0.9)]),
    corridor([(0.75, 0.9), (0.75, 0.1)]),
    corridor([(0.6, 0.4), (0.9, 0.4)]),
]


def door_keepout(latents, actions, goal):
    """Violation: any predicted point (or segment midpoint) inside the door."""
    points = torch.cat([latents, (latents[:, 1:] + latents[:, :-1]) / 2], dim=1)
    inside = ((points[..., 0] - WALL_X).abs() < 0.1) & (points[..., 1] >= DOOR_Y)
    return inside.float().sum(-1)


def cem():
    return lm.CEM(Maze(), energy=lm.GoalDistance(0.0), horizon=5, num_samples=64, iterations=5,
                  topk=8, seed=0)  # fmt: skip


def drive(planner, steps=60):
    env = MazeEnv()
    obs, info = env.reset()
    with lm.MPCController(planner) as controller:
        return lm.run_loop(env, controller, obs, info, GOAL, rate_hz=None, steps=steps), controller


def test_subgoals_lead_through_the_door_where_flat_planning_cannot():
    flat, _ = drive(cem())
    assert not flat.episode.succeeded
    assert np.all(flat.episode.states[:, 0] < WALL_X)  # pressed against the wall
    graph = LatentGraph.from_trajectories(TRAJECTORIES, stride=1)
    report, controller = drive(HierarchicalPlanner(cem(), graph))
    assert report.episode.succeeded
    assert report.episode.states[:, 1].max() >= DOOR_Y  # went through the door
    first = controller.plans[0].result
    path = graph.latents[list(first.path)].numpy()
    assert not first.direct and np.isfinite(first.path_cost)
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    assert steps.max() <= STEP * 1.01  # consecutive path nodes are one step apart: feasible
    assert first.path_cost >= (0.7 + 0.6 + 0.5 - 0.1) / STEP  # around the wall, not through it
    assert np.linalg.norm(first.subgoal - START) <= 5 * STEP * 1.01  # within the low's reach


def test_subgoal_search_is_deterministic():
    graph = LatentGraph.from_trajectories(TRAJECTORIES, stride=1)
    planner = HierarchicalPlanner(cem(), graph)
    a = planner.plan(START, GOAL)
    b = HierarchicalPlanner(cem(), LatentGraph.from_trajectories(TRAJECTORIES, stride=1)).plan(
        START, GOAL
    )
    assert a.path == b.path and np.array_equal(a.subgoal, b.subgoal)
    np.testing.assert_array_equal(a.actions, b.actions)


def test_guardrails_prune_the_subgoal_path():
    guard = lm.Guardrail(door_keepout, "door", hard=True)
    graph = LatentGraph.from_trajectories(TRAJECTORIES, stride=1, guardrails=[guard])
    result = HierarchicalPlanner(cem(), graph).plan(START, GOAL)
    assert result.path == () and result.path_cost == np.inf  # the only way round is closed
    free = LatentGraph.from_trajectories(TRAJECTORIES, stride=1)
    assert graph.costs.nnz < free.costs.nnz
    kept = graph.costs.nonzero()
    points = graph.latents.numpy()
    for a, b in zip(*kept, strict=True):  # no edge left with an end in the door
        for point in (points[a], points[b]):
            assert not (abs(point[0] - WALL_X) < 0.1 and point[1] >= DOOR_Y)


def test_bad_graph_input_is_a_clear_error():
    with pytest.raises(ValueError, match="two or more latents"):
        LatentGraph.from_trajectories([torch.zeros(1, 2)], stride=1)
    with pytest.raises(ValueError, match="stride"):
        LatentGraph.from_trajectories(TRAJECTORIES, stride=0)


def test_the_subgoal_is_the_corner_the_path_turns_at():
    graph = LatentGraph.from_trajectories(TRAJECTORIES, stride=1)
    pulled = HierarchicalPlanner(cem(), graph, reach=100).plan(START, GOAL)
    assert not pulled.direct
    assert abs(pulled.subgoal[0] - 0.25) <= 0.06 and pulled.subgoal[1] > 0.8  # the corner (1 hop)
    unchecked = HierarchicalPlanner(cem(), graph, reach=100, straightness=100.0).plan(START, GOAL)
    assert unchecked.direct  # the goal itself: a straight line through the wall
    with pytest.raises(ValueError, match="straightness"):
        HierarchicalPlanner(cem(), graph, straightness=0.0)
