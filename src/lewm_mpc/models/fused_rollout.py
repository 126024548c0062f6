"""Inference-time rollout of the residual-MLP predictor, fused for the planners' hot path.

Planning spends over 90% of its time in :meth:`WorldModel.rollout`: ``horizon`` sequential
predictor steps on a few hundred candidates, i.e. small matmuls interleaved with norms and
activations, where per-op overhead matters. In eval mode the arithmetic can be rearranged
exactly (up to float rounding) into fewer, larger ops:

* the predictor's first layer is split into a latent part and an action part; the action part
  (and the layer's bias) is one matmul over all ``S * H`` action embeddings up front, and each
  step adds it as the ``addmm`` input instead of concatenating ``[window, action]``;
* the residual ``z + net(x)`` is the ``addmm`` input of the last predictor layer, and that
  layer's bias moves into the projector's first layer;
* the projector's eval-mode BatchNorm (running statistics) is folded into its first layer.

Every matmul of the unfused model is still executed (same FLOPs); what goes is one ``cat``,
one BatchNorm, two bias adds and the window bookkeeping per step.

Planners roll the same weights out thousands of times, so two more savings apply when the
weights are constants (no parameter requires grad, gradients are off, or inside
:func:`~lewm_mpc.models.fused_cache.input_gradients_only`, as the gradient planners
differentiate):

* :class:`~lewm_mpc.models.fused_cache.FusedStepCache` keeps the rearranged weights, each
  matrix stored contiguously in both orientations (in a matmul of a few rows a transposed view
  is 20-45% slower on a CPU), and rebuilds them only when a parameter or buffer changes;
* the gradient with respect to the inputs (start latents, action embeddings, past latents)
  comes from a hand-written backward: one autograd node for the whole rollout instead of about
  fifteen per step, the GELU derivative from the normal CDF its forward saved, the layer
  norms' backward from the statistics theirs saved.

Otherwise (e.g. gradients for the parameters themselves) the rearranged weights are derived
from the parameters on every call and autograd differentiates through them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from lewm_mpc.models.predictors import MLPPredictor

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class _Linear:
    """``x @ weight_t (+ bias)``; ``weight`` (out, in) serves the backward's ``grad @ weight``."""

    weight: torch.Tensor  # (out, in)
    weight_t: torch.Tensor  # (in, out)
    bias: torch.Tensor | None  # (out,)

    @classmethod
    def of(cls, weight: torch.Tensor, bias: torch.Tensor | None, contiguous: bool) -> _Linear:
        if contiguous:  # both orientations stored: each matmul gets a contiguous operand
            weight = weight.contiguous()
            return cls(weight, weight.t().contiguous(), bias)
        return cls(weight, weight.t(), bias)


@dataclass(frozen=True)
class _HiddenLayer:
    """``gelu(layer_norm(linear(x)))`` with the layer norm's own parameters."""

    linear: _Linear
    norm: nn.LayerNorm


@dataclass(frozen=True)
class FusedMLPStep:
    """Weights of one predictor step + projector, rearranged for :func:`fused_mlp_rollout`.

    Attributes:
        latent: (hidden, history * D) latent part of the first predictor layer (no bias).
        action_weight: (hidden, E) action part of the first predictor layer.
        first_bias: (hidden,) bias of the first predictor layer.
        first_norm: layer norm after the first predictor layer.
        hidden: the remaining hidden predictor layers.
        out: (D, hidden) last predictor layer (its bias lives in ``proj``'s).
        proj: (P, D) projector's first layer with BatchNorm and that bias folded in.
        head: (D, P) projector's last layer.
        constant: built as constants (:mod:`lewm_mpc.models.fused_cache`): no tensor of the
            step requires grad, so the hand-written backward applies.
    """

    latent: _Linear
    action_weight: torch.Tensor
    first_bias: torch.Tensor
    first_norm: nn.LayerNorm
    hidden: tuple[_HiddenLayer, ...]
    out: _Linear
    proj: _Linear
    head: _Linear
    constant: bool = False


