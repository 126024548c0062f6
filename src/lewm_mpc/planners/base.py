"""Machinery shared by every planner: input checks, encoding, bounds, warm start, batching,
deadlines, feasible-first ranking and the :class:`PlanResult` they all return.

A planner subclass implements only ``_optimize`` (its update rule); it receives encoded start
and goal latents and an initial mean plan, and returns an :class:`Optimized`. The building
blocks an update rule needs are public (:meth:`Planner.clamp`, :meth:`Planner.evaluate`,
:meth:`Planner.rank`, :meth:`Planner.better`, :attr:`Planner.generator`,
:meth:`Planner.clock`), so one planner may run another's loop on its behalf. Sampling
planners share one loop: :class:`~lewm_mpc.planners.sampling.SamplingPlanner`. The parts that
stand alone live beside it: ``config`` (:class:`PlannerConfig`), ``inputs``, ``scoring``,
``ranking`` and ``packaging``; their names stay importable from here.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from lewm_mpc.energies import Guardrail, Objective, ObjectiveValue
from lewm_mpc.planners.best import BestSoFar, Optimized
from lewm_mpc.planners.clock import IterationClock
from lewm_mpc.planners.config import _DTYPE_NAMES as _DTYPE_NAMES  # re-exported, as before
from lewm_mpc.planners.config import ROLLOUT_DTYPES, PlannerConfig
from lewm_mpc.planners.inputs import as_batch, check_past, encode_history
from lewm_mpc.planners.packaging import package_result
from lewm_mpc.planners.ranking import feasible_better, feasible_first
from lewm_mpc.planners.scoring import score_candidates
from lewm_mpc.types import Energy, LatentWorldModel, PlanResult
from lewm_mpc.validation import check_encode_output, check_world_model

__all__ = ["ROLLOUT_DTYPES", "BestSoFar", "IterationClock", "Optimized", "Planner", "PlannerConfig"]

_feasible_first = feasible_first  # its name before it moved to lewm_mpc.planners.ranking

# Default most L-BFGS evaluations of Planner.refine_latent. A short correction, on purpose: on
# Reacher's shipped model, plans made ahead and re-anchored with 15 evaluations solved 90% of 200
# pairs, with 50 (about converged) 78% (benchmarks/results/async_control_reacher_gradient_steps*):
# followed further, a learned model's gradient leads to plans it predicts well and the env does
# not follow.
REFINE_STEPS = 15


class Planner(abc.ABC):
    """Base class: holds the model, objective, bounds, RNG and warm-start state.

    Args:
        model: any :class:`~lewm_mpc.types.LatentWorldModel` (with ``obs_shape``/``obs_dtype``
            for input validation when available).
        config: the planner's config dataclass (``config_class``); keyword overrides of its
            fields may be given instead of or on top of it.
        energy: task energy (default: terminal goal distance).
        guardrails: guardrail terms (:class:`~lewm_mpc.energies.Guardrail` objects).

    Raises:
        ValueError: a model missing a protocol member or with bad action bounds
            (:func:`~lewm_mpc.validation.check_world_model`), a bad config or guardrail.
    """

    config_class: ClassVar[type[PlannerConfig]] = PlannerConfig
    needs_grad: ClassVar[bool] = False

    def __init__(
        self,
        model: LatentWorldModel,
        config: PlannerConfig | None = None,
        *,
        energy: Energy | None = None,
        guardrails: Sequence[Guardrail] = (),
        **overrides: Any,
    ) -> None:
        low, high = check_world_model(model)  # (A,) float64 each, finite, low < high
        config = config or self.config_class()
        if not isinstance(config, self.config_class):
            raise ValueError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        unknown = sorted(set(overrides) - {field.name for field in dataclasses.fields(config)})
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: {type(config).__name__} has no fields {unknown}"
            )
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self.model = model
        self.objective = Objective(energy, guardrails)
        self._has_hard = any(g.hard for g in self.objective.guardrails)
        device = model.device
        block = model.action_block
        # Per-block bounds: each env action in a block shares the env bounds, (block * A,).
        self.low = torch.as_tensor(low, dtype=torch.float32, device=device).repeat(block)
        self.high = torch.as_tensor(high, dtype=torch.float32, device=device).repeat(block)
        self.center = (self.low + self.high) / 2
        self.half_range = (self.high - self.low) / 2
        self.generator = torch.Generator(device=device).manual_seed(self.config.seed)
        self.clocks: dict[str, IterationClock] = {}  # per kind of iteration, across plans
        self._past: tuple[torch.Tensor, torch.Tensor] | None = None  # during a plan
        self._previous: torch.Tensor | None = None
        self._refiners: dict[tuple[int, int], Planner] = {}  # by (steps, restarts): refining
        # The model's outputs are checked once, on the first plan (not in the planning loop).
        self._encode_checked = False
        self._rollout_checked = False

    def __repr__(self) -> str:
        """One line: the budget fields of the config that are set, every field changed from
        its default, and the guardrails, e.g.
        ``CEM(horizon=5, num_samples=300, polish_steps=50, topk=30)``."""
        budget = ("horizon", "num_samples", "iterations", "topk", "restarts", "polish_steps")
        shown = [
            f"{spec.name}={getattr(self.config, spec.name)!r}"
            for spec in dataclasses.fields(self.config)
            if (spec.name in budget and getattr(self.config, spec.name) not in (None, 0))
            or getattr(self.config, spec.name) != spec.default
        ]
        if self.objective.guardrails:
            shown.append(f"guardrails={[g.name for g in self.objective.guardrails]}")
        return f"{type(self).__name__}({', '.join(shown)})"

    # ------------------------------------------------------------------------ public API
    def reset(self, seed: int | None = None) -> None:
        """Start a new episode: forget the warm start; optionally reseed the RNG."""
        self._previous = None
        if seed is not None:
            self.generator.manual_seed(seed)

    @property
    def timed(self) -> bool:
        """Whether every kind of iteration has been timed, so a deadline is a hard bound from
        the next plan on (see :meth:`warm_up`)."""
        return bool(self.clocks) and all(c.estimate is not None for c in self.clocks.values())

    def warm_up(self, obs: Any, goal: Any, plans: int = 2) -> None:
        """Plan ``plans`` times at the full budget, then :meth:`reset`: one-off costs are paid
        and every kind of iteration is timed, so that ``deadline_s`` holds from the next plan.

        Under a deadline an iteration starts only if the recent ones of its kind say it ends
        in time; before any was timed, the first plans run blind and can overshoot. The draws
        advance the RNG: reseed with ``reset(seed)`` for runs that compare with unwarmed ones.

        Args:
            obs: an observation like those :meth:`plan` gets (batched or not).
            goal: a goal observation of the same kind.
            plans: full-budget plans to run (>= 1; the first iteration and the first result
                packaging are not timed, so 2 time everything).
        """
        if not (isinstance(plans, int) and plans >= 1):
            raise ValueError(f"plans must be an int >= 1, got {plans!r}")
        for _ in range(plans):
            self.plan(obs, goal)
        self.reset()

    def plan(
        self,
        obs: Any,
        goal: Any,
        deadline_s: float | None = None,
        history: tuple[Any, Any] | None = None,
    ) -> PlanResult:
        """Plan an action sequence from ``obs`` toward ``goal``.

        Args:
            obs: raw observation (uint8 HxWx3 image or float state), or a batch with a
                leading B dimension to plan for B environments at once.
            goal: goal observation of the same kind and shape as ``obs``.
            deadline_s: wall-clock budget, a hard bound from the call (the encode counts): an
                iteration starts only if the recent iterations of its kind say it ends in
                time, and the best plan so far is returned. With no time for one iteration,
                the warm start alone is scored and returned. Until the iterations are timed
                (:attr:`timed`; :meth:`warm_up`) the first ones run blind.
            history: for a model trained with a history of frames (``model.history`` > 1),
                the observations before ``obs`` at block boundaries and the action blocks
                executed after each, ``(past_obs (C, *obs_shape), past_actions (C, block*A))``
                (batched: a leading B), oldest first; the model conditions on the last
                ``history - 1``. None: the window repeats ``obs``.

        Returns:
            A :class:`PlanResult` (fields batched when ``obs`` was).

        Raises:
            ValueError: wrong shape, dtype, non-finite values, or a goal unlike ``obs``; on
                the first plan, a model whose ``encode`` or ``rollout`` returns something other
                than the protocol's tensors (or, for a gradient planner, a rollout that is not
                differentiable in the actions).
        """
        start = time.perf_counter()
        if deadline_s is not None and not deadline_s > 0:
            raise ValueError(f"deadline_s must be > 0 seconds, got {deadline_s}")
        obs_t, batched = self._as_batch(obs, "obs")
        goal_t, goal_batched = self._as_batch(goal, "goal")
        if goal_batched != batched or goal_t.shape != obs_t.shape:
            raise ValueError(
                f"goal must have the same shape as obs: obs {tuple(obs_t.shape)}, goal "
                f"{tuple(goal_t.shape)} (batched obs needs a batched goal)"
            )
        z0, z_goal = self.encode_pair(obs_t, goal_t)
        past = None if history is None else self._encode_history(history, batched, len(z0))
        return self._plan_from(z0, z_goal, batched, start, deadline_s, None, past)

    def _encode_history(
        self, history: tuple[Any, Any], batched: bool, num_envs: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(past_obs, past_actions) -> latents (B, C, D) and blocks (B, C, block*A)."""
        return encode_history(self.model, history, batched, num_envs, self._as_batch)

    def encode_pair(
        self, obs: torch.Tensor, goal: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode (B, *obs_shape) start and goal observations in one batch: (B, D) each."""
        num_envs = obs.shape[0]
        with torch.inference_mode():
            z = self.model.encode(torch.cat([obs, goal]))  # (2B, D)
        if not self._encode_checked:
            check_encode_output(self.model, z, 2 * num_envs)
            self._encode_checked = True
        return z[:num_envs].clone(), z[num_envs:].clone()  # (B, D) each, leave inference mode

    def plan_latent(
        self,
        z0: torch.Tensor,
        z_goal: torch.Tensor,
        deadline_s: float | None = None,
        shift: int | None = None,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> PlanResult:
        """Plan from a start latent instead of an observation (e.g. a predicted future one).

        Args:
            z0: (D,) or (B, D) start latent(s), e.g. from :meth:`encode_pair` or a rollout.
            z_goal: goal latent(s), same shape.
            deadline_s: wall-clock budget (a hard bound, see :meth:`plan`).
            shift: blocks the warm start shifts the previous plan by (default: the config's
                ``receding_horizon``): the blocks executed since that plan started.
            past: a history in latent form, ``(past_latents (C, D), past_actions
                (C, block*A))`` (batched: a leading B), as :meth:`plan`'s ``history``.

        Returns:
            A :class:`PlanResult`, batched when ``z0`` was.
        """
        start = time.perf_counter()
        if deadline_s is not None and not deadline_s > 0:
            raise ValueError(f"deadline_s must be > 0 seconds, got {deadline_s}")
        batched = z0.ndim == 2
        z0_b, goal_b = (z0, z_goal) if batched else (z0[None], z_goal[None])
        if z0_b.ndim != 2 or goal_b.shape != z0_b.shape:
            raise ValueError(
                f"z0 and z_goal must be (D,) or (B, D) latents of one shape, got "
                f"{tuple(z0.shape)} and {tuple(z_goal.shape)}"
            )
        device = self.model.device
        if past is not None:
            latents, actions = (torch.as_tensor(p).float().to(device) for p in past)
            past = (latents, actions) if batched else (latents[None], actions[None])
        return self._plan_from(z0_b.detach().float().to(device),
                               goal_b.detach().float().to(device), batched, start, deadline_s,
                               shift, past)  # fmt: skip

    def refine_latent(
        self,
        z0: torch.Tensor,
        z_goal: torch.Tensor,
        plan: Any = None,
        deadline_s: float | None = None,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        steps: int = REFINE_STEPS,
    ) -> PlanResult:
        """Correct a plan for a new start latent with the model's gradient.

        ``plan`` (default: the warm start, the previous plan as it is, not shifted) is
        refined by projected L-BFGS from ``z0``: at most ``steps`` evaluations (each one
        rollout forward and backward of the plan), fewer once converged or when the next
        would not end before ``deadline_s``. The result becomes the warm start. It is how a
        plan made from a predicted latent is re-anchored on the latent observed when it takes
        effect (:class:`~lewm_mpc.controller.MPCController`'s ``reanchor_s``): the start
        moved a little, so the plan needs a local correction rather than a new search.
        Without a plan or a previous one the centre of the bounds is refined.

        Args:
            z0: (D,) or (B, D) start latent(s).
            z_goal: goal latent(s), same shape.
            plan: env-space actions (H * action_block, A) like :attr:`PlanResult.actions`
                (batched: a leading B), for this planner's horizon H.
            deadline_s: wall-clock budget (a hard bound once the gradient evaluations are
                timed, as :meth:`plan`'s).
            past: a history in latent form, as :meth:`plan_latent`'s.
            steps: most L-BFGS evaluations (>= 1). Few on purpose: a correction, not a
                search; run to convergence, the gradient of a learned model leads to plans
                it gets wrong (on Reacher's shipped model 50 re-anchored worse than 15).

        Raises:
            ValueError: ``steps`` < 1, a model that is not differentiable
                (``differentiable = False``), a plan of the wrong shape or not finite, or on
                the first refinement, an energy or guardrail that detaches the actions.
        """
        if not (isinstance(steps, int) and steps >= 1):
            raise ValueError(f"steps must be an int >= 1, got {steps!r}")
        if not getattr(self.model, "differentiable", True):
            raise ValueError(
                f"refine_latent follows the model's gradient: {type(self.model).__name__} is "
                "not differentiable (differentiable=False); plan again instead"
            )
        # Imported here: the gradient planner builds on this module.
        from lewm_mpc.planners.refining import plan_blocks, refiner_of

        refiner = refiner_of(self, steps)
        refiner._previous = self._previous if plan is None else plan_blocks(self, plan, z0)
        result = refiner.plan_latent(z0, z_goal, deadline_s=deadline_s, shift=0, past=past)
        self._previous = refiner._previous if self.config.warm_start else None
        return result

    def _plan_from(
        self,
        z0: torch.Tensor,
        z_goal: torch.Tensor,
        batched: bool,
        start: float,
        deadline_s: float | None,
        shift: int | None,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> PlanResult:
        self._past = self._check_past(past, z0)
        init = self._initial_mean(z0.shape[0], shift)
        finish = self.clock("finish")  # what follows the iterations: packaging the result
        deadline = None if deadline_s is None else start + deadline_s - (finish.estimate or 0.0)
        if self.needs_grad:
            # Gradients flow even when the caller plans under ``torch.inference_mode()``:
            # leave it, and make the inputs normal tensors autograd can save.
            with torch.inference_mode(False):
                z0, z_goal, init = z0.clone(), z_goal.clone(), init.clone()
                if self._past is not None:
                    self._past = (self._past[0].clone(), self._past[1].clone())
                result = self._optimize(z0, z_goal, init, deadline)
        else:
            with torch.inference_mode():
                result = self._optimize(z0, z_goal, init, deadline)
        finish.start()
        self._previous = result.mean.detach().clone() if self.config.warm_start else None
        packaged = self._package(result, batched, 0.0)
        finish.stop()
        self._past = None
        return dataclasses.replace(packaged, solve_s=time.perf_counter() - start)

    def _check_past(
        self, past: tuple[torch.Tensor, torch.Tensor] | None, z0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Validate a (B, C, D) / (B, C, block*A) history against the model; None if unused."""
        return check_past(self.model, past, z0)

    # -------------------------------------------------------------- for update rules
    @abc.abstractmethod
    def _optimize(
        self, z0: torch.Tensor, z_goal: torch.Tensor, init: torch.Tensor, deadline: float | None
    ) -> Optimized:
        """Update rule. z0, z_goal: (B, D); init: (B, H, block*A) initial mean."""

    def clock(self, kind: str) -> IterationClock:
        """The :class:`IterationClock` of one kind of iteration (kept across plans)."""
        return self.clocks.setdefault(kind, IterationClock())

    def clamp(self, actions: torch.Tensor) -> torch.Tensor:
        """Project plans onto the action bounds.

        Args:
            actions: (..., block*A) plans in env units.

        Returns:
            The plans clipped to ``[low, high]``, same shape.
        """
        return self._clamp(actions)

    def evaluate(
        self, z0: torch.Tensor, z_goal: torch.Tensor, candidates: torch.Tensor
    ) -> tuple[torch.Tensor, ObjectiveValue]:
        """Roll out and score candidate plans with the model and the objective.

        The rollout runs in ``config.rollout_dtype``; energies are float32.

        Args:
            z0: (B, D) start latents.
            z_goal: (B, D) goal latents.
            candidates: (B, S, H, block*A) plans inside the bounds.

        Returns:
            latents (B, S, H+1, D) and the objective with (B, S) tensors.

        Raises:
            ValueError: an energy term is NaN for some candidate, or returned another shape
                than (S,); on the first call, the model's ``rollout`` output is not (S, H+1, D)
                latents, or (when ``candidates`` require grad) not differentiable in them.
        """
        return self._evaluate(z0, z_goal, candidates)

    def rank(self, value: ObjectiveValue) -> torch.Tensor:
        """Order candidates best first: by energy, feasible first when hard guardrails exist.

        Args:
            value: the candidates' objective, (B, S) tensors.

        Returns:
            (B, S) candidate indices, best first.
        """
        return self._ranking(value)

    def better(self, candidate: ObjectiveValue, best: ObjectiveValue) -> torch.Tensor:
        """(B,) mask: ``candidate`` strictly better than ``best`` (feasibility, then energy).

        Args:
            candidate: one plan's objective per env, (B,) tensors.
            best: the incumbent's objective, (B,) tensors.
        """
        if not self._has_hard:
            return candidate.total < best.total
        return feasible_better(candidate, best)

    # The public methods above go through these, so an instance may wrap them (stage timers).
    def _clamp(self, actions: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(actions, self.high), self.low)

    def _evaluate(
        self, z0: torch.Tensor, z_goal: torch.Tensor, candidates: torch.Tensor
    ) -> tuple[torch.Tensor, ObjectiveValue]:
        check_as = None if self._rollout_checked else type(self).__name__
        scored = score_candidates(self.model, self.objective, z0, z_goal, candidates, self._past,
                                  ROLLOUT_DTYPES[self.config.rollout_dtype], check_as)  # fmt: skip
        self._rollout_checked = True  # once the first output passed the protocol's checks
        return scored

    def _ranking(self, value: ObjectiveValue) -> torch.Tensor:
        order = torch.argsort(value.total, dim=1)
        return feasible_first(value, order) if self._has_hard else order

    # ---------------------------------------------------------------------- internals
    def _initial_mean(self, num_envs: int, shift: int | None = None) -> torch.Tensor:
        horizon = self.config.horizon
        cold = self.center.expand(num_envs, horizon, -1).clone()  # (B, H, block*A)
        previous = self._previous
        if previous is None or previous.shape != cold.shape:
            return cold
        shift = self.config.receding_horizon if shift is None else shift
        if shift < horizon:
            cold[:, : horizon - shift] = previous[:, shift:]
        return cold

    def _as_batch(self, value: Any, name: str) -> tuple[torch.Tensor, bool]:
        """Validate a raw observation and return it as a (B, *obs_shape) tensor."""
        return as_batch(self.model, value, name)

    def _package(self, result: Optimized, batched: bool, solve_s: float) -> PlanResult:
        """The caller's :class:`PlanResult` of an update rule's result."""
        return package_result(result, batched, solve_s, self.model.action_block)
