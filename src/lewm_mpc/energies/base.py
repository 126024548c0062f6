"""Guardrails and their composition with a task energy into an :class:`Objective`.

An energy is any callable ``(latents (S, H+1, D), actions (S, H, block*A), goal (S, D)) -> (S,)``
(see :class:`lewm_mpc.types.Energy`). Guardrails are energies returning a non-negative
violation; a hard guardrail must be zero (at most its tolerance) for a plan to count as
feasible, a soft one is a weighted penalty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from lewm_mpc.energies.task import GoalDistance
from lewm_mpc.types import Energy
from lewm_mpc.validation import check_energy_output


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


class GuardrailEnergy:
    """Mixin for violation energies: ``energy.as_guardrail("name", hard=True)``."""

    def as_guardrail(
        self, name: str, *, weight: float = 1.0, hard: bool = False, tolerance: float = 0.0
    ) -> Guardrail:
        """Wrap this energy in a :class:`Guardrail` (same arguments as ``Guardrail``)."""
        return Guardrail(self, name, weight=weight, hard=hard, tolerance=tolerance)  # type: ignore[arg-type]


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
        guardrails: a list of :class:`Guardrail`; names must be unique and differ from "task".

    Raises:
        ValueError: a task energy that is not callable, guardrails that are not a list of
            :class:`Guardrail` (a bare region must be wrapped), duplicate names; when called,
            a term that does not return one energy per candidate, an (S,) tensor.
    """

    def __init__(self, task: Energy | None = None, guardrails: Sequence[Guardrail] = ()) -> None:
        self.task: Energy = task if task is not None else GoalDistance()
        if not callable(self.task):
            raise ValueError(f"task energy must be callable, got {type(self.task).__name__}")
        if isinstance(guardrails, Guardrail) or not isinstance(guardrails, Sequence):
            raise ValueError(
                f"guardrails must be a list of lm.Guardrail objects, got a "
                f"{type(guardrails).__name__}; pass guardrails=[...]"
            )
        for guardrail in guardrails:  # before reading names: a bare region has none
            if not isinstance(guardrail, Guardrail):
                kind = type(guardrail).__name__
                raise ValueError(
                    f"guardrails must be lm.Guardrail objects, got a {kind}; wrap it in "
                    f"lm.Guardrail({kind}(...), name=..., hard=...) (a region or other energy "
                    "needs a name, weight and hardness to be a guardrail)"
                )
        names = [g.name for g in guardrails]
        if len(set(names)) != len(names) or "task" in names:
            raise ValueError(f"guardrail names must be unique and not 'task', got {names}")
        self.guardrails = tuple(guardrails)

    @property
    def term_names(self) -> tuple[str, ...]:
        """Names reported in ``PlanResult.terms``, task first."""
        return ("task", *(g.name for g in self.guardrails))

    def __call__(
        self, latents: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> ObjectiveValue:
        num = latents.shape[0]
        task = self.task(latents, actions, goal)  # (S,)
        task_name = getattr(self.task, "__name__", type(self.task).__name__)
        check_energy_output("task energy", task_name, task, num)
        terms = {"task": task}
        total = task
        violation = torch.zeros_like(task)
        for guardrail in self.guardrails:
            value = guardrail.energy(latents, actions, goal)  # (S,)
            check_energy_output("guardrail", guardrail.name, value, num)
            terms[guardrail.name] = value
            total = total + guardrail.weight * value
            if guardrail.hard:
                violation = violation + (value - guardrail.tolerance).clamp_min(0.0)
        return ObjectiveValue(total, violation, terms)


class TensorCache:
    """Copies of fixed tensors per (device, dtype) of the input they meet.

    Copies are made outside inference mode: a copy first made under a sampling planner's
    ``torch.inference_mode`` would otherwise be an inference tensor, which autograd refuses to
    save when a gradient planner later backpropagates through it.

    Args:
        tensors: the source tensors.
    """

    def __init__(self, *tensors: torch.Tensor) -> None:
        self._source = tuple(t.detach() for t in tensors)
        self._copies: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, ...]] = {}

    @property
    def source(self) -> tuple[torch.Tensor, ...]:
        """The tensors as given."""
        return self._source

    def like(self, reference: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The tensors on ``reference``'s device with its (floating) dtype."""
        key = (reference.device, reference.dtype)
        copies = self._copies.get(key)
        if copies is None:
            with torch.inference_mode(False):
                copies = tuple(
                    t.to(device=reference.device, dtype=reference.dtype).clone()
                    for t in self._source
                )
            self._copies[key] = copies
        return copies
