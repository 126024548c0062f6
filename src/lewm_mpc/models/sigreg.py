"""SIGReg: the sketched isotropic-Gaussian regularizer of LeJEPA / LeWorldModel.

Random unit directions ``a_m`` are drawn fresh on every call; each direction projects the
batch of embeddings to 1-D samples ``h = Z a_m``, whose empirical characteristic function
``phi(t) = mean_b exp(i t h_b)`` is compared with the standard normal's ``exp(-t^2 / 2)``
by the Epps-Pulley statistic::

    EP = N * integral |phi(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt

integrated by the trapezoid rule on knots in [0, t_max] (the integrand is even, so the
half-line integral is doubled). By Cramer-Wold, matching every 1-D projection to N(0, 1)
drives the embedding distribution toward N(0, I), which prevents representation collapse.

For samples that really are N(0, I) the statistic's expectation is a constant independent of
N (about 1.06 with the default knots: the finite-sample noise of the empirical CF); for
collapsed or low-rank embeddings it grows proportionally to N.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class SIGRegConfig:
    """Knobs of the SIGReg statistic.

    Attributes:
        num_projections: random directions per call (LeWM: 1024).
        num_knots: quadrature knots on [0, t_max] (LeWM: 17).
        t_max: upper integration limit.
    """

    num_projections: int = 1024
    num_knots: int = 17
    t_max: float = 3.0

    def __post_init__(self) -> None:
        if self.num_projections < 1:
            raise ValueError(f"num_projections must be >= 1, got {self.num_projections}")
        if self.num_knots < 2:
            raise ValueError(f"num_knots must be >= 2, got {self.num_knots}")
        if not self.t_max > 0:
            raise ValueError(f"t_max must be > 0, got {self.t_max}")


def _quadrature(
    config: SIGRegConfig, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Knots t_k, the target CF exp(-t^2/2) at them, and trapezoid weights times the window."""
    knots = torch.linspace(0.0, config.t_max, config.num_knots, device=device, dtype=dtype)
    step = config.t_max / (config.num_knots - 1)
    trapezoid = torch.full_like(knots, step)
    trapezoid[0] = trapezoid[-1] = step / 2
    target = torch.exp(-0.5 * knots**2)
    # x2: the integrand is even, so the integral over [-t_max, t_max] is twice the half-line one.
    weights = 2.0 * trapezoid * target
    return knots, target, weights


def random_directions(
    dim: int,
    num_projections: int,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Unit directions as columns, (dim, num_projections)."""
    directions = torch.randn(dim, num_projections, generator=generator, device=device, dtype=dtype)
    return directions / directions.norm(dim=0, keepdim=True)


def gather_batch(embeddings: torch.Tensor, dim: int) -> torch.Tensor:
    """Every process's ``embeddings`` concatenated along ``dim`` (rank order), with autograd.

    Outside ``torch.distributed`` (or with one process) the input itself. The backward pass
    returns to each process the gradient of its own slice summed over processes, so when every
    process computes the same statistic on the gathered batch and data-parallel training
    averages the parameter gradients, the result is the gradient of the statistic on the
    global batch. Every process must pass the same shape.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return embeddings
    from lewm_mpc.models.collectives import all_gather

    return all_gather(embeddings, dim)


def sigreg(
    embeddings: torch.Tensor,
    config: SIGRegConfig | None = None,
    generator: torch.Generator | None = None,
    directions: torch.Tensor | None = None,
    global_batch: bool = True,
) -> torch.Tensor:
    """Epps-Pulley SIGReg statistic averaged over random directions (and leading dims).

    Args:
        embeddings: (N, D) samples, or (T, N, D) for T independent groups (e.g. time steps,
            each regularized over its batch); the statistic is averaged over groups.
        config: quadrature and projection settings.
        generator: RNG for the directions (fresh directions on every call).
        directions: optional fixed (D, M) unit directions, overriding ``generator``.
        global_batch: under ``torch.distributed``, compute the statistic on the batch of all
            processes (:func:`gather_batch`), as one process would on the concatenated batch;
            False: on this process's shard only (the per-rank statistic is of a smaller sample
            and is not the loss the paper defines). Every process must then draw the same
            directions (seed ``generator`` identically on every rank).

    Returns:
        Scalar tensor (differentiable w.r.t. ``embeddings``).
    """
    config = config or SIGRegConfig()
    if embeddings.ndim == 2:
        embeddings = embeddings.unsqueeze(0)
    if embeddings.ndim != 3:
        raise ValueError(f"embeddings must be (N, D) or (T, N, D), got {tuple(embeddings.shape)}")
    if global_batch:
        embeddings = gather_batch(embeddings, dim=1)  # (T, N_global, D)
    num_samples, dim = embeddings.shape[1], embeddings.shape[2]
    if num_samples < 2:
        raise ValueError(f"SIGReg needs at least 2 samples per group, got {num_samples}")
    if directions is None:
        directions = random_directions(
            dim, config.num_projections, generator, embeddings.device, embeddings.dtype
        )
    knots, target, weights = _quadrature(config, embeddings.device, embeddings.dtype)
    projected = embeddings @ directions  # (T, N, M)
    phase = projected.unsqueeze(-1) * knots  # (T, N, M, K)
    real = torch.cos(phase).mean(dim=1)  # (T, M, K)
    imag = torch.sin(phase).mean(dim=1)  # (T, M, K)
    error = (real - target) ** 2 + imag**2  # (T, M, K)
    statistic = (error @ weights) * num_samples  # (T, M)
    return statistic.mean()


def gaussian_expectation(config: SIGRegConfig | None = None) -> float:
    """Expected statistic for exact N(0, I) samples (finite-sample noise floor).

    Uses E|phi_hat(t) - phi(t)|^2 = (1 - phi(t)^2) / N, integrated with the same quadrature.
    """
    config = config or SIGRegConfig()
    _knots, target, weights = _quadrature(config, torch.device("cpu"), torch.float64)
    return float(((1.0 - target**2) @ weights).item())


__all__ = ["SIGRegConfig", "gaussian_expectation", "random_directions", "sigreg"]
