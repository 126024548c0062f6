"""The loop every sampling planner shares: sample, clamp, evaluate, rank, keep the best so far.

A sampling planner differs from another only in how it moves its sampling distribution after
each round, so a subclass of :class:`SamplingPlanner` overrides one hook, :meth:`update`
(CEM refits a Gaussian to the elites, MPPI takes a softmax-weighted average). Two optional
hooks have defaults: :meth:`~SamplingPlanner.initial_state` (the first Gaussian) and
:meth:`~SamplingPlanner.noise` (white standard-normal noise).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch

from lewm_mpc.energies import ObjectiveValue
from lewm_mpc.planners.base import BestSoFar, Optimized, Planner, PlannerConfig


@dataclass(frozen=True)
class SamplingConfig(PlannerConfig):
    """Knobs every sampling planner shares.

    Attributes:
        num_samples: candidate plans scored per iteration (candidate 0 is the mean).
        iterations: sample-and-update rounds.
    """

    num_samples: int = 300
    iterations: int = 30

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_samples < 2:
            raise ValueError(f"num_samples must be >= 2, got {self.num_samples}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")


@dataclass(frozen=True)
class SamplingState:
    """A diagonal Gaussian over plans, per env, plus plans to score again.

    Attributes:
        mean: (B, H, block*A) mean plan; it is always candidate 0.
        std: (B, H, block*A) std in env units.
        kept: (B, K, H, block*A) plans scored again next round in place of the last K samples
            (CEM's ``keep_elites``), or None.
    """

    mean: torch.Tensor
    std: torch.Tensor
    kept: torch.Tensor | None = None


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
        for _ in range(self.config.iterations):
            if not clock.fits(deadline):
                break
            clock.start()
            noise = self.noise(state, num_samples)  # (B, S, H, block*A)
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
        return self.search(z0, z_goal, init, deadline).optimized
