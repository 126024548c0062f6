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
one BatchNorm, two bias adds and the window bookkeeping per step. The folded weights are derived
from the parameters on every call (a few microseconds), so they are never stale and gradients
flow through them (the gradient planner differentiates the rollout with respect to actions).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from lewm_mpc.models.predictors import MLPPredictor


@dataclass(frozen=True)
class _HiddenLayer:
    """``gelu(layer_norm(x @ weight_t + bias))`` with the layer norm's own parameters."""

    weight_t: torch.Tensor  # (in, hidden)
    bias: torch.Tensor  # (hidden,)
    norm: nn.LayerNorm


@dataclass(frozen=True)
class FusedMLPStep:
    """Weights of one predictor step + projector, rearranged for :func:`fused_mlp_rollout`.

    Attributes:
        latent_weight_t: (history * D, hidden) latent part of the first predictor layer.
        action_weight: (hidden, E) action part of the first predictor layer.
        first_bias: (hidden,) bias of the first predictor layer.
        first_norm: layer norm after the first predictor layer.
        hidden: the remaining hidden predictor layers.
        out_weight_t: (hidden, D) last predictor layer (its bias lives in ``proj_bias``).
        proj_weight_t: (D, P) projector's first layer with BatchNorm folded in.
        proj_bias: (P,) its bias, including the last predictor layer's bias.
        head_weight_t: (P, D) projector's last layer.
        head_bias: (D,) its bias.
    """

    latent_weight_t: torch.Tensor
    action_weight: torch.Tensor
    first_bias: torch.Tensor
    first_norm: nn.LayerNorm
    hidden: tuple[_HiddenLayer, ...]
    out_weight_t: torch.Tensor
    proj_weight_t: torch.Tensor
    proj_bias: torch.Tensor
    head_weight_t: torch.Tensor
    head_bias: torch.Tensor


def fuse_mlp_step(predictor: nn.Module, projector: nn.Module) -> FusedMLPStep | None:
    """Rearranged step weights, or None when the modules are not the eval-mode layout fused here.

    Args:
        predictor: an :class:`MLPPredictor`.
        projector: the world model's ``pred_projector`` (Linear, BatchNorm1d, GELU, Linear).
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
        _HiddenLayer(layers[i].weight.t(), layers[i].bias, layers[i + 1])
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
        latent_weight_t=first.weight[:, :latent_width].t(),
        action_weight=first.weight[:, latent_width:],
        first_bias=first.bias,
        first_norm=first_norm,
        hidden=hidden,
        out_weight_t=out_layer.weight.t(),
        proj_weight_t=proj_weight.t(),
        proj_bias=proj_bias,
        head_weight_t=proj[3].weight.t(),
        head_bias=proj[3].bias,
    )


def _cast(step: FusedMLPStep, dtype: torch.dtype) -> FusedMLPStep:
    """The step's matmul weights and biases in ``dtype`` (layer norms keep their own)."""

    def cast_tensors(item):  # every tensor field of a step or hidden layer
        return dataclasses.replace(item, **{
            field.name: getattr(item, field.name).to(dtype)
            for field in dataclasses.fields(item)
            if isinstance(getattr(item, field.name), torch.Tensor)
        })  # fmt: skip

    return dataclasses.replace(
        cast_tensors(step), hidden=tuple(cast_tensors(layer) for layer in step.hidden)
    )


def _norm_gelu(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    return F.gelu(F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps))


def fused_mlp_rollout(
    step: FusedMLPStep,
    history: int,
    z0: torch.Tensor,
    action_embeddings: torch.Tensor,
    past: torch.Tensor | None = None,
) -> torch.Tensor:
    """Autoregressive rollout with fused step weights (same maths as the module rollout).

    Args:
        step: from :func:`fuse_mlp_step`.
        history: past embeddings the predictor sees (the window repeats ``z0`` at the start,
            as :class:`MLPPredictor` pads).
        z0: (S, D) start embeddings.
        action_embeddings: (S, H, E) embedded action blocks.
        past: (S, C, D) embeddings before ``z0`` (oldest first) that open the window instead
            of repeats of ``z0`` (the MLP predictor sees only the current step's action).

    Returns:
        (S, H + 1, D) embeddings, index 0 being ``z0``.
    """
    horizon = action_embeddings.shape[1]
    device_type = z0.device.type
    if torch.is_autocast_enabled(device_type):
        # Under autocast run every op in its dtype, casting weights and inputs once, not at
        # every op (layer norms accumulate in float32 internally).
        dtype = torch.get_autocast_dtype(device_type)
        with torch.autocast(device_type, enabled=False):
            return fused_mlp_rollout(
                _cast(step, dtype),
                history,
                z0.to(dtype),
                action_embeddings.to(dtype),
                None if past is None else past.to(dtype),
            )
    # The first layer's action part for every step at once: (S, H, hidden).
    action_part = F.linear(action_embeddings, step.action_weight, step.first_bias)
    before = [] if past is None else list(past.unbind(1))  # C tensors of (S, D)
    latents = [*before, z0]  # C + H + 1 tensors of (S, D) once done
    offset = len(before)
    for t in range(offset, offset + horizon):
        if history == 1:
            window = latents[t]  # (S, D)
        else:  # z_{t-history+1} .. z_t, clamped at the oldest: (S, history * D)
            window = torch.cat([latents[max(0, t - history + 1 + j)] for j in range(history)], 1)
        h = torch.addmm(action_part[:, t - offset], window, step.latent_weight_t)  # (S, hidden)
        h = _norm_gelu(h, step.first_norm)
        for layer in step.hidden:
            h = _norm_gelu(torch.addmm(layer.bias, h, layer.weight_t), layer.norm)  # (S, hidden)
        residual = torch.addmm(latents[t], h, step.out_weight_t)  # (S, D): z_t + net(x) - b_out
        p = F.gelu(torch.addmm(step.proj_bias, residual, step.proj_weight_t))  # (S, P)
        latents.append(torch.addmm(step.head_bias, p, step.head_weight_t))  # (S, D)
    return torch.stack(latents[offset:], dim=1)  # (S, H + 1, D)
