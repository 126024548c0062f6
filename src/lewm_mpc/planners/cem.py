"""Cross-entropy method over action sequences (LeWorldModel's planner), with iCEM's options.

Also home of :func:`colored_noise`, the temporally correlated noise iCEM samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lewm_mpc.energies import ObjectiveValue
from lewm_mpc.planners.base import Planner
from lewm_mpc.planners.sampling import (
    GaussianSamplingConfig,
    SamplingPlanner,
    SamplingState,
    refit,
)


@dataclass(frozen=True)
class CEMConfig(GaussianSamplingConfig):
    """CEM knobs (LeWorldModel's 300 samples and top 30, 2 rounds and an L-BFGS polish of 4
    descents by default, see :class:`SamplingConfig`; the iCEM options are off).

    Attributes:
        num_samples: candidate plans per iteration.
        iterations: refit rounds.
        topk: elites refitting the Gaussian.
        init_std: initial std as a fraction of the half action range.
        min_std: std floor (fraction of the half range), keeps exploring after collapse.
        noise_beta: exponent of the noise's power spectrum 1/f^beta along the time axis
            (horizon * action_block env steps), as in iCEM (Pinneri et al. 2020): 0 is white
            noise (plain CEM), larger values give smoother, temporally correlated plans
            (iCEM used about 2-4).
        keep_elites: fraction of the previous iteration's ``topk`` elites carried over as
            candidates into the next iteration (iCEM's "keep elites"; 0 keeps none). They
            replace the last sampled candidates, so every iteration still scores
            ``num_samples`` plans.
    """

    topk: int = 30
    init_std: float = 1.0
    min_std: float = 0.02
    noise_beta: float = 0.0
    keep_elites: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.topk <= self.num_samples:
            raise ValueError(
                f"topk must be in [1, num_samples={self.num_samples}], got {self.topk}"
            )
        if not self.init_std > 0 or not 0 <= self.min_std <= self.init_std:
            raise ValueError(
                f"need init_std > 0 and 0 <= min_std <= init_std, got {self.init_std}, "
                f"{self.min_std}"
            )
        if not self.noise_beta >= 0:
            raise ValueError(f"noise_beta must be >= 0, got {self.noise_beta}")
        if not 0 <= self.keep_elites <= 1:
            raise ValueError(f"keep_elites must be in [0, 1], got {self.keep_elites}")
        if self.noise_beta > 0 and self.covariance == "full":
            raise ValueError(
                "noise_beta > 0 (colored noise) and covariance='full' are exclusive: the full "
                "covariance learns the temporal correlation that colored noise fixes in advance"
            )
        if self.num_kept >= self.num_samples:
            raise ValueError(
                f"keep_elites={self.keep_elites} keeps {self.num_kept} elites, which must be "
                f"< num_samples={self.num_samples} (candidate 0 is the mean)"
            )

    @property
    def num_kept(self) -> int:
        """Elites carried into the next iteration: ``round(keep_elites * topk)``."""
        return round(self.keep_elites * self.topk)


class CEM(SamplingPlanner):
    """Sample Gaussian plans, keep the ``topk`` best, refit mean and std, repeat.

    The current mean is always one of the candidates, and the best candidate ever scored is
    returned, so the returned energy never gets worse with more iterations.
    """

    config_class = CEMConfig
    config: CEMConfig

    def initial_state(self, init: torch.Tensor) -> SamplingState:
        """``init`` with a std of ``init_std`` half ranges."""
        std = (self.config.init_std * self.half_range).expand_as(init).clone()  # (B, H, bA)
        return SamplingState(init, std)

    def noise(self, state: SamplingState, num_samples: int) -> torch.Tensor:
        """(B, S, H, block*A) noise, white or 1/f^``noise_beta`` along env time."""
        return _sample_noise(self, self.config.noise_beta, num_samples, state.mean)

    def update(
        self,
        state: SamplingState,
        candidates: torch.Tensor,
        value: ObjectiveValue,
        order: torch.Tensor,
    ) -> SamplingState:
        """Refit the Gaussian to the ``topk`` elites (std floored at ``min_std``)."""
        cfg = self.config
        elites = candidates.gather(
            1, order[:, : cfg.topk, None, None].expand(-1, -1, *candidates.shape[2:])
        )  # (B, K, H, block*A)
        mean, floor = elites.mean(dim=1), cfg.min_std * self.half_range
        if cfg.covariance == "full":
            weights = torch.full(elites.shape[:2], 1.0 / cfg.topk, dtype=mean.dtype,
                                 device=mean.device)  # fmt: skip
            std, covariance = refit(cfg, state, mean, elites, weights, floor)
        else:
            std, covariance = torch.maximum(elites.std(dim=1, correction=0), floor), None
        kept = elites[:, : cfg.num_kept] if cfg.num_kept > 0 else None
        return SamplingState(mean, std, kept, covariance)


def _sample_noise(
    planner: Planner, beta: float, num_samples: int, mean: torch.Tensor
) -> torch.Tensor:
    """(B, S, H, block*A) standard-normal noise, white or 1/f^beta along env time."""
    shape = (mean.shape[0], num_samples, *mean.shape[1:])
    if beta == 0:
        return torch.randn(shape, generator=planner.generator, device=mean.device, dtype=mean.dtype)
    block = planner.model.action_block
    action_dim = mean.shape[-1] // block
    steps = mean.shape[1] * block  # env time axis: H * block
    noise = colored_noise(
        (mean.shape[0], num_samples, action_dim, steps), beta, planner.generator
    )  # (B, S, A, H*block)
    noise = noise.to(device=mean.device, dtype=mean.dtype).transpose(-1, -2)  # (B, S, H*block, A)
    return noise.reshape(shape)  # (B, S, H, block*A)


def colored_noise(shape: tuple[int, ...], beta: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise with power spectrum proportional to 1/f^beta along the last axis.

    Random-phase spectrum shaped by ``f^(-beta/2)`` and transformed back with an inverse real
    FFT (the method of Timmer & Koenig 1995, as in the ``colorednoise`` package iCEM uses).
    The lowest frequency is cut off at 1/T, so the DC component gets the power of the lowest
    resolvable frequency. Every entry has exactly unit variance; ``beta = 0`` is white noise.

    Args:
        shape: output shape, time last (T = ``shape[-1]``).
        beta: spectral exponent, >= 0 (1: pink, 2: red/Brownian-like).
        generator: the generator all randomness comes from (its device is used).

    Returns:
        A float32 tensor of ``shape`` on the generator's device.
    """
    steps = shape[-1]
    device = generator.device
    freqs = torch.fft.rfftfreq(steps, device=device)  # (F,) with F = T // 2 + 1
    freqs[0] = 1.0 / steps
    scale = freqs.pow(-beta / 2)  # (F,) amplitude per frequency
    # The DC term (and the Nyquist term for even T) is real: give it the variance of a complex
    # term's real and imaginary parts together.
    real_only = torch.zeros_like(scale, dtype=torch.bool)
    real_only[0] = True
    if steps % 2 == 0:
        real_only[-1] = True
    scale_real = torch.where(real_only, scale * math.sqrt(2.0), scale)
    scale_imag = torch.where(real_only, torch.zeros_like(scale), scale)
    spectrum_shape = (*shape[:-1], scale.shape[0])
    real = torch.randn(spectrum_shape, generator=generator, device=device) * scale_real
    imag = torch.randn(spectrum_shape, generator=generator, device=device) * scale_imag
    signal = torch.fft.irfft(torch.complex(real, imag), n=steps, dim=-1)  # (*shape)
    # Var(signal[t]) = (sum_DC,Nyq scale_real^2 + 2 * sum_other (scale_real^2 + scale_imag^2)) / T^2
    weight = torch.where(real_only, torch.ones_like(scale), 2 * torch.ones_like(scale))
    variance = (weight * (scale_real.pow(2) + scale_imag.pow(2))).sum() / steps**2
    return signal / variance.sqrt()
