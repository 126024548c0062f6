"""The loop every sampling planner shares: sample, clamp, evaluate, rank, keep the best so far.

A sampling planner differs from another only in how it moves its sampling distribution after
each round, so a subclass of :class:`SamplingPlanner` overrides one hook, :meth:`update`
(CEM refits a Gaussian to the elites, MPPI takes a softmax-weighted average). Two optional
hooks have defaults: :meth:`~SamplingPlanner.initial_state` (the first Gaussian) and
:meth:`~SamplingPlanner.noise` (white standard-normal noise).
"""

from __future__ import annotations

import abc
import dataclasses
import warnings
from dataclasses import dataclass

import torch

from lewm_mpc.energies import ObjectiveValue
from lewm_mpc.planners.base import BestSoFar, Optimized, Planner, PlannerConfig

SAMPLING_ROUNDS = 30  # rounds per plan when nothing polishes (LeWorldModel's CEM budget)
ROUNDS_BEFORE_POLISH = 2  # rounds per plan when an L-BFGS polish follows


@dataclass(frozen=True)
class SamplingConfig(PlannerConfig):
    """Knobs every sampling planner shares.

    By default a plan samples two rounds to find the basin and then polishes with L-BFGS
    through the model's gradient, from the best plan sampled and from three perturbations of it
    by the last sampling distribution's spread at once, which descends the basin far more
    cheaply than further rounds would: 300 x 2 + 4 x <= 50 evaluations reach a lower energy
    than 300 x 30 in about half its time. A model or energy without gradients gets the
    30 sampling rounds instead. ``polish_steps=0`` is LeWorldModel's CEM exactly (300 x 30, no
    gradient).

    Attributes:
        num_samples: candidate plans scored per iteration (candidate 0 is the mean).
        iterations: sample-and-update rounds; None (default): 30, or 2 when a polish follows
            (see :meth:`rounds`). A number is always the number of rounds.
        polish_steps: after the rounds, at most this many projected L-BFGS evaluations
            (each one rollout forward and backward of ``polish_restarts`` plans in one batch)
            refine the plan through the model's gradient (``GradientPlanner.refine``),
            stopping early once converged. 0 samples only; models with
            ``differentiable = False``, and objectives that detach the actions, are never
            polished (their plans get the full rounds).
        polish_restarts: descents the polish runs side by side: from the best plan sampled,
            and from ``polish_restarts - 1`` perturbations of it by the last sampling
            distribution's spread (its per-entry std; a neighbour of the best plan may descend
            into a lower basin); the lowest plan wins. On a CPU a batch of 4 plans costs
            about 1.2x one plan (a single rollout is bound by per-operation overhead).
    """

    num_samples: int = 300
    iterations: int | None = None
    polish_steps: int = 50
    polish_restarts: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_samples < 2:
            raise ValueError(f"num_samples must be >= 2, got {self.num_samples}")
        if self.iterations is not None and self.iterations < 1:
            raise ValueError(f"iterations must be >= 1 (or None: automatic), got {self.iterations}")
        if self.polish_steps < 0:
            raise ValueError(f"polish_steps must be >= 0, got {self.polish_steps}")
        if self.polish_restarts < 1:
            raise ValueError(f"polish_restarts must be >= 1, got {self.polish_restarts}")

    def rounds(self, polishing: bool) -> int:
        """Sampling rounds per plan: ``iterations`` if set, else 30 (2 when ``polishing``)."""
        if self.iterations is not None:
            return self.iterations
        return ROUNDS_BEFORE_POLISH if polishing else SAMPLING_ROUNDS


@dataclass(frozen=True)
class GaussianSamplingConfig(SamplingConfig):
    """Knobs of the planners that refit a Gaussian to their samples (CEM, MPPI).

    Attributes:
        covariance: ``"diagonal"`` (default: one std per action entry, as LeWorldModel's
            CEM) or ``"full"``: a full covariance over the whole flattened plan (horizon x
            block x action entries), learned from the weighted samples, so that correlated
            directions (an action and the next one, two joints acting together) are sampled
            along the valley of the energy instead of across it. On the ill-conditioned
            linear-quadratic family of ``benchmarks/lqr.py`` it roughly halves the worst
            cost ratio at the same budget; costs a Cholesky factorization per iteration.
        covariance_smoothing: with ``covariance="full"``, the weight of the new estimate in
            ``C <- (1 - w) C + w C_new`` (1: no memory). The samples of one round are fewer
            than the plan's entries on long horizons, so the estimate needs the memory.
    """

    covariance: str = "diagonal"
    covariance_smoothing: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.covariance not in ("diagonal", "full"):
            raise ValueError(f"covariance must be 'diagonal' or 'full', got {self.covariance!r}")
        if not 0 < self.covariance_smoothing <= 1:
            raise ValueError(
                f"covariance_smoothing must be in (0, 1], got {self.covariance_smoothing}"
            )


