"""Energies over predicted latent trajectories, and their composition into an objective.

An energy is any callable ``(latents (S, H+1, D), actions (S, H, block*A), goal (S, D)) -> (S,)``
(see :class:`lewm_mpc.types.Energy`). Guardrails are energies returning a non-negative
violation; a hard guardrail must be zero for a plan to count as feasible, a soft one is a
weighted penalty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from lewm_mpc.types import Energy


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
class Guardrail:
    """A named constraint energy (non-negative violation) with its weight and hardness.

    Attributes:
        energy: the violation function.
        name: key of the term in ``PlanResult.terms``.
        weight: penalty weight added to the objective.
        hard: whether feasibility requires zero violation.
        tolerance: violation at or below which a hard guardrail counts as satisfied.
    """

    energy: Energy
    name: str
    weight: float = 1.0
    hard: bool = False
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if not self.weight >= 0:
            raise ValueError(f"guardrail {self.name!r}: weight must be >= 0, got {self.weight}")
        if not self.tolerance >= 0:
            raise ValueError(f"guardrail {self.name!r}: tolerance must be >= 0")


@dataclass(frozen=True)
class ObjectiveValue:
    """Per-candidate evaluation of an :class:`Objective` (all (S,) tensors)."""

    total: torch.Tensor
    violation: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


class Objective:
    """Task energy plus weighted guardrails, reporting every term.

    Args:
        task: the task energy (defaults to :class:`GoalDistance`).
        guardrails: guardrails; names must be unique and differ from "task".
    """

    def __init__(self, task: Energy | None = None, guardrails: Sequence[Guardrail] = ()) -> None:
        self.task: Energy = task if task is not None else GoalDistance()
        if not callable(self.task):
            raise ValueError(f"task energy must be callable, got {type(self.task).__name__}")
        names = [g.name for g in guardrails]
        if len(set(names)) != len(names) or "task" in names:
            raise ValueError(f"guardrail names must be unique and not 'task', got {names}")
        for guardrail in guardrails:
            if not isinstance(guardrail, Guardrail):
                raise ValueError(
                    f"guardrails must be Guardrail objects, got {type(guardrail).__name__}; "
                    "wrap a callable as Guardrail(energy, name=...)"
                )
        self.guardrails = tuple(guardrails)

    @property
    def term_names(self) -> tuple[str, ...]:
        """Names reported in ``PlanResult.terms``, task first."""
        return ("task", *(g.name for g in self.guardrails))

    def __call__(
        self, latents: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> ObjectiveValue:
        task = self.task(latents, actions, goal)  # (S,)
        if task.shape != latents.shape[:1]:
            raise ValueError(
                f"task energy returned shape {tuple(task.shape)}, expected ({latents.shape[0]},)"
            )
        terms = {"task": task}
        total = task
        violation = torch.zeros_like(task)
        for guardrail in self.guardrails:
            value = guardrail.energy(latents, actions, goal)  # (S,)
            terms[guardrail.name] = value
            total = total + guardrail.weight * value
            if guardrail.hard:
                violation = violation + (value - guardrail.tolerance).clamp_min(0.0)
        return ObjectiveValue(total, violation, terms)
