"""From an update rule's tensors to what a caller gets: :func:`package_result` turns an
:class:`~lewm_mpc.planners.best.Optimized` (batched torch tensors of block actions) into the
:class:`~lewm_mpc.types.PlanResult` every planner returns (numpy arrays of env actions, plain
floats when the plan was not batched).
"""

from __future__ import annotations

from typing import Any

import torch

from lewm_mpc.planners.best import Optimized
from lewm_mpc.types import PlanResult

__all__ = ["package_result"]


def package_result(
    result: Optimized, batched: bool, solve_s: float, action_block: int
) -> PlanResult:
    """Package a planner's optimized plan as its :class:`~lewm_mpc.types.PlanResult`.

    Args:
        result: the update rule's result, (B, ...) tensors.
        batched: whether the caller planned for a batch (else the B=1 dimension is dropped and
            scalars are Python floats).
        solve_s: the ``solve_s`` field of the result.
        action_block: env actions per planned block: (B, H, block*A) actions become
            (B, H*block, A).
    """
    num_envs, horizon = result.actions.shape[:2]
    actions = result.actions.reshape(num_envs, horizon * action_block, -1)
    value = result.value
    feasible = value.violation <= 0

    def out(tensor: torch.Tensor) -> Any:
        array = tensor.detach().cpu().numpy()
        return array if batched else array[0]

    def scalar(tensor: torch.Tensor) -> Any:
        array = tensor.detach().cpu().numpy()
        return array if batched else array[0].item()

    history = result.history.detach().cpu().numpy()  # (iterations, B)
    return PlanResult(
        actions=out(actions),
        energy=scalar(value.total),
        terms={name: scalar(term) for name, term in value.terms.items()},
        latents=out(result.latents),
        feasible=scalar(feasible),
        iterations=result.iterations,
        solve_s=solve_s,
        history=history if batched else history[:, 0],
        energy_evals=result.energy_evals,
    )
