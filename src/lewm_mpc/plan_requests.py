"""The plans an :class:`~lewm_mpc.controller.MPCController` asks for and records: a request
(the observation, the goal, the queued actions that execute before the plan takes effect, the
warm-start shift and the history), :func:`plan_request`, which plans it from the observation
rolled forward through those actions, and :class:`PlanRecord`, one plan that took effect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lewm_mpc.planners.base import Planner
from lewm_mpc.types import PlanResult

__all__ = ["PlanRecord", "plan_request"]


@dataclass(frozen=True)
class PlanRecord:
    """One plan that took effect.

    Attributes:
        step: env step (actions executed since ``reset``) at which it took effect.
        requested_step: env step of the observation it was planned from.
        late: env steps it arrived after the step it was planned for (its first ``late``
            actions were dropped; always 0 when synchronous).
        result: the planner's result.
    """

    step: int
    requested_step: int
    late: int
    result: PlanResult


@dataclass(frozen=True)
class _Request:
    obs: np.ndarray
    goal: np.ndarray | torch.Tensor  # an observation, or a (D,) latent
    lead: np.ndarray  # (L, A) actions executed between the observation and the plan's start
    step: int  # env step of ``obs``
    shift: int | None  # warm-start shift in blocks (None: the first plan of an episode)
    past_obs: tuple[np.ndarray, ...] = ()  # block-boundary observations before ``obs``
    past_actions: tuple[np.ndarray, ...] = ()  # the (block*A,) block executed after each


def plan_request(
    planner: Planner,
    request: _Request,
    history_frames: int,
    deadline_s: float | None,
    refine: np.ndarray | None = None,
    steps: int | None = None,
) -> PlanResult:
    """Plan from the request's observation rolled forward through its lead actions.

    Args:
        planner: the controller's planner.
        request: what to plan for.
        history_frames: frames the model conditions on (``model.history``; 1: none).
        deadline_s: per-plan wall-clock bound passed to the planner (None: its full budget).
        refine: a plan (env-space actions) to correct with the model's gradient from that
            start (:meth:`~lewm_mpc.planners.base.Planner.refine_latent`) instead of planning
            anew, with at most ``steps`` evaluations (None: its default).
    """
    obs_t, _ = planner._as_batch(request.obs, "obs")
    if isinstance(request.goal, torch.Tensor):  # a goal latent
        with torch.inference_mode():
            z0 = planner.model.encode(obs_t).clone()  # (1, D)
        z_goal = request.goal.to(z0.device)[None]
    else:
        goal_t, _ = planner._as_batch(request.goal, "goal")
        z0, z_goal = planner.encode_pair(obs_t, goal_t)  # (1, D) each
    past = _past_latents(planner, request, z0)  # ((1, C, D), (1, C, block*A)) or None
    if len(request.lead):
        block = planner.model.action_block
        lead = torch.as_tensor(request.lead, dtype=torch.float32, device=z0.device)
        lead = lead.reshape(1, -1, block * lead.shape[-1])  # (1, L/block, block*A)
        extra = {} if past is None else {"past_latents": past[0], "past_actions": past[1]}
        with torch.inference_mode():
            chain = planner.model.rollout(z0, lead, **extra).clone()  # (1, L/block+1, D)
        if past is not None:  # the history at the plan start: known, observed, predicted
            past = (torch.cat([past[0], chain[:, :-1]], 1)[:, 1 - history_frames:],
                    torch.cat([past[1], lead], 1)[:, 1 - history_frames:])  # fmt: skip
        z0 = chain[:, -1]  # (1, D) at the plan start
    history = None if past is None else (past[0][0], past[1][0])  # (C, D), (C, block*A)
    if refine is not None:
        extra = {} if steps is None else {"steps": steps}
        return planner.refine_latent(z0[0], z_goal[0], refine, deadline_s=deadline_s,
                                     past=history, **extra)  # fmt: skip
    return planner.plan_latent(z0[0], z_goal[0], deadline_s=deadline_s,
                               shift=request.shift, past=history)  # fmt: skip


def _past_latents(
    planner: Planner, request: _Request, z0: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The request's history encoded: ((1, C, D), (1, C, block*A)), or None."""
    if not request.past_obs:
        return None
    frames, _ = planner._as_batch(np.stack(request.past_obs), "history")
    with torch.inference_mode():
        latents = planner.model.encode(frames).clone()[None]  # (1, C, D)
    actions = torch.as_tensor(np.stack(request.past_actions), dtype=torch.float32)
    return latents, actions[None].to(z0.device)
