"""Constraint heads: a logistic classifier on the latent saying "this state violates a rule".

Fitted from a handful (tens) of labelled observations, a head turns "don't enter the red zone"
into a guardrail without a probe of any physical quantity. Its violation at a predicted step is
``softplus(logit) = -log P(safe)``, the negative log-probability that the step is safe:

* non-negative, and ~0 where the head is confident the state is safe (``logit << 0``);
* growing linearly, not saturating, with the logit on the unsafe side, so gradient planners and
  the ranking of infeasible plans (by violation) still see which plan is *less* unsafe, where
  ``sigmoid(logit)`` would flatten out at 1;
* with a probabilistic tolerance: ``reduce="max"`` and ``tolerance = -log(1 - risk)``
  (:meth:`ConstraintHead.tolerance`) make a hard guardrail require every predicted step to be
  safe with probability at least ``1 - risk``; ``reduce="sum"`` is ``-log`` of the probability
  that all steps are safe (steps taken as independent).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lewm_mpc.energies._io import load_head, save_head
from lewm_mpc.energies.base import Guardrail, GuardrailEnergy, TensorCache
from lewm_mpc.models.checkpoint import CheckpointError

REDUCTIONS = ("max", "mean", "sum")
_KIND = "lewm_mpc.ConstraintHead"


class ConstraintHead(GuardrailEnergy):
    """Logistic "violating" classifier on latents, usable as a guardrail energy.

    Called as an energy, it scores the predicted steps ``1 .. H`` of each candidate (step 0,
    the current state, cannot be changed by the plan) and reduces them with ``reduce``.

    Args:
        weight: (D,) logit weights.
        bias: logit bias.
        reduce: ``"max"`` (default), ``"mean"`` or ``"sum"`` of the per-step violations.
        train_accuracy: accuracy on the labelled latents it was fitted on (NaN if unknown).
        num_train: number of labelled latents it was fitted on.

    Attributes:
        reduce: reduction over predicted steps.
        train_accuracy: training accuracy of the classifier.
        num_train: labelled latents behind the fit.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: float | torch.Tensor,
        reduce: str = "max",
        *,
        train_accuracy: float = math.nan,
        num_train: int = 0,
    ) -> None:
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
        weight = torch.as_tensor(weight).detach()
        bias = torch.as_tensor(bias, dtype=weight.dtype, device=weight.device).detach().reshape(())
        if weight.ndim != 1 or not weight.is_floating_point():
            raise ValueError(f"weight must be a (D,) float tensor, got {tuple(weight.shape)}")
        if not (torch.isfinite(weight).all() and torch.isfinite(bias)):
            raise ValueError("weight and bias must be finite")
        self._weight, self._bias = weight, bias
        self._cache = TensorCache(weight, bias)
        self.reduce = reduce
        self.train_accuracy = float(train_accuracy)
        self.num_train = int(num_train)

    @property
    def input_dim(self) -> int:
        """Latent size D."""
        return int(self._weight.shape[0])

    @property
    def weight(self) -> torch.Tensor:
        """(D,) logit weights, as stored."""
        return self._weight

    @property
    def bias(self) -> torch.Tensor:
        """Scalar logit bias, as stored."""
        return self._bias

    def logits(self, latents: torch.Tensor) -> torch.Tensor:
        """Violation logits of latents ``(..., D)`` -> ``(...)`` (positive: likely violating)."""
        if latents.shape[-1:] != (self.input_dim,):
            raise ValueError(
                f"constraint head expects latents of size D={self.input_dim} in the last "
                f"dimension, got shape {tuple(latents.shape)}"
            )
        weight, bias = self._cache.like(latents)
        return latents @ weight + bias  # (...)

    def probability(self, latents: torch.Tensor) -> torch.Tensor:
        """Probability that each latent ``(..., D)`` violates the rule, ``(...)``."""
        return torch.sigmoid(self.logits(latents))

    def __call__(
        self, latents: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> torch.Tensor:
        """Violation ``(S,)`` of trajectories ``(S, H+1, D)``: reduced ``-log P(safe)``."""
        per_step = F.softplus(self.logits(latents[:, 1:]))  # (S, H)
        if self.reduce == "max":
            return per_step.amax(dim=1)
        if self.reduce == "mean":
            return per_step.mean(dim=1)
        return per_step.sum(dim=1)  # (S,)

    @staticmethod
    def tolerance(risk: float) -> float:
        """Violation tolerance ``-log(1 - risk)``: with ``reduce="max"`` a hard guardrail then
        accepts a plan when every predicted step is safe with probability >= ``1 - risk``."""
        if not 0.0 < risk < 1.0:
            raise ValueError(f"risk must be in (0, 1), got {risk}")
        return -math.log1p(-risk)

    def as_guardrail(
        self,
        name: str,
        *,
        weight: float = 1.0,
        hard: bool = False,
        tolerance: float | None = None,
        risk: float = 0.05,
    ) -> Guardrail:
        """Wrap the head in a :class:`Guardrail`.

        Args:
            name: term name.
            weight: penalty weight.
            hard: whether feasibility requires the violation within tolerance.
            tolerance: explicit tolerance; by default :meth:`tolerance` of ``risk``.
            risk: accepted per-step violation probability when ``tolerance`` is not given.
        """
        tolerance = self.tolerance(risk) if tolerance is None else tolerance
        return Guardrail(self, name, weight=weight, hard=hard, tolerance=tolerance)

    def __repr__(self) -> str:
        return (
            f"ConstraintHead(input_dim={self.input_dim}, reduce={self.reduce!r}, "
            f"train_accuracy={self.train_accuracy:.3f})"
        )

    # ------------------------------------------------------------------------- fitting
    @classmethod
    def fit(
        cls,
        latents: torch.Tensor | np.ndarray,
        labels: torch.Tensor | np.ndarray | Sequence[bool],
        ridge: float = 1e-3,
        reduce: str = "max",
        max_iterations: int = 100,
    ) -> ConstraintHead:
        """Fit by ridge-regularized logistic regression (Newton's method, in float64).

        Inputs are standardized for the fit (the scaling is folded into the stored weights),
        so ``ridge`` is comparable across latent scales. The ridge keeps the weights finite on
        linearly separable labels, which a handful of points usually are; a larger ridge gives
        a softer (less confident) head, a smaller one a sharper boundary.

        Args:
            latents: (N, D) latents of labelled observations.
            labels: (N,) booleans, True where the observation violates the rule.
            ridge: L2 penalty on the standardized weights (bias unpenalized), > 0.
            reduce: reduction over predicted steps (see the class).
            max_iterations: Newton iterations at most.

        Returns:
            The head, with ``train_accuracy`` set.

        Raises:
            ValueError: bad shapes, non-finite latents, a single class, or bad options.
        """
        x = torch.as_tensor(latents)
        y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
        if x.ndim != 2 or y.shape != x.shape[:1] or not x.is_floating_point():
            raise ValueError(
                f"need float latents (N, D) and labels (N,), got {tuple(x.shape)} {x.dtype} and "
                f"{tuple(y.shape)}"
            )
        if y.dtype != torch.bool:
            raise ValueError(f"labels must be booleans (True = violating), got {y.dtype}")
        if bool(y.all()) or not bool(y.any()):
            raise ValueError("labels must contain both violating (True) and safe (False) examples")
        if not torch.isfinite(x).all():
            raise ValueError("latents must be finite")
        if not (math.isfinite(ridge) and ridge > 0) or max_iterations < 1:
            raise ValueError(
                f"ridge must be > 0 and max_iterations >= 1, got {ridge} and {max_iterations}"
            )
        with torch.inference_mode(False), torch.no_grad():
            x64, y64 = x.double().clone(), y.to(device=x.device, dtype=torch.float64)
            mean, std = x64.mean(dim=0), x64.std(dim=0, correction=0).clamp_min(1e-6)
            design = torch.cat([(x64 - mean) / std, torch.ones_like(x64[:, :1])], dim=1)  # (N, D+1)
            theta = _newton_logistic(design, y64, ridge, max_iterations)  # (D+1,)
            weight = theta[:-1] / std  # (D,)
            bias = theta[-1] - (mean / std) @ theta[:-1]
            accuracy = float(((design @ theta > 0) == y.to(x.device)).double().mean())
        return cls(
            weight.to(x.dtype),
            bias.to(x.dtype),
            reduce,
            train_accuracy=accuracy,
            num_train=x.shape[0],
        )

    # ------------------------------------------------------------------------- storage
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the head to the folder ``path`` (``model.safetensors`` + ``config.json``)."""
        config = {
            "input_dim": self.input_dim,
            "reduce": self.reduce,
            "train_accuracy": self.train_accuracy if math.isfinite(self.train_accuracy) else None,
            "num_train": self.num_train,
        }
        tensors = {"weight": self._weight, "bias": self._bias}
        return save_head(path, _KIND, tensors, config)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], device: str | torch.device = "cpu"
    ) -> ConstraintHead:
        """Read a head written by :meth:`save`.

        Raises:
            CheckpointError: missing, corrupted or foreign files.
        """
        tensors, config = load_head(path, _KIND)
        try:
            accuracy = config["train_accuracy"]
            return cls(
                tensors["weight"].to(device),
                tensors["bias"].to(device),
                config["reduce"],
                train_accuracy=math.nan if accuracy is None else float(accuracy),
                num_train=config["num_train"],
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{path} holds an invalid constraint head: {error}") from None


def _newton_logistic(
    design: torch.Tensor, labels: torch.Tensor, ridge: float, max_iterations: int
) -> torch.Tensor:
    """Minimize ``mean(softplus(X t) - y * X t) + ridge/2 |t[:-1]|^2`` by damped Newton steps."""
    num, size = design.shape
    penalty = torch.full((size,), ridge, dtype=design.dtype, device=design.device)
    penalty[-1] = 1e-10  # the bias is (almost) unpenalized

    def loss(theta: torch.Tensor) -> torch.Tensor:
        logits = design @ theta  # (N,)
        return (F.softplus(logits) - labels * logits).mean() + 0.5 * (penalty * theta.pow(2)).sum()

    theta = design.new_zeros(size)
    current = loss(theta)
    for _ in range(max_iterations):
        prob = torch.sigmoid(design @ theta)  # (N,)
        grad = design.T @ (prob - labels) / num + penalty * theta  # (D+1,)
        if float(grad.abs().max()) < 1e-10:
            break
        curvature = prob * (1 - prob)  # (N,)
        hessian = (design * curvature[:, None]).T @ design / num + torch.diag(penalty)
        step = torch.linalg.solve(hessian, grad)  # (D+1,)
        scale = 1.0
        while scale > 1e-8:  # backtracking (Armijo) line search
            candidate = theta - scale * step
            value = loss(candidate)
            if float(value) <= float(current) - 1e-4 * scale * float(grad @ step):
                break
            scale /= 2
        theta, current = candidate, value
    return theta
