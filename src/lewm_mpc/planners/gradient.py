"""Gradient-based shooting: Adam on the action sequence through the differentiable world model,
with parallel random restarts, hard guardrails by augmented Lagrangian, and an optional CEM
initialization (the "hybrid")."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from lewm_mpc.energies import Guardrail, ObjectiveValue
from lewm_mpc.planners.base import BestSoFar, Optimized, Planner, PlannerConfig
from lewm_mpc.planners.cem import CEM, CEMConfig
from lewm_mpc.types import Energy, LatentWorldModel

_BETAS = (0.9, 0.999)  # Adam's moment decay rates
_EPS = 1e-8
HYBRID_DEFAULTS: dict[str, Any] = {"cem_iterations": 10, "iterations": 50}
"""Config fields of the hybrid preset (:meth:`GradientConfig.hybrid`) that differ from the
plain gradient planner's defaults."""


@dataclass(frozen=True)
class GradientConfig(PlannerConfig):
    """Gradient-shooting knobs.

    Attributes:
        restarts: action sequences optimized in parallel (restart 0 starts from the warm
            start / centre of the bounds, the others from it plus noise).
        iterations: Adam steps.
        lr: Adam step size in units of the half action range.
        final_lr: step size at the last iteration, as a fraction of ``lr`` (cosine decay;
            1.0 keeps it constant). A decaying step lets Adam settle on the optimum instead of
            oscillating around it.
        init_std: std of the restarts' initial noise, as a fraction of the half range.
        rho: initial augmented-Lagrangian penalty of each hard guardrail.
        rho_growth: factor applied to the penalty at every multiplier update.
        rho_max: penalty cap.
        multiplier_every: iterations between multiplier (and penalty) updates.
        cem_iterations: CEM iterations run before the gradient steps to initialize the
            restarts (0: none); restart 0 starts from CEM's best plan, the others from its
            final Gaussian. See :meth:`hybrid`.
        cem_samples: CEM candidates per iteration.
        cem_topk: CEM elites.
    """

    restarts: int = 8
    iterations: int = 100
    lr: float = 0.1
    final_lr: float = 0.05
    init_std: float = 0.5
    rho: float = 1.0
    rho_growth: float = 2.0
    rho_max: float = 1e4
    multiplier_every: int = 5
    cem_iterations: int = 0
    cem_samples: int = 100
    cem_topk: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.restarts < 1:
            raise ValueError(f"restarts must be >= 1, got {self.restarts}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.final_lr <= 1:
            raise ValueError(f"final_lr must be in (0, 1] (a fraction of lr), got {self.final_lr}")
        if not self.init_std >= 0:
            raise ValueError(f"init_std must be >= 0, got {self.init_std}")
        if not self.rho > 0 or not self.rho_growth >= 1 or not self.rho_max >= self.rho:
            raise ValueError(
                "need rho > 0, rho_growth >= 1 and rho_max >= rho, got "
                f"rho={self.rho}, rho_growth={self.rho_growth}, rho_max={self.rho_max}"
            )
        if self.multiplier_every < 1:
            raise ValueError(f"multiplier_every must be >= 1, got {self.multiplier_every}")
        if self.cem_iterations < 0:
            raise ValueError(f"cem_iterations must be >= 0, got {self.cem_iterations}")
        if self.cem_iterations > 0:
            self.cem_config()  # validates cem_samples / cem_topk

    def cem_config(self) -> CEMConfig:
        """The CEM budget of the initialization stage (at this config's rollout precision)."""
        try:
            return CEMConfig(
                horizon=self.horizon,
                num_samples=self.cem_samples,
                iterations=max(self.cem_iterations, 1),
                topk=self.cem_topk,
                rollout_dtype=self.rollout_dtype,
            )
        except ValueError as error:
            raise ValueError(
                f"invalid CEM initialization (cem_samples, cem_topk): {error}"
            ) from None

    @classmethod
    def hybrid(cls, **overrides: Any) -> GradientConfig:
        """The hybrid preset: a short CEM search, then gradient refinement of its best plans.

        CEM finds the right basin (robust to non-convex energies), Adam polishes the plan
        inside it far more cheaply than more CEM iterations would.
        """
        return cls(**{**HYBRID_DEFAULTS, **overrides})


class GradientPlanner(Planner):
    """Adam on the action sequences through the world model, projected onto the bounds.

    ``restarts`` sequences per env are rolled out in one batch; the loss sums each one's
    augmented-Lagrangian objective, and ``torch.autograd.grad`` differentiates it with respect
    to the actions only, so nothing accumulates in model parameters. Returned tensors carry no
    autograd graph. The chosen plan is the best iterate ever scored over all restarts,
    feasible first. Non-finite gradient entries (e.g. a norm at exactly zero) are zeroed.
    """

    config_class = GradientConfig
    config: GradientConfig
    needs_grad: ClassVar[bool] = True

    def __init__(
        self,
        model: LatentWorldModel,
        config: GradientConfig | None = None,
        *,
        energy: Energy | None = None,
        guardrails: Sequence[Guardrail] = (),
        **overrides: Any,
    ) -> None:
        if not getattr(model, "differentiable", True):
            raise ValueError(
                f"{type(model).__name__} is not differentiable (differentiable=False); "
                "plan with a sampling planner (CEM, MPPI)"
            )
        super().__init__(model, config, energy=energy, guardrails=guardrails, **overrides)

    @classmethod
    def hybrid(
        cls,
        model: LatentWorldModel,
        config: GradientConfig | None = None,
        *,
        energy: Energy | None = None,
        guardrails: Sequence[Guardrail] = (),
        **overrides: Any,
    ) -> GradientPlanner:
        """A planner with the :meth:`GradientConfig.hybrid` preset (CEM init + gradient).

        Args:
            model: the world model.
            config: a config to start from instead of the preset.
            energy: task energy.
            guardrails: guardrail terms.
            **overrides: config fields to override.
        """
        return cls(
            model,
            config or GradientConfig.hybrid(),
            energy=energy,
            guardrails=guardrails,
            **overrides,
        )

    def cem_warmup(self) -> CEM:
        """The CEM planner of the initialization stage (``cem_iterations > 0``).

        It scores candidates with this planner's model, energy and guardrails, and draws from
        this planner's generator, so one seed fixes both stages.
        """
        objective = self.objective
        cem = CEM(
            self.model,
            self.config.cem_config(),
            energy=objective.task,
            guardrails=objective.guardrails,
        )
        cem.generator = self.generator  # shared: the warm-up advances this planner's stream
        return cem

    def _optimize(
        self, z0: torch.Tensor, z_goal: torch.Tensor, init: torch.Tensor, deadline: float | None
    ) -> Optimized:
        with torch.enable_grad():
            return self._descend(z0.detach(), z_goal.detach(), init.detach(), deadline)

    def _descend(
        self, z0: torch.Tensor, z_goal: torch.Tensor, init: torch.Tensor, deadline: float | None
    ) -> Optimized:
        cfg = self.config
        num_envs, restarts = init.shape[0], cfg.restarts
        best = BestSoFar(self)
        iterations = energy_evals = 0
        starts, spread = init, cfg.init_std * self.half_range.expand_as(init)  # (B, H, block*A)
        if cfg.cem_iterations > 0:
            with torch.no_grad():
                search = self.cem_warmup().search(z0, z_goal, init, deadline)
            found = search.optimized
            best = BestSoFar.starting_from(self, found)
            iterations, energy_evals = found.iterations, found.energy_evals
            starts, spread = found.actions, search.state.std
            if self.time_up(deadline):
                return best.result(found.actions, iterations, energy_evals)
        noise = torch.randn(
            (num_envs, restarts, *init.shape[1:]),
            generator=self.generator, device=init.device, dtype=init.dtype,
        )  # (B, R, H, block*A)  # fmt: skip
        noise[:, 0] = 0.0
        actions = self.clamp(starts.unsqueeze(1) + spread.unsqueeze(1) * noise)
        hard = [g for g in self.objective.guardrails if g.hard]
        multipliers = torch.zeros((len(hard), num_envs, restarts), device=init.device)
        penalty = torch.full_like(multipliers, cfg.rho)  # (G, B, R)
        first_moment = torch.zeros_like(actions)  # (B, R, H, block*A)
        second_moment = torch.zeros_like(actions)
        for step in range(cfg.iterations):
            actions.requires_grad_(True)
            latents, value = self.evaluate(z0, z_goal, actions)  # (B, R, H+1, D), (B, R)
            violations = _violations(value, hard, multipliers)  # (G, B, R)
            lagrangian = (multipliers * violations + penalty / 2 * violations.pow(2)).sum(0)
            loss = (value.total + lagrangian).sum()
            if not loss.requires_grad:
                raise ValueError(
                    "the objective does not depend differentiably on the actions (the world "
                    "model or an energy detaches them); use CEM or MPPI instead"
                )
            (grad,) = torch.autograd.grad(loss, [actions])
            actions = actions.detach()
            best.update(actions, latents.detach(), _detached(value))
            # Adam step, bias-corrected, in units of the half range; then project.
            grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
            first_moment = _BETAS[0] * first_moment + (1 - _BETAS[0]) * grad
            second_moment = _BETAS[1] * second_moment + (1 - _BETAS[1]) * grad.pow(2)
            corrected_first = first_moment / (1 - _BETAS[0] ** (step + 1))
            corrected_second = second_moment / (1 - _BETAS[1] ** (step + 1))
            lr = self._learning_rate(step)
            update = corrected_first / (corrected_second.sqrt() + _EPS)
            actions = self.clamp(actions - lr * self.half_range * update)
            if hard and (step + 1) % cfg.multiplier_every == 0:
                violations = violations.detach()
                multipliers = (multipliers + penalty * violations).clamp_min(0.0)
                penalty = (penalty * cfg.rho_growth).clamp_max(cfg.rho_max)
            iterations += 1
            energy_evals += restarts
            if self.time_up(deadline):
                break
        assert best.actions is not None
        return best.result(best.actions, iterations, energy_evals)

    def _learning_rate(self, step: int) -> float:
        """Cosine decay from ``lr`` to ``lr * final_lr`` over the configured iterations."""
        cfg = self.config
        progress = step / max(cfg.iterations - 1, 1)
        ratio = cfg.final_lr + (1 - cfg.final_lr) * (1 + math.cos(math.pi * progress)) / 2
        return cfg.lr * ratio


def _violations(value: ObjectiveValue, hard: list[Guardrail], like: torch.Tensor) -> torch.Tensor:
    """(G, B, R) violation of each hard guardrail beyond its tolerance (G may be 0)."""
    if not hard:
        return torch.zeros_like(like)
    return torch.stack([(value.terms[g.name] - g.tolerance).clamp_min(0.0) for g in hard])


def _detached(value: ObjectiveValue) -> ObjectiveValue:
    return ObjectiveValue(
        value.total.detach(),
        value.violation.detach(),
        {name: term.detach() for name, term in value.terms.items()},
    )