@dataclass(frozen=True)
class SamplingState:
    """A Gaussian over plans, per env (diagonal unless ``covariance`` is set), plus plans to
    score again.

    Attributes:
        mean: (B, H, block*A) mean plan; it is always candidate 0.
        std: (B, H, block*A) std in env units.
        kept: (B, K, H, block*A) plans scored again next round in place of the last K samples
            (CEM's ``keep_elites``), or None.
        covariance: (B, D, D) full covariance of the flattened plan (D = H * block * A; its
            diagonal is ``std**2``), or None: the entries are independent.
    """

    mean: torch.Tensor
    std: torch.Tensor
    kept: torch.Tensor | None = None
    covariance: torch.Tensor | None = None


@dataclass(frozen=True)
class SamplingSearch:
    """Outcome of :meth:`SamplingPlanner.search`.

    Attributes:
        optimized: best plan ever scored (its ``mean`` is the final distribution's mean).
        state: the final sampling distribution.
    """

    optimized: Optimized
    state: SamplingState


class SamplingPlanner(Planner):
    """Base of sampling planners: the loop is here, the distribution update in :meth:`update`.

    Each iteration draws ``num_samples`` plans around the state's mean (the mean itself is
    candidate 0, kept plans replace the last ones), projects them onto the bounds, scores
    them, ranks them feasible-first, lets :meth:`update` move the distribution and keeps the
    best plan ever scored, so the returned energy never gets worse with more iterations.
    """

    config_class = SamplingConfig
    config: SamplingConfig
    _polishable = True  # False once an objective turned out not to be differentiable

    @property
    def needs_grad(self) -> bool:  # type: ignore[override]
        """Whether plans run outside inference mode: only to polish (``polish_steps``)."""
        return self._polishing()

    def _polishing(self) -> bool:
        return (self.config.polish_steps > 0 and self._polishable
                and bool(getattr(self.model, "differentiable", True)))  # fmt: skip

    # ------------------------------------------------------------------------ hooks
    @abc.abstractmethod
    def update(
        self,
        state: SamplingState,
        candidates: torch.Tensor,
        value: ObjectiveValue,
        order: torch.Tensor,
    ) -> SamplingState:
        """Move the sampling distribution after one round (the hook subclasses implement).

        Args:
            state: the distribution the candidates were drawn from.
            candidates: (B, S, H, block*A) the round's plans, inside the bounds.
            value: their objective, (B, S) tensors.
            order: (B, S) their ranking from :meth:`~Planner.rank`, best first.

        Returns:
            The distribution of the next round; its ``mean`` is also the plan the next
            warm start shifts.
        """

    def initial_state(self, init: torch.Tensor) -> SamplingState:
        """The first round's distribution: ``init`` with a std of the half action range.

        Args:
            init: (B, H, block*A) initial mean (warm start or the centre of the bounds).
        """
        return SamplingState(init, self.half_range.expand_as(init).clone())

    def noise(self, state: SamplingState, num_samples: int) -> torch.Tensor:
        """(B, S, H, block*A) standard-normal noise from :attr:`~Planner.generator`."""
        mean = state.mean
        return torch.randn(
            (mean.shape[0], num_samples, *mean.shape[1:]),
            generator=self.generator, device=mean.device, dtype=mean.dtype,
        )  # fmt: skip

    def correlate(self, state: SamplingState, noise: torch.Tensor) -> torch.Tensor:
        """``noise`` (B, S, H, block*A), independent standard normal, given the correlation of
        ``state.covariance`` (unchanged without one); the marginals stay standard normal."""
        if state.covariance is None:
            return noise
        batch, samples = noise.shape[:2]
        std = state.std.reshape(batch, -1).clamp_min(torch.finfo(noise.dtype).tiny)  # (B, D)
        correlation = state.covariance / (std[:, :, None] * std[:, None, :])  # (B, D, D)
        jitter = 1e-6 * torch.eye(correlation.shape[-1], dtype=noise.dtype, device=noise.device)
        factor = torch.linalg.cholesky(correlation + jitter)  # (B, D, D), lower
        flat = noise.reshape(batch, samples, -1) @ factor.transpose(-1, -2)  # (B, S, D)
        return flat.reshape(noise.shape)

    # ------------------------------------------------------------------------- loop
    def search(
        self, z0: torch.Tensor, z_goal: torch.Tensor, init: torch.Tensor, deadline: float | None
    ) -> SamplingSearch:
        """Run the sampling loop from ``init`` (also on behalf of another planner's warm-up).

        Args:
            z0: (B, D) start latents.
            z_goal: (B, D) goal latents.
            init: (B, H, block*A) initial mean.
            deadline: ``time.perf_counter()`` value (None: no limit); an iteration starts
                only if it is expected to end before it (:class:`~lewm_mpc.planners.base.
                IterationClock`); with no time for one, the initial mean alone is scored.

        Returns:
            The best plan ever scored and the final distribution.
        """
        num_samples = self.config.num_samples
        state = self.initial_state(init)
        best = BestSoFar(self)
        clock = self.clock(type(self).__name__)
        iterations = 0
        for _ in range(self.config.rounds(self._polishing())):
            if not clock.fits(deadline):
                break
            clock.start()
            noise = self.correlate(state, self.noise(state, num_samples))  # (B, S, H, block*A)
            candidates = state.mean.unsqueeze(1) + state.std.unsqueeze(1) * noise
            candidates[:, 0] = state.mean
            if state.kept is not None:
                candidates[:, num_samples - state.kept.shape[1] :] = state.kept
            candidates = self.clamp(candidates)
            latents, value = self.evaluate(z0, z_goal, candidates)  # (B, S, H+1, D), (B, S)
            order = self.rank(value)  # (B, S)
            state = self.update(state, candidates, value, order)
            best.update(candidates, latents, value, order)
            clock.stop()
            iterations += 1
        if iterations == 0:  # no time for one iteration: the initial mean alone
            candidates = self.clamp(state.mean.unsqueeze(1))  # (B, 1, H, block*A)
            latents, value = self.evaluate(z0, z_goal, candidates)
            best.update(candidates, latents, value, record=False)
        optimized = best.result(state.mean, iterations, max(iterations * num_samples, 1))
        return SamplingSearch(optimized, state)

    def _optimize(
        self, z0: torch.Tensor, z_goal: torch.Tensor, init: torch.Tensor, deadline: float | None
    ) -> Optimized:
        with torch.no_grad():
            search = self.search(z0, z_goal, init, deadline)
        if not self._polishing():
            return search.optimized
        polished = self._polish(z0, z_goal, search, deadline)
        if polished is not None:
            return polished
        if deadline is not None or self.config.iterations is not None:
            return search.optimized  # the time, or the rounds, were the caller's to set
        with torch.no_grad():  # not differentiable after all: this plan gets a sampler's rounds
            return self.search(z0, z_goal, init, deadline).optimized

    def _polish(
        self, z0: torch.Tensor, z_goal: torch.Tensor, search: SamplingSearch,
        deadline: float | None,
    ) -> Optimized | None:  # fmt: skip
        """``polish_steps`` L-BFGS evaluations from the search's best plan (and from
        ``polish_restarts - 1`` perturbations of it by the last distribution's spread); the warm
        start keeps shifting the sampling distribution's mean. None: the objective has no
        gradient."""
        # Imported here: the gradient planner builds on CEM, which builds on this module.
        from lewm_mpc.planners.descent import NotDifferentiableError
        from lewm_mpc.planners.refining import refiner_of

        found = search.optimized
        polisher = refiner_of(self, self.config.polish_steps, self.config.polish_restarts)
        polisher._past = self._past  # the observation history of the plan in progress
        stream = self.generator.get_state()
        try:
            refined = polisher.refine(z0, z_goal, found, search.state.std, deadline)
        except NotDifferentiableError as error:  # an energy or model that detaches
            self.generator.set_state(stream)  # the failed attempt's draws leave no trace
            self._polishable = False  # sample only from now on, and say so once
            reason = str(error).split(";")[0]  # without the gradient planner's advice
            rounds = self.config.rounds(polishing=False)
            warnings.warn(f"polish_steps={self.config.polish_steps} turned off, sampling "
                          f"{rounds} rounds per plan instead: {reason}", RuntimeWarning,
                          stacklevel=2)  # fmt: skip
            return None
        return dataclasses.replace(refined, mean=found.mean)