def fuse_mlp_step(
    predictor: nn.Module, projector: nn.Module, contiguous: bool = False
) -> FusedMLPStep | None:
    """Rearranged step weights, or None when the modules are not the eval-mode layout fused here.

    Args:
        predictor: an :class:`MLPPredictor`.
        projector: the world model's ``pred_projector`` (Linear, BatchNorm1d, GELU, Linear).
        contiguous: store every matrix contiguously in both orientations (copies: worth it
            only for weights that are reused: :mod:`lewm_mpc.models.fused_cache`).
    """
    if not isinstance(predictor, MLPPredictor) or predictor.training or projector.training:
        return None
    layers = list(predictor.net)
    proj = list(getattr(projector, "net", ()))
    if len(proj) != 4 or not isinstance(proj[1], nn.BatchNorm1d):
        return None
    batch_norm: nn.BatchNorm1d = proj[1]
    if batch_norm.running_mean is None or batch_norm.running_var is None:
        return None  # batch statistics even in eval mode: nothing to fold
    first, first_norm = layers[0], layers[1]
    out_layer = layers[-1]
    latent_width = predictor.history * out_layer.out_features  # history * D
    hidden = tuple(
        _HiddenLayer(_Linear.of(layers[i].weight, layers[i].bias, contiguous), layers[i + 1])
        for i in range(3, len(layers) - 1, 3)
    )  # [Linear, LayerNorm, GELU] triples after the first
    # BatchNorm(x) = scale * x + shift, x = W (out + b_out) + b.
    scale = torch.rsqrt(batch_norm.running_var + batch_norm.eps)  # (P,)
    if batch_norm.weight is not None:
        scale = scale * batch_norm.weight
    shift = -batch_norm.running_mean * scale
    if batch_norm.bias is not None:
        shift = shift + batch_norm.bias
    proj_in: nn.Linear = proj[0]
    proj_weight = proj_in.weight * scale[:, None]  # (P, D)
    proj_bias = (proj_in.weight @ out_layer.bias + proj_in.bias) * scale + shift  # (P,)
    return FusedMLPStep(
        latent=_Linear.of(first.weight[:, :latent_width], None, contiguous),
        action_weight=first.weight[:, latent_width:],
        first_bias=first.bias,
        first_norm=first_norm,
        hidden=hidden,
        out=_Linear.of(out_layer.weight, None, contiguous),
        proj=_Linear.of(proj_weight, proj_bias, contiguous),
        head=_Linear.of(proj[3].weight, proj[3].bias, contiguous),
    )


def map_tensors(item: Any, function: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """A fused step with ``function`` applied to its matmul weights and biases (the layer
    norms keep their own parameters)."""
    if isinstance(item, torch.Tensor):
        return function(item)
    if isinstance(item, tuple):
        return tuple(map_tensors(element, function) for element in item)
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.replace(item, **{
            field.name: map_tensors(getattr(item, field.name), function)
            for field in dataclasses.fields(item)
            if not isinstance(getattr(item, field.name), nn.Module | bool)
        })  # fmt: skip
    return item


def fused_mlp_rollout(
    step: FusedMLPStep,
    history: int,
    z0: torch.Tensor,
    action_embeddings: torch.Tensor,
    past: torch.Tensor | None = None,
) -> torch.Tensor:
    """Autoregressive rollout with fused step weights (same maths as the module rollout).

    Args:
        step: from :func:`fuse_mlp_step` (or its cache, :mod:`lewm_mpc.models.fused_cache`).
        history: past embeddings the predictor sees (the window repeats ``z0`` at the start,
            as :class:`MLPPredictor` pads).
        z0: (S, D) start embeddings.
        action_embeddings: (S, H, E) embedded action blocks.
        past: (S, C, D) embeddings before ``z0`` (oldest first) that open the window instead
            of repeats of ``z0`` (the MLP predictor sees only the current step's action).

    Returns:
        (S, H + 1, D) embeddings, index 0 being ``z0``.
    """
    device_type = z0.device.type
    if torch.is_autocast_enabled(device_type):
        # Under autocast run every op in its dtype, casting weights and inputs once, not at
        # every op (layer norms accumulate in float32 internally).
        dtype = torch.get_autocast_dtype(device_type)
        with torch.autocast(device_type, enabled=False):
            return fused_mlp_rollout(
                map_tensors(step, lambda tensor: tensor.to(dtype)),
                history,
                z0.to(dtype),
                action_embeddings.to(dtype),
                None if past is None else past.to(dtype),
            )
    # The first layer's action part for every step at once: (S, H, hidden).
    action_part = F.linear(action_embeddings, step.action_weight, step.first_bias)
    inputs = (z0, action_part, past)
    wanted = any(tensor is not None and tensor.requires_grad for tensor in inputs)
    if step.constant and wanted and torch.is_grad_enabled():
        return _InputGradRollout.apply(step, history, z0, action_part, past)
    return _unroll(step, history, z0, action_part, past, None)


def _unroll(
    step: FusedMLPStep,
    history: int,
    z0: torch.Tensor,
    action_part: torch.Tensor,
    past: torch.Tensor | None,
    tape: list[tuple[torch.Tensor, ...]] | None,
) -> torch.Tensor:
    """The rollout; with a ``tape``, what the hand-written backward needs is appended to it."""
    horizon = action_part.shape[1]
    before = [] if past is None else list(past.unbind(1))  # C tensors of (S, D)
    latents = [*before, z0]  # C + H + 1 tensors of (S, D) once done
    offset = len(before)
    for t in range(offset, offset + horizon):
        if history == 1:
            window = latents[t]  # (S, D)
        else:  # z_{t-history+1} .. z_t, clamped at the oldest: (S, history * D)
            window = torch.cat([latents[_source(t, history, j)] for j in range(history)], 1)
        h = torch.addmm(action_part[:, t - offset], window, step.latent.weight_t)  # (S, hidden)
        h = _norm_gelu(h, step.first_norm, tape)
        for layer in step.hidden:
            h = torch.addmm(layer.linear.bias, h, layer.linear.weight_t)  # (S, hidden)
            h = _norm_gelu(h, layer.norm, tape)
        residual = torch.addmm(latents[t], h, step.out.weight_t)  # (S, D): z_t + net(x) - b_out
        p = _gelu(torch.addmm(step.proj.bias, residual, step.proj.weight_t), tape)  # (S, P)
        latents.append(torch.addmm(step.head.bias, p, step.head.weight_t))  # (S, D)
    return torch.stack(latents[offset:], dim=1)  # (S, H + 1, D)


def _source(t: int, history: int, j: int) -> int:
    """Index of the latent in slot ``j`` of step ``t``'s window (clamped at the oldest)."""
    return max(0, t - history + 1 + j)


def _gelu(x: torch.Tensor, tape: list[tuple[torch.Tensor, ...]] | None) -> torch.Tensor:
    """Exact GELU, x Phi(x); with a tape, computed so that Phi(x) is kept for the backward
    (on a CPU this and :func:`_gelu_grad` take 10% less than ``F.gelu`` and its backward)."""
    if tape is None:
        return F.gelu(x)
    cdf = torch.erfc(x * -_SQRT_HALF).mul_(0.5)  # Phi(x)
    tape.append((x, cdf))
    return x * cdf


def _norm_gelu(
    x: torch.Tensor, norm: nn.LayerNorm, tape: list[tuple[torch.Tensor, ...]] | None
) -> torch.Tensor:
    if tape is None:
        return F.gelu(F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps))
    normed, mean, rstd = torch.native_layer_norm(
        x, norm.normalized_shape, norm.weight, norm.bias, norm.eps
    )
    tape.append((x, mean, rstd))
    return _gelu(normed, tape)


