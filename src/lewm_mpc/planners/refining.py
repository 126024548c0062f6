"""What :meth:`Planner.refine_latent <lewm_mpc.planners.base.Planner.refine_latent>` and the
sampling planners' polish share: the gradient planner that refines another planner's plans, and
a plan given in env actions as the blocks planners keep.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lewm_mpc.planners.base import Planner
from lewm_mpc.planners.gradient import GradientConfig, GradientPlanner

__all__ = ["plan_blocks", "refiner_of"]


def refiner_of(planner: Planner, steps: int, restarts: int = 1) -> GradientPlanner:
    """The gradient planner that refines ``planner``'s plans: ``restarts`` descents (the first
    from the plan it is given, the others from noise of the spread ``refine`` is given), at
    most ``steps`` L-BFGS evaluations, ``planner``'s energy, guardrails, horizon and rollout
    precision; made once per (``steps``, ``restarts``), it shares ``planner``'s random stream
    and iteration clocks (``reset`` may replace them), so deadlines know its evaluations' cost."""
    refiner = planner._refiners.get((steps, restarts))
    if refiner is None:
        config = GradientConfig(horizon=planner.config.horizon, restarts=restarts,
                                iterations=steps, init_std=0.0,
                                rollout_dtype=planner.config.rollout_dtype)  # fmt: skip
        refiner = GradientPlanner(planner.model, config, energy=planner.objective.task,
                                  guardrails=planner.objective.guardrails)  # fmt: skip
        planner._refiners[(steps, restarts)] = refiner
    assert isinstance(refiner, GradientPlanner)
    refiner.generator, refiner.clocks = planner.generator, planner.clocks
    return refiner


def plan_blocks(planner: Planner, plan: Any, z0: torch.Tensor) -> torch.Tensor:
    """Env-space actions (B?, H * block, A) as the (B, H, block * A) blocks planners keep,
    checked against ``planner``'s horizon and the batch of ``z0`` ((D,) or (B, D))."""
    actions = torch.as_tensor(np.asarray(plan, np.float32), device=planner.model.device)
    horizon, block = planner.config.horizon, planner.model.action_block
    num_envs = z0.shape[0] if z0.ndim == 2 else 1
    expected = (num_envs, horizon * block, planner.low.shape[0] // block)
    if actions.ndim == 2 and z0.ndim == 1:
        actions = actions[None]
    if tuple(actions.shape) != expected or not bool(torch.isfinite(actions).all()):
        raise ValueError(
            f"plan must be finite env-space actions {expected[1:]} (H * action_block, A) for "
            f"horizon {horizon}{', batched: a leading B' if z0.ndim == 2 else ''}, got "
            f"{tuple(np.shape(plan))}"
        )
    return actions.reshape(num_envs, horizon, -1)  # (B, H, block * A)
