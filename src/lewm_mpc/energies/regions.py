"""Region guardrails on a probed quantity (e.g. the agent's position read from the latent).

Each one maps every predicted latent ``z_1 .. z_H`` through a probe (``(..., D) -> (..., P)``,
e.g. a :class:`~lewm_mpc.energies.Probe`) and sums a per-step violation over the steps, so a plan
that passes through a forbidden region and leaves it again is still penalized. The violations
are continuous and piecewise differentiable (gradient planners' augmented Lagrangian uses them);
they are exactly 0 on allowed points, so they can be hard guardrails with tolerance 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from lewm_mpc.energies.base import GuardrailEnergy, TensorCache

LatentMap = Callable[[torch.Tensor], torch.Tensor]


def _vector(values: Sequence[float] | torch.Tensor, name: str) -> tuple[float, ...]:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().reshape(-1).tolist()
    vector = tuple(float(v) for v in values)
    if not vector or not all(math.isfinite(v) for v in vector):
        raise ValueError(f"{name} must be a non-empty sequence of finite numbers, got {vector}")
    return vector


def _check_probe(probe: LatentMap, size: int, owner: str) -> None:
    if not callable(probe):
        raise ValueError(f"{owner}: probe must be callable (latents -> quantity), got {probe!r}")
    output_dim = getattr(probe, "output_dim", None)
    if output_dim is not None and output_dim != size:
        raise ValueError(
            f"{owner}: the probe outputs {output_dim} values but the region has {size} dimensions"
        )


def _init_box(region: KeepOutBox | StayInsideBox, owner: str) -> None:
    """Validate and freeze a box region's corners, probe and substeps (shared by both boxes)."""
    low, high = _vector(region.low, "low"), _vector(region.high, "high")
    if len(low) != len(high) or not all(a < b for a, b in zip(low, high, strict=True)):
        raise ValueError(f"{owner} needs low < high elementwise, got {low} and {high}")
    _check_probe(region.probe, len(low), owner)
    _check_substeps(region.substeps, owner)
    object.__setattr__(region, "low", low)
    object.__setattr__(region, "high", high)
    bounds = torch.tensor([low, high], dtype=torch.float64)  # (2, P)
    object.__setattr__(region, "_bounds", TensorCache(bounds))


def _check_substeps(substeps: int, owner: str) -> None:
    if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
        raise ValueError(f"{owner}: substeps must be an int >= 1, got {substeps!r}")


def _probed_steps(
    probe: LatentMap, latents: torch.Tensor, size: int, owner: str, substeps: int = 1
) -> torch.Tensor:
    """Probe the predicted steps: (S, H+1, D) latents -> (S, H * substeps, P) quantities.

    With ``substeps > 1`` each predicted step also contributes ``substeps - 1`` points linearly
    interpolated from the previous step (the start included): one model step spans a block of
    env actions, during which the system can cross a small region between two predicted points.
    """
    if substeps == 1:
        points = probe(latents[:, 1:])  # (S, H, P)
    else:
        nodes = probe(latents)  # (S, H+1, P)
        fractions = torch.arange(1, substeps + 1, device=nodes.device, dtype=nodes.dtype)
        fractions = fractions / substeps  # (K,)
        start, delta = nodes[:, :-1, None], (nodes[:, 1:] - nodes[:, :-1])[:, :, None]
        points = start + fractions[:, None] * delta  # (S, H, K, P)
        points = points.flatten(1, 2)  # (S, H*K, P)
    expected = (latents.shape[0], (latents.shape[1] - 1) * substeps, size)
    if points.shape != expected:
        raise ValueError(
            f"{owner}: probe returned shape {tuple(points.shape)} for latents "
            f"{tuple(latents.shape)}; expected (S, H, {size}) per step"
        )
    return points


@dataclass(frozen=True, eq=False)
class KeepOutBox(GuardrailEnergy):
    """Forbid an axis-aligned box: penetration depth summed over the predicted steps.

    At a step with probed point ``p`` inside the box grown by ``margin``, the violation is the
    distance to its nearest face, ``min_i min(p_i - low_i, high_i - p_i) + margin``; outside
    (and on the boundary of) the grown box it is 0.

    Attributes:
        probe: latent -> quantity map with P outputs.
        low: (P,) lower corner.
        high: (P,) upper corner, > ``low`` in every dimension.
        margin: safety margin added around the box, >= 0.
        substeps: points checked per predicted step (>1 adds points interpolated from the
            previous step, so a fast system cannot jump over the box between two steps).
    """

    probe: LatentMap
    low: Sequence[float]
    high: Sequence[float]
    margin: float = 0.0
    substeps: int = 1
    _bounds: TensorCache = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _init_box(self, "KeepOutBox")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"KeepOutBox margin must be >= 0, got {self.margin}")

    def __call__(
        self, latents: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> torch.Tensor:
        points = _probed_steps(self.probe, latents, len(self.low), "KeepOutBox", self.substeps)
        (bounds,) = self._bounds.like(points)
        to_faces = torch.minimum(points - bounds[0], bounds[1] - points)  # (S, H, P)
        depth = to_faces.amin(dim=-1) + self.margin  # (S, H)
        return depth.clamp_min(0.0).sum(dim=1)  # (S,)


@dataclass(frozen=True, eq=False)
class KeepOutDisc(GuardrailEnergy):
    """Forbid a disc (a ball in P dimensions): ``sum_t max(0, radius - |p_t - center|)``.

    Attributes:
        probe: latent -> quantity map with P outputs.
        center: (P,) centre.
        radius: radius, > 0.
        substeps: points checked per predicted step (see :class:`KeepOutBox`).
    """

    probe: LatentMap
    center: Sequence[float]
    radius: float
    substeps: int = 1
    _center: TensorCache = field(init=False, repr=False)

    def __post_init__(self) -> None:
        center = _vector(self.center, "center")
        if not (math.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"KeepOutDisc radius must be > 0, got {self.radius}")
        _check_probe(self.probe, len(center), "KeepOutDisc")
        _check_substeps(self.substeps, "KeepOutDisc")
        object.__setattr__(self, "center", center)
        object.__setattr__(self, "_center", TensorCache(torch.tensor(center, dtype=torch.float64)))

    def __call__(
        self, latents: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> torch.Tensor:
        points = _probed_steps(
            self.probe, latents, len(self.center), "KeepOutDisc", self.substeps
        )  # (S, H*K, P)
        (center,) = self._center.like(points)
        distance = torch.linalg.vector_norm(points - center, dim=-1)  # (S, H)
        return (self.radius - distance).clamp_min(0.0).sum(dim=1)  # (S,)


@dataclass(frozen=True, eq=False)
class StayInsideBox(GuardrailEnergy):
    """Stay in an axis-aligned box: Euclidean distance outside it, summed over predicted steps.

    Attributes:
        probe: latent -> quantity map with P outputs.
        low: (P,) lower corner.
        high: (P,) upper corner, > ``low`` in every dimension.
        substeps: points checked per predicted step (see :class:`KeepOutBox`).
    """

    probe: LatentMap
    low: Sequence[float]
    high: Sequence[float]
    substeps: int = 1
    _bounds: TensorCache = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _init_box(self, "StayInsideBox")

    def __call__(
        self, latents: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> torch.Tensor:
        points = _probed_steps(self.probe, latents, len(self.low), "StayInsideBox", self.substeps)
        (bounds,) = self._bounds.like(points)
        excess = (bounds[0] - points).clamp_min(0.0) + (points - bounds[1]).clamp_min(0.0)
        return torch.linalg.vector_norm(excess, dim=-1).sum(dim=1)  # (S,)