def _gelu_grad(grad: torch.Tensor, saved: Sequence[torch.Tensor]) -> torch.Tensor:
    """``grad * GELU'(x)``, GELU'(x) = Phi(x) + x phi(x), from the saved (x, Phi(x))."""
    x, cdf = saved
    return grad * cdf.addcmul(x, x.square().mul_(-0.5).exp_(), value=_INV_SQRT_2PI)


def _norm_gelu_grad(
    grad: torch.Tensor, norm: nn.LayerNorm, tape: Iterator[tuple[torch.Tensor, ...]]
) -> torch.Tensor:
    activation = _gelu_grad(grad, next(tape))
    x, mean, rstd = next(tape)
    mask = [True, False, False]  # the input's gradient only
    return torch.ops.aten.native_layer_norm_backward(
        activation, x, norm.normalized_shape, mean, rstd, norm.weight, norm.bias, mask
    )[0]


class _InputGradRollout(torch.autograd.Function):
    """:func:`_unroll` with a hand-written backward to its inputs (the weights are constants)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        step: FusedMLPStep,
        history: int,
        z0: torch.Tensor,
        action_part: torch.Tensor,
        past: torch.Tensor | None,
    ) -> torch.Tensor:
        tape: list[tuple[torch.Tensor, ...]] = []
        latents = _unroll(step, history, z0, action_part, past, tape)
        ctx.step, ctx.history, ctx.tape = step, history, tape
        ctx.past_shape = None if past is None else past.shape
        return latents

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """``grad`` (S, H + 1, D) -> gradients of z0 (S, D), action_part (S, H, hidden), past."""
        step, history = ctx.step, ctx.history
        tape = reversed(ctx.tape)  # read back to front, so a retained graph can run again
        offset = 0 if ctx.past_shape is None else ctx.past_shape[1]
        horizon = grad.shape[1] - 1
        d_latents = grad.clone()  # (S, H + 1, D), accumulates each latent's consumers
        d_past = None if ctx.past_shape is None else grad.new_zeros(ctx.past_shape)  # (S, C, D)
        d_actions = []  # (S, hidden) per step, last step first
        for t in reversed(range(horizon)):  # every consumer of latent t + 1 is done
            d_p = d_latents[:, t + 1] @ step.head.weight  # (S, P)
            d_residual = _gelu_grad(d_p, next(tape)) @ step.proj.weight  # (S, D)
            d_latents[:, t].add_(d_residual)  # the residual's z_t
            d_hidden = d_residual @ step.out.weight  # (S, hidden)
            for layer in reversed(step.hidden):
                d_hidden = _norm_gelu_grad(d_hidden, layer.norm, tape) @ layer.linear.weight
            d_first = _norm_gelu_grad(d_hidden, step.first_norm, tape)  # (S, hidden)
            d_actions.append(d_first)
            d_window = (d_first @ step.latent.weight).chunk(history, 1)  # history x (S, D)
            for j, d_slot in enumerate(d_window):
                source = _source(offset + t, history, j)
                if source >= offset:
                    d_latents[:, source - offset].add_(d_slot)
                else:
                    assert d_past is not None
                    d_past[:, source].add_(d_slot)
        d_action_part = torch.stack(d_actions[::-1], dim=1)  # (S, H, hidden)
        return None, None, d_latents[:, 0], d_action_part, d_past
