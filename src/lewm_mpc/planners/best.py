"""The best candidate ever scored, the anytime result every planner returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from lewm_mpc.energies import ObjectiveValue

if TYPE_CHECKING:
    from lewm_mpc.planners.base import Planner


@dataclass(frozen=True)
class Optimized:
    """What an update rule hands back to the shared machinery (batched over B).

    Attributes:
        actions: (B, H, block*A) chosen plan, inside the bounds.
        latents: (B, H+1, D) its predicted latents.
        value: its objective evaluation ((B,) tensors).
        mean: (B, H, block*A) plan to shift for the next warm start.
        history: (iterations, B) best total energy after each iteration.
        iterations: iterations that ran.
        energy_evals: candidate plans scored per environment.
    """

    actions: torch.Tensor
    latents: torch.Tensor
    value: ObjectiveValue
    mean: torch.Tensor
    history: torch.Tensor
    iterations: int
    energy_evals: int


class BestSoFar:
    """Best candidate ever scored per env (feasibility first, then energy), and its history.

    Every planner returns this anytime result, so more iterations never return a worse plan.

    Args:
        planner: supplies the feasible-first ranking and comparison.
    """

    def __init__(self, planner: Planner) -> None:
        self._planner = planner
        self.actions: torch.Tensor | None = None  # (B, H, block*A)
        self.latents: torch.Tensor | None = None  # (B, H+1, D)
        self.value: ObjectiveValue | None = None  # (B,) tensors
        self.history: list[torch.Tensor] = []  # (B,) best total after each update

    @classmethod
    def starting_from(cls, planner: Planner, found: Optimized) -> BestSoFar:
        """A tracker that already holds ``found`` (its best plan and history)."""
        best = cls(planner)
        best.actions, best.latents, best.value = found.actions, found.latents, found.value
        best.history = list(found.history)
        return best

    def update(
        self,
        candidates: torch.Tensor,
        latents: torch.Tensor,
        value: ObjectiveValue,
        order: torch.Tensor | None = None,
        record: bool = True,
    ) -> None:
        """Consider this iteration's best candidate.

        Args:
            candidates: (B, S, H, block*A) scored plans.
            latents: (B, S, H+1, D) their latents.
            value: their objective, (B, S) tensors.
            order: (B, S) ranking from ``planner.rank(value)`` if already computed.
            record: append the best energy to the history (False: a plan scored outside the
                iterations, e.g. the warm start alone when a deadline leaves no time).
        """
        if order is None:
            order = self._planner.rank(value)
        rows = torch.arange(candidates.shape[0], device=candidates.device)
        top = order[:, 0]  # (B,)
        current = _select(value, rows, top)
        if self.value is None or self.actions is None or self.latents is None:
            self.actions, self.latents, self.value = (
                candidates[rows, top],
                latents[rows, top],
                current,
            )
        else:
            improved = self._planner.better(current, self.value)  # (B,)
            self.actions = torch.where(improved[:, None, None], candidates[rows, top], self.actions)
            self.latents = torch.where(improved[:, None, None], latents[rows, top], self.latents)
            self.value = _merge(improved, current, self.value)
        if record:
            self.history.append(self.value.total)

    def result(self, mean: torch.Tensor, iterations: int, energy_evals: int) -> Optimized:
        """Package the best plan; ``mean`` (B, H, block*A) is what the warm start shifts."""
        if self.value is None or self.actions is None or self.latents is None:
            raise RuntimeError("BestSoFar.result called before any update")
        history = (torch.stack(self.history) if self.history
                   else self.value.total.new_zeros((0, *self.value.total.shape)))  # fmt: skip
        return Optimized(
            actions=self.actions,
            latents=self.latents,
            value=self.value,
            mean=mean,
            history=history,
            iterations=iterations,
            energy_evals=energy_evals,
        )


def _select(value: ObjectiveValue, rows: torch.Tensor, index: torch.Tensor) -> ObjectiveValue:
    """Pick one candidate per env: (B, S) tensors -> (B,)."""
    return ObjectiveValue(
        value.total[rows, index],
        value.violation[rows, index],
        {name: term[rows, index] for name, term in value.terms.items()},
    )


def _merge(mask: torch.Tensor, new: ObjectiveValue, old: ObjectiveValue) -> ObjectiveValue:
    """Per-env choice between two (B,) evaluations."""
    return ObjectiveValue(
        torch.where(mask, new.total, old.total),
        torch.where(mask, new.violation, old.violation),
        {name: torch.where(mask, new.terms[name], old.terms[name]) for name in new.terms},
    )
