"""Feasible-first ordering of candidate plans under hard guardrails: a feasible plan (no
violation) beats every infeasible one, feasible plans compare by energy and infeasible ones
by violation. :func:`feasible_first` reorders a whole energy ranking, :func:`feasible_better`
compares two plans per env; :class:`~lewm_mpc.planners.base.Planner` uses them (``rank``,
``better``) whenever it has a hard guardrail.
"""

from __future__ import annotations

import torch

from lewm_mpc.energies import ObjectiveValue

__all__ = ["feasible_better", "feasible_first"]


def feasible_first(value: ObjectiveValue, order: torch.Tensor) -> torch.Tensor:
    """Reorder an energy ranking so feasible candidates come first, infeasible by violation."""
    violation = value.violation.gather(1, order)  # (B, S) in energy order
    infeasible = violation > 0
    # Sort key: feasible -> -1 (keeps energy order via stable sort), infeasible -> violation.
    key = torch.where(infeasible, violation, torch.full_like(violation, -1.0))
    return order.gather(1, torch.argsort(key, dim=1, stable=True))


def feasible_better(candidate: ObjectiveValue, best: ObjectiveValue) -> torch.Tensor:
    """(B,) mask: ``candidate`` strictly better than ``best``, feasibility first, then energy.

    Args:
        candidate: one plan's objective per env, (B,) tensors.
        best: the incumbent's objective, (B,) tensors.
    """
    cand_bad, best_bad = candidate.violation > 0, best.violation > 0
    both_bad_better = cand_bad & best_bad & (candidate.violation < best.violation)
    same_ok_better = ~cand_bad & ~best_bad & (candidate.total < best.total)
    return (~cand_bad & best_bad) | both_bad_better | same_ok_better
