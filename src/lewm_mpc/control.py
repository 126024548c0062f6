"""Receding-horizon MPC loop: plan, execute the first blocks, replan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from lewm_mpc.planners.base import Planner
from lewm_mpc.types import PlanResult


@dataclass(frozen=True)
class Episode:
    """One closed-loop MPC episode.

    Attributes:
        observations: (T + 1, *obs_shape) observations, the first one before any action.
        states: (T + 1, Ds) true simulator states.
        actions: (T, A) executed env actions.
        success: (T + 1,) whether the env's success test held at each observation.
        goal: the goal observation given to the planner.
        plans: every plan made, in order.
        plan_steps: env step at which each plan was made.
    """

    observations: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    success: np.ndarray
    goal: np.ndarray
    plans: tuple[PlanResult, ...]
    plan_steps: tuple[int, ...]

    @property
    def succeeded(self) -> bool:
        """Success held at some step."""
        return bool(self.success.any())

    @property
    def steps_to_success(self) -> int | None:
        """Env steps until success first held (None if it never did)."""
        hits = np.flatnonzero(self.success)
        return int(hits[0]) if hits.size else None

    @property
    def plan_seconds(self) -> np.ndarray:
        """(num_plans,) wall-clock seconds of each plan call."""
        return np.array([plan.solve_s for plan in self.plans])


def _state_of(env: gym.Env, info: dict[str, Any]) -> np.ndarray:
    if "state" in info:
        return np.asarray(info["state"], dtype=np.float64).copy()
    return np.asarray(env.unwrapped.get_state(), dtype=np.float64).copy()  # type: ignore[attr-defined]


def run_episode(
    env: gym.Env,
    planner: Planner,
    obs: np.ndarray,
    info: dict[str, Any],
    goal: np.ndarray,
    max_steps: int = 50,
    stop_on_success: bool = True,
    deadline_s: float | None = None,
) -> Episode:
    """Run MPC from the env's current state toward ``goal``.

    The env must already be reset to the start state with its goal set (so ``info["success"]``
    reports the env's own success test). Each plan's first ``receding_horizon`` blocks of
    ``action_block`` actions are executed before replanning.

    Args:
        env: a reset environment.
        planner: any planner; it is ``reset()`` here (cold warm-start).
        obs: the observation returned by ``env.reset``.
        info: the info returned by ``env.reset``.
        goal: goal observation (same kind as ``obs``).
        max_steps: env-step budget.
        stop_on_success: end the episode as soon as success holds.
        deadline_s: per-plan deadline forwarded to ``planner.plan``.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    planner.reset()
    per_plan = planner.config.receding_horizon * planner.model.action_block
    observations, states = [np.asarray(obs).copy()], [_state_of(env, info)]
    success = [bool(info.get("success", False))]
    actions: list[np.ndarray] = []
    plans: list[PlanResult] = []
    plan_steps: list[int] = []
    while len(actions) < max_steps and not (stop_on_success and success[-1]):
        result = planner.plan(observations[-1], goal, deadline_s=deadline_s)
        plans.append(result)
        plan_steps.append(len(actions))
        for action in result.actions[:per_plan]:
            obs, _, terminated, truncated, info = env.step(action)
            actions.append(np.asarray(action).copy())
            observations.append(np.asarray(obs).copy())
            states.append(_state_of(env, info))
            success.append(bool(info.get("success", False)))
            if len(actions) >= max_steps or terminated or truncated:
                break
            if stop_on_success and success[-1]:
                break
        if terminated or truncated:
            break
    return Episode(
        observations=np.stack(observations),
        states=np.stack(states),
        actions=np.stack(actions) if actions else np.zeros((0, planner.model.action_dim)),
        success=np.array(success),
        goal=np.asarray(goal).copy(),
        plans=tuple(plans),
        plan_steps=tuple(plan_steps),
    )
