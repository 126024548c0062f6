"""Task energies: how far a predicted latent trajectory ends (and stays) from the goal latent."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class GoalDistance:
    """Squared Euclidean distance to the goal latent.

    ``d_H + running_weight * mean(d_1 .. d_{H-1})`` where ``d_t = |z_t - z_goal|^2``. With
    ``running_weight=0`` this is LeWorldModel's terminal cost. The default running weight
    rewards arriving early: under a terminal-only cost the first (executed) block of a plan is
    unconstrained whenever the goal is reachable before the horizon ends, so the agent arrives
    only at the horizon's end or dithers near the goal. On Two-Room both reach the same success
    rate, the running cost in about a third of the steps (``benchmarks/results/``).

    Attributes:
        running_weight: weight of the mean distance over the intermediate predicted steps.
    """

    running_weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.running_weight >= 0:
            raise ValueError(f"running_weight must be >= 0, got {self.running_weight}")

    def __call__(
        self, latents: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> torch.Tensor:
        distance = (latents[:, 1:] - goal[:, None]).pow(2).sum(dim=-1)  # (S, H)
        energy = distance[:, -1]
        if self.running_weight > 0 and distance.shape[1] > 1:
            energy = energy + self.running_weight * distance[:, :-1].mean(dim=1)
        return energy  # (S,)


@dataclass(frozen=True)
class WeightedGoalDistance:
    """Per-step weighted squared distance to the goal latent: ``sum_t weights[t-1] * d_t``.

    ``d_t = |z_t - z_goal|^2`` over the predicted steps ``t = 1 .. H``, so ``weights`` must
    have one entry per planned step (checked when called). ``GoalDistance(r)`` equals the
    weights ``(r / (H-1),) * (H-1) + (1,)``; increasing weights favour arriving late,
    decreasing ones arriving early.

    Attributes:
        weights: non-negative weight of each predicted step, length H, not all zero.
    """

    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        weights = tuple(float(w) for w in self.weights)
        if not weights:
            raise ValueError("weights must hold one weight per predicted step, got none")
        if not all(math.isfinite(w) and w >= 0 for w in weights) or not any(weights):
            raise ValueError(f"weights must be finite, >= 0 and not all 0, got {weights}")
        object.__setattr__(self, "weights", weights)

    def __call__(
        self, latents: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> torch.Tensor:
        horizon = latents.shape[1] - 1
        if horizon != len(self.weights):
            raise ValueError(
                f"WeightedGoalDistance has {len(self.weights)} weights but the plan has "
                f"horizon H={horizon}: give one weight per predicted step"
            )
        distance = (latents[:, 1:] - goal[:, None]).pow(2).sum(dim=-1)  # (S, H)
        weights = torch.tensor(self.weights, dtype=distance.dtype, device=distance.device)
        return distance @ weights  # (S,)


@dataclass(frozen=True, eq=False)
class ProbedGoalDistance:
    """Goal distance measured through a probe (e.g. agent position) instead of in latent space.

    ``d_t = |probe(z_t) - probe(z_goal)|^2``, combined as in :class:`GoalDistance`:
    ``d_H + running_weight * mean(d_1 .. d_{H-1})``. The latent distance saturates far from the
    goal, which gives a planner little signal for detours (e.g. around a keep-out region); a
    probed physical distance keeps its shape at any range.

    A goal can also be given as the quantity itself (``target``: e.g. "agent at (x, y)" or a
    block pose), without any goal observation: ``probe(z_goal)`` is then replaced by it, and the
    goal latent the planner passes is ignored (an :class:`~lewm_mpc.MPCController` reset with
    ``goal=None``).

    Attributes:
        probe: latent -> quantity map, ``(..., D) -> (..., P)`` (e.g. a fitted ``Probe``).
        running_weight: weight of the mean distance over the intermediate predicted steps.
        target: a fixed (P,) quantity to reach, or None (the probed goal latent).
    """

    probe: Callable[[torch.Tensor], torch.Tensor]
    running_weight: float = 1.0
    target: Sequence[float] | np.ndarray | torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not callable(self.probe):
            raise ValueError(f"probe must be callable (latents -> quantity), got {self.probe!r}")
        if not (math.isfinite(self.running_weight) and self.running_weight >= 0):
            raise ValueError(f"running_weight must be >= 0, got {self.running_weight}")
        if self.target is not None:
            target = torch.as_tensor(np.asarray(self.target, dtype=np.float32))
            if target.ndim != 1 or not torch.isfinite(target).all():
                raise ValueError(f"target must be a finite (P,) vector, got {self.target!r}")
            object.__setattr__(self, "target", target)  # frozen: normalized once

    def __call__(
        self, latents: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> torch.Tensor:
        points = self.probe(latents[:, 1:])  # (S, H, P)
        if isinstance(self.target, torch.Tensor):
            target = self.target.to(points.device, points.dtype).expand(points.shape[0], 1, -1)
        else:
            target = self.probe(goal).unsqueeze(1)  # (S, 1, P)
        distance = (points - target).pow(2).sum(dim=-1)  # (S, H)
        energy = distance[:, -1]
        if self.running_weight > 0 and distance.shape[1] > 1:
            energy = energy + self.running_weight * distance[:, :-1].mean(dim=1)
        return energy  # (S,)


@dataclass(frozen=True, eq=False)
class EnergySum:
    """Weighted sum of task energies: ``sum_i weights[i] * terms[i](latents, actions, goal)``.

    E.g. LeWorldModel's latent distance plus a probed object-pose term, so that the planner
    keeps the whole scene's goal but weighs the object the task is about more than, say, the
    arm: ``EnergySum((GoalDistance(), ProbedGoalDistance(probe)), weights=(1.0, 5.0))``.

    Attributes:
        terms: task energies, each ``(latents (S, H+1, D), actions, goal (S, D)) -> (S,)``.
        weights: one finite weight >= 0 per term, not all 0 (default: all 1).
    """

    terms: Sequence[Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]]
    weights: Sequence[float] | None = None

    def __post_init__(self) -> None:
        terms = tuple(self.terms)
        if not terms or not all(callable(term) for term in terms):
            raise ValueError(f"terms must be one or more callable energies, got {self.terms!r}")
        weights = (1.0,) * len(terms) if self.weights is None else tuple(map(float, self.weights))
        if len(weights) != len(terms):
            raise ValueError(
                f"weights must hold one weight per term: {len(terms)} terms, {len(weights)} weights"
            )
        if not all(math.isfinite(w) and w >= 0 for w in weights) or not any(weights):
            raise ValueError(f"weights must be finite, >= 0 and not all 0, got {weights}")
        object.__setattr__(self, "terms", terms)
        object.__setattr__(self, "weights", weights)

    def __call__(
        self, latents: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> torch.Tensor:
        total = None
        for term, weight in zip(self.terms, self.weights, strict=True):
            if weight:
                value = weight * term(latents, actions, goal)  # (S,)
                total = value if total is None else total + value
        return total
