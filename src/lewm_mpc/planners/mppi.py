"""Model-predictive path integral control (MPPI) over action sequences."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lewm_mpc.energies import ObjectiveValue
from lewm_mpc.planners.sampling import (
    GaussianSamplingConfig,
    SamplingPlanner,
    SamplingState,
    refit,
)


@dataclass(frozen=True)
class MPPIConfig(GaussianSamplingConfig):
    """MPPI knobs.

    The temperature is *relative* to the energy spread: a candidate's weight is
    ``exp(-(E_i - E_min) / (temperature * (E_median - E_min)))`` over the weighted
    candidates, so ``temperature = 1`` gives the median candidate ``1/e`` of the best one's
    weight, whatever the energy's units. An absolute temperature has to be retuned for every
    energy (a goal distance in a 192-d latent space and a probe-based guardrail differ by
    orders of magnitude) and for every stage of one plan (the spread shrinks as the samples
    converge, so a fixed temperature degrades to a uniform average); the relative one keeps
    the selection pressure constant, like CEM's rank-based elites.

    Attributes:
        num_samples: candidate plans per iteration.
        iterations: update rounds.
        temperature: softmax temperature relative to the spread (median minus minimum) of
            the weighted candidates' energies; lower is greedier.
        noise_std: initial sampling std as a fraction of the half action range (diagonal).
        topk: weight only the ``topk`` best candidates (None: all of them).
        adapt_std: refit the std as the weighted std of the candidates each iteration (as
            TD-MPC2); with False it stays at ``noise_std`` (classic MPPI).
        min_std: std floor (fraction of the half range) when ``adapt_std`` is on.
    """

    temperature: float = 0.1
    noise_std: float = 1.0
    topk: int | None = None
    adapt_std: bool = True
    min_std: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.topk is not None and not 1 <= self.topk <= self.num_samples:
            raise ValueError(
                f"topk must be None or in [1, num_samples={self.num_samples}], got {self.topk}"
            )
        if self.covariance == "full" and not self.adapt_std:
            raise ValueError(
                "covariance='full' needs adapt_std=True: the covariance is refit from the "
                "weighted candidates, which adapt_std=False turns off"
            )
        if not self.noise_std > 0 or not 0 <= self.min_std <= self.noise_std:
            raise ValueError(
                f"need noise_std > 0 and 0 <= min_std <= noise_std, got {self.noise_std}, "
                f"{self.min_std}"
            )


class MPPI(SamplingPlanner):
    """Sample Gaussian plans around the mean, move the mean to their softmax-weighted average.

    The current mean is always one of the candidates, and the best candidate ever scored is
    returned, so the returned energy never gets worse with more iterations. With hard
    guardrails, infeasible candidates get zero weight whenever some candidate is feasible;
    when none is, the weights come from the violation instead of the energy.
    """

    config_class = MPPIConfig
    config: MPPIConfig

    def initial_state(self, init: torch.Tensor) -> SamplingState:
        """``init`` with a std of ``noise_std`` half ranges."""
        std = (self.config.noise_std * self.half_range).expand_as(init).clone()  # (B, H, bA)
        return SamplingState(init, std)

    def update(
        self,
        state: SamplingState,
        candidates: torch.Tensor,
        value: ObjectiveValue,
        order: torch.Tensor,
    ) -> SamplingState:
        """Softmax-weighted mean (and, with ``adapt_std``, weighted std) of the candidates."""
        weights = self._weights(value, order)  # (B, S)
        mean = (weights[:, :, None, None] * candidates).sum(dim=1)  # (B, H, block*A)
        if not self.config.adapt_std:
            return SamplingState(mean, state.std)  # (covariance="full" needs adapt_std)
        floor = self.config.min_std * self.half_range
        std, covariance = refit(self.config, state, mean, candidates, weights, floor)
        return SamplingState(mean, std, covariance=covariance)

    def _weights(self, value: ObjectiveValue, order: torch.Tensor) -> torch.Tensor:
        """(B, S) softmax weights over candidates (zero outside the weighted set)."""
        score = value.total
        if self._has_hard:
            feasible = value.violation <= 0  # (B, S)
            any_feasible = feasible.any(dim=1, keepdim=True)  # (B, 1)
            inf = torch.full_like(score, float("inf"))
            score = torch.where(any_feasible, torch.where(feasible, score, inf), value.violation)
        if self.config.topk is not None:
            # Keep the topk best in the feasible-first ranking.
            kept = torch.zeros_like(score, dtype=torch.bool)
            kept.scatter_(1, order[:, : self.config.topk], True)
            score = torch.where(kept, score, torch.full_like(score, float("inf")))
        finite = torch.isfinite(score)
        # An env whose every energy is infinite (an energy returning inf) weighs uniformly.
        score = torch.where(finite.any(dim=1, keepdim=True), score, torch.zeros_like(score))
        lowest = score.min(dim=1, keepdim=True).values  # (B, 1)
        median = torch.where(torch.isfinite(score), score, torch.full_like(score, float("nan")))
        median = median.nanquantile(0.5, dim=1, keepdim=True)  # (B, 1), interpolated
        scale = self.config.temperature * (median - lowest)
        scale = scale.clamp_min(torch.finfo(score.dtype).tiny)
        return torch.softmax(-(score - lowest) / scale, dim=1)  # (B, S)
