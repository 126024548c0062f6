"""Gradient-based shooting through the differentiable world model: projected L-BFGS (default) or
Adam on the action sequences, parallel random restarts, stopping on convergence, hard guardrails
by augmented Lagrangian, and an optional CEM initialization (the "hybrid")."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from lewm_mpc.energies import Guardrail
from lewm_mpc.planners.base import BestSoFar, Optimized, Planner, PlannerConfig
from lewm_mpc.planners.cem import CEM, CEMConfig
from lewm_mpc.planners.clock import IterationClock
from lewm_mpc.planners.descent import CurvatureMemory, Descent
from lewm_mpc.types import Energy, LatentWorldModel

_BETAS = (0.9, 0.999)  # Adam's moment decay rates
_EPS = 1e-8
_ARMIJO = 1e-4  # sufficient-decrease constant of the L-BFGS step test
OPTIMIZERS = ("lbfgs", "adam")
HYBRID_DEFAULTS: dict[str, Any] = {"cem_iterations": 10, "iterations": 50}
"""Config fields of the hybrid preset (:meth:`GradientConfig.hybrid`) that differ from the
plain gradient planner's defaults."""


@dataclass(frozen=True)
class GradientConfig(PlannerConfig):
    """Gradient-shooting knobs.

    Attributes:
        restarts: action sequences optimized in parallel (restart 0 starts from the warm
            start / centre of the bounds, the others from it plus noise).
        iterations: most gradient evaluations per restart (each one rollout forward and
            backward); fewer run when every restart has converged (``tolerance``).
        optimizer: ``"lbfgs"`` (default): projected L-BFGS with a per-restart step accepted
            on sufficient decrease (Armijo) and halved otherwise. Curvature pairs make it
            invariant to the energy's conditioning, which first-order steps are not (on an
            ill-conditioned quadratic Adam needs orders of magnitude more steps).
            ``"adam"``: bias-corrected Adam with a cosine-decayed step.
        memory: L-BFGS curvature pairs kept.
        tolerance: stop once, for ``patience`` evaluations in a row, no restart has lowered
            the lowest objective of its env by more than this fraction of its magnitude;
            0 always runs ``iterations``.
        patience: evaluations without such progress before an env counts as converged.
        lr: Adam's step size in units of the half action range; L-BFGS's first step (before
            any curvature pair) moves the largest action by this much.
        final_lr: Adam's step size at the last iteration, as a fraction of ``lr`` (cosine
            decay; 1.0 keeps it constant), so Adam settles instead of oscillating.
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

    # Built for an env by name it keeps its own steps: the reference budget's 30 iterations
    # are CEM rounds, not gradient steps.
    reference_budget_fields: ClassVar[tuple[str, ...] | None] = ("horizon", "receding_horizon")

    restarts: int = 8
    iterations: int = 100
    optimizer: str = "lbfgs"
    memory: int = 30
    tolerance: float = 1e-3
    patience: int = 10
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
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.memory < 1:
            raise ValueError(f"memory must be >= 1, got {self.memory}")
        if not self.tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
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

    @property
    def step_clock(self) -> IterationClock:
        """The clock of this planner's gradient evaluations: one per number of restarts (a
        batch of 8 plans takes longer than one), shared by planners that share clocks."""
        restarts = self.config.restarts
        return self.clock("gradient" if restarts == 1 else f"gradient x{restarts}")

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
        cem.clocks = self.clocks  # its iteration times persist across plans with this planner's
        cem._past = self._past  # the observation history of the plan in progress
        return cem

    def _optimize(
        self, z0: torch.Tensor, z_goal: torch.Tensor, init: torch.Tensor, deadline: float | None
    ) -> Optimized:
        with torch.enable_grad():
            return self._descend(z0.detach(), z_goal.detach(), init.detach(), deadline)

    def _descend(
        self, z0: torch.Tensor, z_goal: torch.Tensor, init: torch.Tensor, deadline: float | None
    ) -> Optimized:
        if self.config.cem_iterations > 0:
            with torch.no_grad():
                search = self.cem_warmup().search(z0, z_goal, init, deadline)
            return self.refine(z0, z_goal, search.optimized, search.state.std, deadline)
        spread = self.config.init_std * self.half_range.expand_as(init)  # (B, H, block*A)
        return self._restarts(z0, z_goal, init, spread, BestSoFar(self), deadline, (0, 0))

    def refine(
        self,
        z0: torch.Tensor,
        z_goal: torch.Tensor,
        found: Optimized,
        spread: torch.Tensor,
        deadline: float | None,
    ) -> Optimized:
        """Gradient steps from another search's result (the hybrid's CEM, a sampling
        planner's ``polish_steps``): restart 0 starts from ``found.actions``, the others
        from it plus ``spread``-scaled noise; the best plan of both searches is returned.

        Args:
            z0: (B, D) start latents (outside inference mode).
            z_goal: (B, D) goal latents.
            found: the other search's best plan, its history and counts.
            spread: (B, H, block*A) std of the other restarts' noise, in env units.
            deadline: ``time.perf_counter()`` value (None: no limit).
        """
        best = BestSoFar.starting_from(self, found)
        done = (found.iterations, found.energy_evals)
        if not self.step_clock.fits(deadline):
            return best.result(found.actions, *done)
        with torch.enable_grad():
            return self._restarts(z0, z_goal, found.actions, spread, best, deadline, done)

    def _restarts(
        self,
        z0: torch.Tensor,
        z_goal: torch.Tensor,
        starts: torch.Tensor,
        spread: torch.Tensor,
        best: BestSoFar,
        deadline: float | None,
        done: tuple[int, int],
    ) -> Optimized:
        """Descend from ``starts`` (B, H, block*A) and ``restarts - 1`` noisy copies;
        ``done`` is (iterations, energy evaluations) already spent on ``best``."""
        shape = (starts.shape[0], self.config.restarts, *starts.shape[1:])  # (B, R, H, block*A)
        if self.config.restarts == 1:  # restart 0 has no noise: leave the generator untouched
            noise = torch.zeros(shape, device=starts.device, dtype=starts.dtype)
        else:
            noise = torch.randn(shape, generator=self.generator, device=starts.device,
                                dtype=starts.dtype)  # fmt: skip
            noise[:, 0] = 0.0
        actions = self.clamp(starts.unsqueeze(1) + spread.unsqueeze(1) * noise)
        descent = Descent(self, z0, z_goal, best, deadline)
        if self.config.optimizer == "lbfgs":
            self._lbfgs(descent, actions)
        else:
            self._adam(descent, actions)
        if best.actions is None:  # no time for one step: the warm start alone
            with torch.no_grad():
                latents, value = self.evaluate(z0, z_goal, actions[:, :1])
            best.update(actions[:, :1], latents, value, record=False)
            descent.energy_evals = 1
        assert best.actions is not None
        iterations, energy_evals = done
        return best.result(
            best.actions, iterations + descent.evaluations, energy_evals + descent.energy_evals
        )

    def _adam(self, descent: Descent, actions: torch.Tensor) -> None:
        """Bias-corrected Adam steps in units of the half range, projected onto the bounds."""
        first_moment = torch.zeros_like(actions)  # (B, R, H, block*A)
        second_moment = torch.zeros_like(actions)
        step = 0
        while descent.more():
            _, grad = descent.evaluate(actions)
            first_moment = _BETAS[0] * first_moment + (1 - _BETAS[0]) * grad
            second_moment = _BETAS[1] * second_moment + (1 - _BETAS[1]) * grad.pow(2)
            corrected_first = first_moment / (1 - _BETAS[0] ** (step + 1))
            corrected_second = second_moment / (1 - _BETAS[1] ** (step + 1))
            update = corrected_first / (corrected_second.sqrt() + _EPS)
            actions = self.clamp(actions - self._learning_rate(step) * self.half_range * update)
            step += 1

    def _lbfgs(self, descent: Descent, actions: torch.Tensor) -> None:
        """Projected L-BFGS in unit coordinates (the bounds become [-1, 1]).

        Each iteration scores one trial point per restart: the L-BFGS direction restricted to
        the free coordinates (those not held at a bound by the gradient), scaled by the
        restart's step and projected onto the box. A trial with sufficient decrease is
        accepted (step back to 1, curvature pair stored when positive); otherwise the restart
        stays and quarters its step. After a multiplier update the objective changes, so the
        current points are scored again and the curvature pairs dropped.
        """
        shape = actions.shape  # (B, R, H, block*A)
        half, center = self.half_range, self.center  # (block*A,)
        problems, dim = shape[0] * shape[1], shape[2] * shape[3]

        def unit(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.reshape(problems, dim)  # (P, d), P = B * R restarts, d = H * block*A

        def score(point: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            loss, grad = descent.evaluate(center + half * point.view(shape))
            return loss.reshape(problems), unit(grad * half)  # (P,), (P, d) in unit coordinates

        point = unit((actions - center) / half)
        if not descent.more():
            return
        loss, grad = score(point)
        memory = CurvatureMemory(problems, dim, self.config.memory, point)
        step = torch.ones(problems, device=point.device, dtype=point.dtype)
        while descent.more():
            if descent.refresh:  # the multipliers moved: a new objective
                loss, grad = score(point)
                memory = CurvatureMemory(problems, dim, self.config.memory, point)
                continue
            held = ((point <= -1) & (grad > 0)) | ((point >= 1) & (grad < 0))
            free_grad = grad.masked_fill(held, 0.0)
            direction = -memory.apply(free_grad, ~held)
            # Before any pair (or without descent): a gradient step moving the largest
            # coordinate by ``lr`` half ranges.
            scaled = free_grad * (self.config.lr / free_grad.abs().amax(1, keepdim=True).clamp_min(
                torch.finfo(point.dtype).tiny))  # fmt: skip
            fallback = ~memory.any() | ((direction * grad).sum(1) >= 0)
            direction = torch.where(fallback[:, None], -scaled, direction)
            trial = (point + step[:, None] * direction).clamp(-1.0, 1.0)
            trial_loss, trial_grad = score(trial)
            decrease = (grad * (trial - point)).sum(1)
            accept = torch.isfinite(trial_loss) & (trial_loss <= loss + _ARMIJO * decrease)
            memory.push(trial - point, trial_grad - grad, accept)
            point = torch.where(accept[:, None], trial, point)
            loss = torch.where(accept, trial_loss, loss)
            grad = torch.where(accept[:, None], trial_grad, grad)
            step = torch.where(accept, torch.ones_like(step), step / 4)

    def _learning_rate(self, step: int) -> float:
        """Cosine decay from ``lr`` to ``lr * final_lr`` over the configured iterations."""
        cfg = self.config
        progress = step / max(cfg.iterations - 1, 1)
        ratio = cfg.final_lr + (1 - cfg.final_lr) * (1 + math.cos(math.pi * progress)) / 2
        return cfg.lr * ratio
