"""The fitting maths behind :meth:`~lewm_mpc.energies.probes.Probe.fit`: checking (latent,
target) pairs, a train/held-out split that can hold out whole groups (episodes), closed-form
ridge regression for linear probes, a small full-batch Adam-trained MLP (its standardization
folded back into the layers) and the per-output R². Plain tensor functions with no probe
state; :mod:`lewm_mpc.energies.probes` builds :class:`~lewm_mpc.energies.probes.Probe` from
their results.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def _pairs(
    latents: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(latents)
    y = torch.as_tensor(targets)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"need latents (N, D) and targets (N, P), got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"latents must be floating point, got {x.dtype}")
    y = y.to(device=x.device, dtype=x.dtype)
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("latents and targets must be finite")
    return x, y


def _split(
    num: int, val_fraction: float, seed: int, groups: np.ndarray | Sequence[int] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) index tensors; whole groups are held out when ``groups`` is given."""
    rng = np.random.default_rng(seed)
    if groups is None:
        labels = np.arange(num)
    else:
        labels = np.asarray(groups).reshape(-1)
        if labels.shape != (num,):
            raise ValueError(f"groups must have one entry per pair ({num}), got {labels.shape}")
    unique = np.unique(labels)
    if len(unique) < 2:
        raise ValueError(f"need at least 2 pairs (or groups) to hold some out, got {len(unique)}")
    num_val = min(max(1, round(val_fraction * len(unique))), len(unique) - 1)
    held_out = np.isin(labels, rng.permutation(unique)[:num_val])  # (N,)
    train, val = np.flatnonzero(~held_out), np.flatnonzero(held_out)
    if len(train) < 2 or len(val) < 2:
        raise ValueError(
            f"the split leaves {len(train)} training and {len(val)} held-out pairs; need >= 2 "
            "each (more pairs or another val_fraction)"
        )
    return torch.from_numpy(train), torch.from_numpy(val)


def _standardize(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Column mean and (floored) std of (N, K) values."""
    return values.mean(dim=0), values.std(dim=0, correction=0).clamp_min(1e-6)


def _fit_linear(
    x: torch.Tensor, y: torch.Tensor, ridge: float
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Ridge regression ``min mean|x W + b - y|^2 + ridge |W|^2`` in closed form (float64)."""
    x64, y64 = x.double(), y.double()
    x_mean, y_mean = x64.mean(dim=0), y64.mean(dim=0)
    xc, yc = x64 - x_mean, y64 - y64.mean(dim=0)  # (N, D), (N, P)
    gram = xc.T @ xc / len(x64) + ridge * torch.eye(x64.shape[1], dtype=x64.dtype, device=x.device)
    moment = xc.T @ yc / len(x64)  # (D, P)
    # ridge > 0 makes the Gram matrix positive definite; without it, the minimum-norm solution.
    weight = torch.linalg.solve(gram, moment) if ridge > 0 else torch.linalg.pinv(gram) @ moment
    bias = y_mean - x_mean @ weight  # (P,)
    return [weight.to(x.dtype)], [bias.to(x.dtype)]


def _fit_mlp(
    x: torch.Tensor,
    y: torch.Tensor,
    ridge: float,
    hidden: int,
    steps: int,
    lr: float,
    generator: torch.Generator,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Two SiLU hidden layers on standardized data; the scalings are folded into the layers."""
    x_mean, x_std = _standardize(x)
    y_mean, y_std = _standardize(y)
    xs, ys = (x - x_mean) / x_std, (y - y_mean) / y_std  # (N, D), (N, P)
    widths = [x.shape[1], hidden, hidden, y.shape[1]]
    weights, biases = [], []
    for fan_in, fan_out in itertools.pairwise(widths):
        bound = 1.0 / math.sqrt(fan_in)  # PyTorch's nn.Linear initialisation, own generator
        shape_w, shape_b = (fan_in, fan_out), (fan_out,)
        weights.append(_uniform(shape_w, bound, generator, x).requires_grad_())
        biases.append(_uniform(shape_b, bound, generator, x).requires_grad_())
    optimizer = torch.optim.Adam([*weights, *biases], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        h = xs
        for index, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
            h = h @ weight + bias  # (N, out)
            if index < len(weights) - 1:
                h = F.silu(h)
        loss = (h - ys).pow(2).mean() + ridge * sum(w.pow(2).sum() for w in weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        weights = [w.detach() for w in weights]
        biases = [b.detach() for b in biases]
        # x_s = (x - m) / s  =>  x_s @ W + b = x @ (W / s[:, None]) + (b - (m / s) @ W).
        biases[0] = biases[0] - (x_mean / x_std) @ weights[0]
        weights[0] = weights[0] / x_std[:, None]
        # y = y_s * s + m  =>  last layer scaled by s, shifted by m.
        weights[-1] = weights[-1] * y_std
        biases[-1] = biases[-1] * y_std + y_mean
    return weights, biases


def _uniform(
    shape: tuple[int, ...], bound: float, generator: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    values = torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)
    return (2 * values - 1) * bound


def _r2(prediction: torch.Tensor, target: torch.Tensor) -> tuple[float, ...]:
    """Coefficient of determination per output column (NaN where the target is constant)."""
    residual = (prediction - target).double().pow(2).sum(dim=0)  # (P,)
    total = (target.double() - target.double().mean(dim=0)).pow(2).sum(dim=0)  # (P,)
    return tuple(
        1.0 - float(r) / float(t) if float(t) > 0 else math.nan
        for r, t in zip(residual, total, strict=True)
    )
