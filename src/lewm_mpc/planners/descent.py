"""The machinery of gradient shooting's loops: one run's evaluation with the augmented
Lagrangian, multiplier updates, convergence tracking, and the L-BFGS curvature memory."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from lewm_mpc.energies import Guardrail, ObjectiveValue
from lewm_mpc.models import input_gradients_only
from lewm_mpc.planners.best import BestSoFar

if TYPE_CHECKING:
    from lewm_mpc.planners.gradient import GradientPlanner


class NotDifferentiableError(ValueError):
    """The objective does not depend differentiably on the actions (a model or an energy
    detaches them), so gradient steps cannot move the plan."""


class Descent:
    """One gradient planner run's bookkeeping: evaluation with the augmented Lagrangian,
    multiplier updates, the best plan so far, budget, deadline and convergence.

    Args:
        planner: the planner (config, objective, evaluation).
        z0: (B, D) start latents; z_goal: (B, D) goal latents.
        best: tracker of the best plan (may already hold the CEM warm-up's).
        deadline: ``time.perf_counter()`` value (None: no limit).
    """

    def __init__(
        self,
        planner: GradientPlanner,
        z0: torch.Tensor,
        z_goal: torch.Tensor,
        best: BestSoFar,
        deadline: float | None,
    ) -> None:
        self.planner, self.z0, self.z_goal, self.best = planner, z0, z_goal, best
        self.deadline = deadline
        self.hard = [g for g in planner.objective.guardrails if g.hard]
        self.evaluations = self.energy_evals = 0
        self.multipliers: torch.Tensor | None = None  # (G, B, R) once shapes are known
        self.penalty: torch.Tensor | None = None
        self.lowest: torch.Tensor | None = None  # (B,) lowest loss over the restarts
        self.stalled: torch.Tensor | None = None  # (B,) evaluations without progress
        self.refresh = False  # the objective changed since the last evaluation

    def more(self) -> bool:
        """Whether to evaluate again: budget left, time for one more step, not converged.

        Each call ends the step timed since the previous one (the planner's
        :attr:`~lewm_mpc.planners.gradient.GradientPlanner.step_clock`) and starts the next.
        """
        cfg = self.planner.config
        clock = self.planner.step_clock
        clock.stop()
        if self.evaluations >= cfg.iterations or not clock.fits(self.deadline):
            return False
        converging = self.stalled is not None and cfg.tolerance > 0
        if converging and not bool((self.stalled < cfg.patience).any()):
            return False
        clock.start()
        return True

    def evaluate(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective plus Lagrangian (B, R) and its gradient in the actions (B, R, H, block*A).

        Also records the plans in the best-so-far tracker, counts the work, updates the
        multipliers every ``multiplier_every`` evaluations and tracks convergence.
        """
        cfg = self.planner.config
        actions = actions.detach().requires_grad_(True)
        with input_gradients_only():  # gradients for the actions only
            latents, value = self.planner.evaluate(self.z0, self.z_goal, actions)  # (B, R, ...)
        if self.multipliers is None or self.penalty is None:
            self.multipliers = torch.zeros((len(self.hard), *value.total.shape),
                                           device=actions.device)  # fmt: skip
            self.penalty = torch.full_like(self.multipliers, cfg.rho)  # (G, B, R)
        loss = value.total  # (B, R)
        if self.hard:
            violations = _violations(value, self.hard)  # (G, B, R)
            penalties = self.multipliers * violations + self.penalty / 2 * violations.pow(2)
            loss = loss + penalties.sum(0)
        if not loss.requires_grad:
            raise NotDifferentiableError(
                "the objective does not depend differentiably on the actions (the world "
                "model or an energy detaches them); use CEM or MPPI instead"
            )
        (grad,) = torch.autograd.grad(loss.sum(), [actions])
        grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
        loss = loss.detach()
        self.best.update(actions.detach(), latents.detach(), _detached(value))
        self.evaluations += 1
        self.energy_evals += cfg.restarts
        self._track(loss)
        self.refresh = False
        if self.hard and self.evaluations % cfg.multiplier_every == 0:
            self.multipliers = (self.multipliers + self.penalty * violations.detach()).clamp_min(0)
            self.penalty = (self.penalty * cfg.rho_growth).clamp_max(cfg.rho_max)
            self.lowest = self.stalled = None  # a new objective: progress is measured afresh
            self.refresh = True
        return loss, grad

    def _track(self, loss: torch.Tensor) -> None:
        """Count, per env, evaluations in which no restart lowered the env's lowest loss by
        more than ``tolerance`` of its magnitude (the plan returned is the lowest one)."""
        inf = float("inf")
        finite = loss.min(dim=1).values.nan_to_num(nan=inf, neginf=inf)  # (B,), +inf if not finite
        if self.lowest is None or self.stalled is None:
            self.lowest, self.stalled = finite, torch.zeros_like(finite, dtype=torch.long)
            return
        margin = self.lowest.abs().nan_to_num(posinf=0.0).mul_(self.planner.config.tolerance)
        progress = finite < self.lowest - margin
        self.stalled = (self.stalled + 1).masked_fill_(progress, 0)
        self.lowest = torch.minimum(self.lowest, finite)


class CurvatureMemory:
    """The last ``size`` L-BFGS curvature pairs (s, y) of P independent problems.

    Pairs are stored per problem only when accepted and of positive curvature (s'y > 0);
    :meth:`apply` is L-BFGS's approximation of the inverse Hessian times a vector, scaled by
    s'y / y'y of the newest pair.
    """

    def __init__(self, problems: int, dim: int, size: int, like: torch.Tensor) -> None:
        self.s = like.new_zeros((problems, size, dim))  # oldest first
        self.y = like.new_zeros((problems, size, dim))
        self.rho = like.new_zeros((problems, size))  # 1 / s'y, 0 for an empty slot

    def any(self) -> torch.Tensor:
        """(P,) whether a problem holds a pair."""
        return self.rho[:, -1] > 0

    def push(self, s: torch.Tensor, y: torch.Tensor, accepted: torch.Tensor) -> None:
        """Append (s, y) (P, d) where ``accepted`` and the curvature is positive."""
        curvature = (s * y).sum(1)
        keep = accepted & (curvature > 1e-10 * s.norm(dim=1) * y.norm(dim=1))
        rho = torch.where(keep, 1.0 / curvature.clamp_min(torch.finfo(s.dtype).tiny), 0.0)
        rolled = [torch.cat([old[:, 1:], new[:, None]], dim=1)
                  for old, new in ((self.s, s), (self.y, y))]  # fmt: skip
        self.s = torch.where(keep[:, None, None], rolled[0], self.s)
        self.y = torch.where(keep[:, None, None], rolled[1], self.y)
        self.rho = torch.where(keep[:, None], torch.cat([self.rho[:, 1:], rho[:, None]], 1),
                               self.rho)  # fmt: skip

    def apply(self, vector: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
        """(P, d) approximate inverse Hessian times ``vector`` in the ``free`` coordinates.

        The pairs are restricted to the free coordinates (P, d mask), a reduced quasi-Newton
        step of the free subspace; pairs whose restricted curvature is not positive are
        skipped. Identity scaling where no pair remains; held coordinates come out zero.

        Computed in the compact form of Byrd, Nocedal & Schnabel (1994), which equals the
        two-loop recursion but takes a dozen batched matrix products and two triangular
        solves of the (m, m) pair matrices instead of 4m sequential vector updates (5x
        faster at m = 30 on a CPU); the small matrices are in float64 (float32 on MPS, which has
        no float64).
        """
        tiny = torch.finfo(vector.dtype).tiny
        mask = free.to(vector.dtype)[:, None]  # (P, 1, d)
        s, y = self.s * mask, self.y * mask  # (P, m, d)
        curvature = (s * y).sum(2)  # (P, m)
        valid = (self.rho > 0) & (curvature > 0)  # (P, m) pairs in use
        scale = torch.where(valid, curvature / (y * y).sum(2).clamp_min(tiny), 0.0)
        newest = valid.to(vector.dtype).cumsum(1).argmax(1, keepdim=True)  # last valid slot
        gamma = torch.where(valid.any(1), scale.gather(1, newest)[:, 0], 1.0)  # (P,)
        # A skipped pair is zeroed and gets a unit pivot: it then decouples from the others.
        wide = torch.float32 if vector.device.type == "mps" else torch.float64
        keep = valid.to(wide)[:, :, None]  # (P, m, 1)
        s, y = s.to(wide) * keep, y.to(wide) * keep  # (P, m, d)
        v = (vector * mask[:, 0]).to(wide)[:, :, None]  # (P, d, 1)
        g = gamma.to(wide)[:, None, None]  # (P, 1, 1)
        # R: upper triangle of S'Y (s_i'y_j, i older than or equal to j); D: its diagonal.
        r = torch.triu(s @ y.transpose(1, 2)) + torch.diag_embed((~valid).to(wide))  # (P, m, m)
        d = torch.diag_embed(torch.where(valid, curvature.to(wide), 0.0))  # (P, m, m)
        t = torch.linalg.solve_triangular(r, s @ v, upper=True)  # (P, m, 1) = R^-1 S'v
        inner = (d + g * (y @ y.transpose(1, 2))) @ t - g * (y @ v)  # (P, m, 1)
        w = torch.linalg.solve_triangular(r.transpose(1, 2), inner, upper=False)  # R^-T inner
        out = g * v + s.transpose(1, 2) @ w - g * (y.transpose(1, 2) @ t)  # (P, d, 1)
        return out[:, :, 0].to(vector.dtype)


def _violations(value: ObjectiveValue, hard: list[Guardrail]) -> torch.Tensor:
    """(G, B, R) violation of each hard guardrail beyond its tolerance."""
    return torch.stack([(value.terms[g.name] - g.tolerance).clamp_min(0.0) for g in hard])


def _detached(value: ObjectiveValue) -> ObjectiveValue:
    return ObjectiveValue(
        value.total.detach(),
        value.violation.detach(),
        {name: term.detach() for name, term in value.terms.items()},
    )