def refit(
    config: GaussianSamplingConfig, state: SamplingState, mean: torch.Tensor,
    samples: torch.Tensor, weights: torch.Tensor, min_std: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """The spread of weighted samples around ``mean``: (std, covariance or None).

    Diagonal: the weighted std per entry. Full (``config.covariance``): the weighted covariance
    blended with ``state``'s by ``config.covariance_smoothing``; either way the std is floored
    at ``min_std`` (added to the covariance's diagonal).

    Args:
        config: the planner's config.
        state: the distribution the samples came from.
        mean: (B, H, block*A) the new mean.
        samples: (B, K, H, block*A) the samples (elites, or every candidate).
        weights: (B, K) their weights, summing to 1.
        min_std: std floor, broadcastable to ``mean``.
    """
    deviation = samples - mean.unsqueeze(1)  # (B, K, H, block*A)
    floor = min_std.expand_as(mean)
    if config.covariance == "diagonal":
        spread = (weights[:, :, None, None] * deviation.square()).sum(dim=1)
        return torch.maximum(spread.sqrt(), floor), None
    batch, count = deviation.shape[:2]
    flat = deviation.reshape(batch, count, -1)  # (B, K, D)
    estimate = torch.einsum("bk,bki,bkj->bij", weights, flat, flat)  # (B, D, D)
    previous = state.covariance
    if previous is None:
        previous = torch.diag_embed(state.std.reshape(batch, -1).square())
    blend = config.covariance_smoothing
    covariance = (1 - blend) * previous + blend * estimate
    covariance = covariance + torch.diag_embed(floor.reshape(batch, -1).square())
    std = torch.diagonal(covariance, dim1=-2, dim2=-1).sqrt().reshape(mean.shape)
    return std, covariance
