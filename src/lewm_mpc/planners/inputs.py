"""What a caller hands a planner, checked and prepared: raw observations (:func:`as_batch`:
dtype, shape against the model's ``obs_shape``/``obs_dtype``, finiteness, an optional leading
batch dimension), a history of raw observations encoded into latents (:func:`encode_history`)
and a latent history checked against the model (:func:`check_past`: shapes, and whether its
``rollout`` takes one). :class:`~lewm_mpc.planners.base.Planner` runs them before planning.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from lewm_mpc.types import LatentWorldModel

__all__ = ["as_batch", "check_past", "encode_history"]


def as_batch(model: LatentWorldModel, value: Any, name: str) -> tuple[torch.Tensor, bool]:
    """Validate a raw observation and return it as a (B, *obs_shape) tensor.

    Args:
        model: the world model whose ``obs_shape``/``obs_dtype`` (when it has them) the
            observation must match; the tensor is moved to its device.
        value: a numpy array or torch tensor, ``obs_shape`` or ``(B, *obs_shape)``.
        name: what ``value`` is, for error messages (``"obs"``, ``"goal"``, ...).

    Returns:
        The (B, *obs_shape) tensor (uint8 pixels, else float32) and whether ``value`` was
        batched.

    Raises:
        ValueError: wrong type, dtype or shape, an empty batch, or non-finite states.
    """
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise ValueError(
                f"{name} has dtype {value.dtype}; expected uint8 pixels or a float state"
            )
        tensor = torch.from_numpy(np.array(value))  # a copy: inputs may be read-only
    elif isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        raise ValueError(
            f"{name} must be a numpy array or torch tensor, got {type(value).__name__}"
        )
    shape = tuple(getattr(model, "obs_shape", tensor.shape[-1:]))
    expected_dtype = getattr(model, "obs_dtype", None)
    if tuple(tensor.shape) == shape:
        batched = False
        tensor = tensor.unsqueeze(0)
    elif tensor.ndim == len(shape) + 1 and tuple(tensor.shape[1:]) == shape:
        batched = True
    else:
        raise ValueError(
            f"{name} has shape {tuple(tensor.shape)}; expected {shape} or (B, *{shape})"
        )
    if tensor.shape[0] == 0:
        raise ValueError(f"{name} batch is empty")
    if expected_dtype == torch.uint8:
        if tensor.dtype != torch.uint8:
            raise ValueError(
                f"{name} has dtype {tensor.dtype}; expected uint8 pixels of shape {shape}"
            )
    else:
        if not (tensor.is_floating_point() or tensor.dtype in (torch.int32, torch.int64)):
            raise ValueError(f"{name} has dtype {tensor.dtype}; expected a float state")
        tensor = tensor.float()
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{name} contains NaN or inf")
    return tensor.to(model.device), batched


def check_past(
    model: LatentWorldModel, past: tuple[torch.Tensor, torch.Tensor] | None, z0: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Validate a (B, C, D) / (B, C, block*A) history against the model; None if unused.

    Args:
        model: the world model; a history is used only when its ``history`` is > 1.
        past: ``(past_latents (B, C, D), past_actions (B, C, block*A))`` or None.
        z0: (B, D) start latents the history precedes.

    Raises:
        ValueError: the model's ``rollout`` takes no history, or the shapes do not match.
    """
    if past is None or getattr(model, "history", 1) <= 1:
        return None
    if "past_latents" not in inspect.signature(model.rollout).parameters:
        raise ValueError(
            f"{type(model).__name__}.rollout takes no past_latents/past_actions; "
            "plan without a history"
        )
    latents, actions = past
    block = model.action_block * model.action_dim
    if (latents.ndim != 3 or latents.shape[0] != z0.shape[0]
            or latents.shape[2] != z0.shape[1]
            or actions.shape != (*latents.shape[:2], block)):  # fmt: skip
        raise ValueError(
            f"history must be C past latents (B, C, D={z0.shape[1]}) and their blocks "
            f"(B, C, {block}), got {tuple(latents.shape)} and {tuple(actions.shape)}"
        )
    return latents, actions


def encode_history(
    model: LatentWorldModel,
    history: tuple[Any, Any],
    batched: bool,
    num_envs: int,
    check: Callable[[Any, str], tuple[torch.Tensor, bool]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """(past_obs, past_actions) -> latents (B, C, D) and blocks (B, C, block*A).

    Args:
        model: the world model that encodes the past observations.
        history: ``(past_obs (C, *obs_shape), past_actions (C, block*A))``, with a leading B
            when ``batched``; oldest first.
        batched: whether the history is batched.
        num_envs: B.
        check: validates raw observations as :func:`as_batch` does for ``model`` (a planner
            passes its own input check, which an instance may wrap).
    """
    past_obs, past_actions = history
    past_obs = torch.as_tensor(np.asarray(past_obs))
    past_obs = past_obs if batched else past_obs.unsqueeze(0)  # (B, C, *obs_shape)
    frames, _ = check(past_obs.flatten(0, 1), "history observations")
    with torch.inference_mode():
        latents = model.encode(frames).clone()  # (B*C, D)
    latents = latents.view(num_envs, -1, latents.shape[-1])  # (B, C, D)
    actions = torch.as_tensor(np.asarray(past_actions, dtype=np.float32))
    actions = (actions if batched else actions.unsqueeze(0)).to(latents.device)
    return latents, actions
