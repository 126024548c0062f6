"""CMA-ES over action sequences: a sampling planner that learns the energy's curvature.

CEM and MPPI sample from a diagonal Gaussian, so on an ill-conditioned energy (a narrow valley
not aligned with the action coordinates) their std collapses along the steep directions and the
mean crawls along the flat ones. The covariance matrix adaptation evolution strategy (Hansen and
Ostermeier 2001; the update and constants of Hansen's tutorial, arXiv:1604.00772) adapts a full
covariance from the selected steps (rank-one update through the evolution path, rank-mu update
from the weighted parents) and a global step size from the length of a conjugate evolution path,
so after enough generations it samples the valley's own shape.

The covariance needs generations more than samples: at the same number of energy evaluations, 30
candidates over 300 generations solve ill-conditioned problems that 300 candidates over 30
generations do not (``benchmarks/lqr.py``). Smaller batches cost more wall time per evaluation
on batched hardware, which is why CEM stays the reference planner for well-conditioned latent
energies.

Everything runs in coordinates normalised by the action bounds (``(a - center) / half_range``),
where the initial covariance is the identity. Candidates are clipped to the bounds before they
are scored and the update uses the clipped steps (the repaired candidates are the ones whose
energies ranked them).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from lewm_mpc.energies import ObjectiveValue
from lewm_mpc.planners.sampling import SamplingConfig, SamplingPlanner, SamplingState


@dataclass(frozen=True)
class CMAESConfig(SamplingConfig):
    """CMA-ES knobs (the learning rates follow from the dimension and the parent weights).

    Attributes:
        num_samples: candidates per generation (lambda; candidate 0 is the mean).
        iterations: generations.
        parents: candidates recombined into the new mean (mu; None: ``num_samples // 2``),
            weighted by log rank.
        init_std: initial step size sigma as a fraction of the half action range.
    """

    # Built for an env by name it keeps its own split of the reference's 9,000 evaluations.
    reference_budget_fields: ClassVar[tuple[str, ...] | None] = (
        "horizon",
        "receding_horizon",
        "polish_steps",
    )

    num_samples: int = 30
    iterations: int = 300
    parents: int | None = None
    init_std: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.parents is not None and not 1 <= self.parents <= self.num_samples:
            raise ValueError(
                f"parents must be None or in [1, num_samples={self.num_samples}], "
                f"got {self.parents}"
            )
        if not self.init_std > 0:
            raise ValueError(f"init_std must be > 0, got {self.init_std}")

    @property
    def num_parents(self) -> int:
        """mu: ``parents``, or half the candidates."""
        return self.parents if self.parents is not None else max(self.num_samples // 2, 1)


@dataclass(frozen=True, kw_only=True)
class CMAESState(SamplingState):
    """The search distribution ``mean + sigma * half_range * N(0, C)`` per env.

    ``mean`` is in env units and ``std = sigma * half_range`` (what the shared loop scales the
    noise by); the rest lives in normalised coordinates of dimension ``d = H * block * A``.

    Attributes:
        sigma: (B,) step size.
        cov: (B, d, d) covariance C.
        basis: (B, d, d) eigenvectors of C (columns).
        scale: (B, d) square roots of C's eigenvalues.
        path_c: (B, d) evolution path of the covariance.
        path_sigma: (B, d) conjugate evolution path of the step size.
        generation: generations completed.
    """

    sigma: torch.Tensor
    cov: torch.Tensor
    basis: torch.Tensor
    scale: torch.Tensor
    path_c: torch.Tensor
    path_sigma: torch.Tensor
    generation: int = 0


def _own(state: SamplingState) -> CMAESState:
    """The CMA-ES state the shared loop hands back (it only knows the base class)."""
    if not isinstance(state, CMAESState):
        raise TypeError(f"CMAES needs the CMAESState it made, got {type(state).__name__}")
    return state


@dataclass(frozen=True)
class _Constants:
    """Strategy parameters of one dimension and parent weighting (Hansen's defaults)."""

    weights: torch.Tensor  # (mu,) positive, summing to 1, best first
    mu_eff: float
    c_c: float
    c_sigma: float
    c_1: float
    c_mu: float
    damping: float
    chi_n: float  # E||N(0, I)||

    @classmethod
    @functools.lru_cache(maxsize=32)  # once per (plan dimension, parents, device), not per update
    def make(cls, dim: int, parents: int, device: torch.device) -> _Constants:
        ranks = torch.arange(1, parents + 1, dtype=torch.float64)
        weights = math.log(parents + 0.5) - torch.log(ranks)
        weights = weights / weights.sum()
        mu_eff = float(1.0 / weights.square().sum())
        c_sigma = (mu_eff + 2) / (dim + mu_eff + 5)
        c_1 = 2 / ((dim + 1.3) ** 2 + mu_eff)
        return cls(
            weights=weights.to(device),
            mu_eff=mu_eff,
            c_c=(4 + mu_eff / dim) / (dim + 4 + 2 * mu_eff / dim),
            c_sigma=c_sigma,
            c_1=c_1,
            c_mu=min(1 - c_1, 2 * (mu_eff - 2 + 1 / mu_eff) / ((dim + 2) ** 2 + mu_eff)),
            damping=1 + 2 * max(0.0, math.sqrt((mu_eff - 1) / (dim + 1)) - 1) + c_sigma,
            chi_n=math.sqrt(dim) * (1 - 1 / (4 * dim) + 1 / (21 * dim**2)),
        )


class CMAES(SamplingPlanner):
    """Covariance matrix adaptation evolution strategy over plans (see the module docstring).

    Like CEM and MPPI, the current mean is always one of the candidates, the ranking puts
    feasible plans first under hard guardrails, and the best plan ever scored is returned.
    """

    config_class = CMAESConfig
    config: CMAESConfig

    def initial_state(self, init: torch.Tensor) -> CMAESState:
        """``init`` with step size ``init_std`` and the identity covariance (normalised)."""
        num_envs, dim = init.shape[0], init[0].numel()
        wide = {"device": init.device, "dtype": torch.float64}  # the strategy's own state
        eye = torch.eye(dim, **wide).expand(num_envs, dim, dim)
        sigma = torch.full((num_envs,), self.config.init_std, **wide)
        return CMAESState(
            mean=init,
            std=self._std(sigma, init),
            sigma=sigma,
            cov=eye.clone(),
            basis=eye.clone(),
            scale=torch.ones(num_envs, dim, **wide),
            path_c=torch.zeros(num_envs, dim, **wide),
            path_sigma=torch.zeros(num_envs, dim, **wide),
        )

    def _std(self, sigma: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """(B, H, block*A) per-coordinate scale ``sigma * half_range`` in the plans' dtype."""
        return sigma.to(mean.dtype)[:, None, None] * self.half_range.expand_as(mean)

    def noise(self, state: SamplingState, num_samples: int) -> torch.Tensor:
        """(B, S, H, block*A) draws of N(0, C) in normalised units."""
        state = _own(state)
        mean = state.mean
        white = torch.randn(
            (mean.shape[0], num_samples, state.scale.shape[1]),
            generator=self.generator, device=mean.device, dtype=torch.float64,
        )  # (B, S, d)  # fmt: skip
        steps = (white * state.scale[:, None]) @ state.basis.transpose(1, 2)  # (B, S, d)
        return steps.to(mean.dtype).reshape(mean.shape[0], num_samples, *mean.shape[1:])

    def update(
        self,
        state: SamplingState,
        candidates: torch.Tensor,
        value: ObjectiveValue,
        order: torch.Tensor,
    ) -> CMAESState:
        """Recombine the best ``mu`` candidates, then adapt the paths, C and sigma."""
        state = _own(state)
        num_envs, dim = candidates.shape[0], state.scale.shape[1]
        k = _Constants.make(dim, self.config.num_parents, candidates.device)
        sigma = state.sigma[:, None]  # (B, 1)
        half = self.half_range.expand_as(state.mean[0]).reshape(1, 1, dim).double()  # (1, 1, d)
        parents = (
            candidates.gather(
                1, order[:, : k.weights.shape[0], None, None].expand(-1, -1, *candidates.shape[2:])
            )
            .reshape(num_envs, -1, dim)
            .double()
        )  # (B, mu, d)
        old_mean = state.mean.reshape(num_envs, 1, dim).double()
        steps = (parents - old_mean) / (half * sigma[:, :, None])  # (B, mu, d) normalised
        mean_step = (k.weights[None, :, None] * steps).sum(dim=1)  # (B, d)
        mean = old_mean[:, 0] + (sigma * half[0]) * mean_step  # (B, d) env units

        # C^(-1/2) mean_step = B diag(1/D) B' mean_step
        whitened = torch.einsum(
            "bij,bj->bi", state.basis, torch.einsum("bji,bj->bi", state.basis, mean_step)
            / state.scale
        )  # (B, d)  # fmt: skip
        path_sigma = (1 - k.c_sigma) * state.path_sigma + math.sqrt(
            k.c_sigma * (2 - k.c_sigma) * k.mu_eff
        ) * whitened
        generation = state.generation + 1
        norm = path_sigma.norm(dim=1)  # (B,)
        path_ratio = norm / math.sqrt(1 - (1 - k.c_sigma) ** (2 * generation)) / k.chi_n
        h_sigma = (path_ratio < 1.4 + 2 / (dim + 1)).double()[:, None]  # (B, 1): 0 stalls p_c
        path_c = (1 - k.c_c) * state.path_c + h_sigma * math.sqrt(
            k.c_c * (2 - k.c_c) * k.mu_eff
        ) * mean_step
        rank_one = path_c[:, :, None] * path_c[:, None, :]  # (B, d, d)
        rank_mu = torch.einsum("bmi,m,bmj->bij", steps, k.weights, steps)  # (B, d, d)
        lost = ((1 - h_sigma) * k.c_c * (2 - k.c_c))[:, :, None]  # (B, 1, 1)
        cov = (1 - k.c_1 - k.c_mu) * state.cov + k.c_1 * (rank_one + lost * state.cov)
        cov = cov + k.c_mu * rank_mu
        cov = (cov + cov.transpose(1, 2)) / 2
        eigenvalues, basis = torch.linalg.eigh(cov)  # ascending, (B, d), (B, d, d)
        scale = eigenvalues.clamp_min(1e-20).sqrt()
        new_sigma = state.sigma * torch.exp((k.c_sigma / k.damping) * (norm / k.chi_n - 1))
        mean = mean.to(state.mean.dtype).reshape_as(state.mean)  # (B, H, block*A)
        return CMAESState(
            mean=mean,
            std=self._std(new_sigma, mean),
            sigma=new_sigma,
            cov=cov,
            basis=basis,
            scale=scale,
            path_c=path_c,
            path_sigma=path_sigma,
            generation=generation,
        )
