"""Closed loops around an :class:`~lewm_mpc.controller.MPCController`: an episode as fast as
the planner allows (:func:`run_episode`) and a fixed-rate loop on a wall clock
(:func:`run_loop`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from lewm_mpc.controller import MPCController
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
    """Run MPC from the env's current state toward ``goal``, planning synchronously.

    The env must already be reset to the start state with its goal set (so ``info["success"]``
    reports the env's own success test). A synchronous :class:`MPCController` executes each
    plan's first ``receding_horizon`` blocks of ``action_block`` actions before replanning.

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
    with MPCController(planner, deadline_s=deadline_s) as controller:
        return run_loop(env, controller, obs, info, goal, rate_hz=None, steps=max_steps,
                        stop_on_success=stop_on_success).episode  # fmt: skip


@dataclass(frozen=True)
class LoopReport:
    """A closed loop at a fixed rate.

    Attributes:
        episode: what happened (observations, states, actions, success, the plans made).
        rate_hz: the loop rate (None: as fast as ``act`` returns).
        act_seconds: (T,) wall-clock seconds of each ``controller.act`` call.
        missed: periods in which ``act`` and the env step together overran the period.
        late: env steps each plan took effect after the step it was planned for.
        fallback_steps: actions that came from the fallback (no plan left in the queue).
    """

    episode: Episode
    rate_hz: float | None
    act_seconds: np.ndarray
    missed: int
    late: tuple[int, ...]
    fallback_steps: int


def check_time_limit(env: gym.Env, steps: int) -> None:
    """Refuse an env whose time limit would truncate an episode before ``steps`` env steps.

    Raises:
        ValueError: naming the limit, the budget and how to lift the limit.
    """
    limits = [getattr(getattr(env, "spec", None), "max_episode_steps", None)]
    layer = env
    while isinstance(layer, gym.Wrapper):  # a TimeLimit around an unregistered env has no spec
        if isinstance(layer, gym.wrappers.TimeLimit):
            limits.append(getattr(layer, "_max_episode_steps", None))
        layer = layer.env
    limit = min((n for n in limits if n is not None), default=None)
    if limit is not None and limit < steps:
        raise ValueError(
            f"the env's time limit ({limit} steps) is shorter than the budget of {steps} "
            f"steps; make it with EnvSpec.make_for_budget({steps}, ...) or "
            f"gym.make(..., max_episode_steps={steps})"
        )


def run_loop(
    env: gym.Env,
    controller: MPCController,
    obs: np.ndarray,
    info: dict[str, Any],
    goal: np.ndarray,
    rate_hz: float | None = 10.0,
    steps: int = 50,
    stop_on_success: bool = True,
) -> LoopReport:
    """Drive a reset env with ``controller`` at ``rate_hz`` on the wall clock.

    The env advances one step per period whether or not a new plan is ready: each tick calls
    ``controller.act(obs)`` (an asynchronous controller returns at once), steps the env and
    sleeps to the next tick. The clock starts when the first action is issued (the first plan
    is made at rest); a later tick whose work overruns the period counts as missed (the next
    one starts late). ``rate_hz=None`` runs without sleeping, the synchronous reference.

    Args:
        env: a reset environment (its goal set, as for :func:`run_episode`).
        controller: the controller; it is ``reset(goal)`` here.
        obs: the observation returned by ``env.reset``; info: its info.
        goal: goal observation.
        rate_hz: control rate (None: unpaced).
        steps: env-step budget.
        stop_on_success: end as soon as the env reports success.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    check_time_limit(env, steps)
    if rate_hz is not None and not rate_hz > 0:
        raise ValueError(f"rate_hz must be > 0 or None, got {rate_hz}")
    period = None if rate_hz is None else 1.0 / rate_hz
    controller.reset(goal)
    observations, states = [np.asarray(obs).copy()], [_state_of(env, info)]
    success = [bool(info.get("success", False))]
    actions: list[np.ndarray] = []
    act_seconds: list[float] = []
    missed = 0
    tick = time.perf_counter()
    while len(actions) < steps and not (stop_on_success and success[-1]):
        if period is not None:
            time.sleep(max(tick - time.perf_counter(), 0.0))
        started = time.perf_counter()
        action = controller.act(observations[-1])
        act_seconds.append(time.perf_counter() - started)
        if not actions:  # the clock starts with the first action (the first plan is made at rest)
            tick = time.perf_counter()
        obs, _, terminated, truncated, info = env.step(action)
        actions.append(np.asarray(action).copy())
        observations.append(np.asarray(obs).copy())
        states.append(_state_of(env, info))
        success.append(bool(info.get("success", False)))
        if period is not None:
            tick += period
            if time.perf_counter() > tick:
                missed += 1
                tick = time.perf_counter()
        if terminated or truncated:
            break
    model = controller.planner.model
    episode = Episode(
        observations=np.stack(observations),
        states=np.stack(states),
        actions=np.stack(actions) if actions else np.zeros((0, model.action_dim)),
        success=np.array(success),
        goal=np.asarray(goal).copy(),
        plans=tuple(record.result for record in controller.plans),
        plan_steps=tuple(record.step for record in controller.plans),
    )
    return LoopReport(episode, rate_hz, np.array(act_seconds), missed,
                      tuple(record.late for record in controller.plans),
                      controller.fallback_steps)  # fmt: skip
