"""Checks of what users hand the package: action bounds, world models and energies of their own.

Each check lives here once, so a config, every planner and a user's protocol model reject the
same bad input with the same message. Checks that need a model's outputs run once per planner,
on its first plan, never inside the planning loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

PROTOCOL_MEMBERS = (
    "encode", "rollout", "latent_dim", "action_dim", "action_block", "action_low",
    "action_high", "device",
)  # fmt: skip
"""Members of :class:`lewm_mpc.types.LatentWorldModel`, in the order they are checked."""
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # bounds become float32 tensors


def _bound_array(value: Any, name: str, owner: str) -> np.ndarray:
    """One bound as a float64 (A,) array; ValueError if it is not a 1-D sequence of numbers."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    try:
        array = np.array(value, dtype=np.float64)  # a copy: never alias the caller's array
    except (TypeError, ValueError):
        raise ValueError(
            f"{owner}{name} must be a sequence of numbers (tuple, list, numpy array or tensor), "
            f"got {value!r}"
        ) from None
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"{owner}{name} must have one entry per action dimension (a non-empty 1-D "
            f"sequence), got shape {array.shape}"
        )
    return array


def check_action_bounds(
    low: Any, high: Any, action_dim: int | None = None, *, owner: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Validate env-action bounds and return them as float64 (A,) arrays.

    Bounds are per env action dimension, shape (A,); planners repeat them over the
    ``action_block`` actions of a block themselves.

    Args:
        low: lower bounds; a tuple, list, numpy array or tensor of A numbers.
        high: upper bounds, same form.
        action_dim: the expected A (None: any length, but both bounds the same).
        owner: who holds the bounds (e.g. ``"WorldModelConfig"``), named in the message.

    Returns:
        (low, high) as new float64 arrays.

    Raises:
        ValueError: not a 1-D sequence of numbers, a length other than ``action_dim``, a NaN
            or infinite entry (or one beyond float32's range), or ``low >= high`` somewhere.
    """
    prefix = f"{owner}: " if owner else ""
    low_array = _bound_array(low, "action_low", prefix)
    high_array = _bound_array(high, "action_high", prefix)
    if action_dim is None and low_array.size != high_array.size:
        raise ValueError(
            f"{prefix}action_low and action_high must have the same length, got "
            f"{low_array.size} and {high_array.size}"
        )
    expected = action_dim if action_dim is not None else low_array.size
    if low_array.size != expected or high_array.size != expected:
        raise ValueError(
            f"{prefix}action_low and action_high must have action_dim={expected} entries (one "
            f"per env action dimension, shared by every action of a block), got "
            f"{low_array.size} and {high_array.size}"
        )
    for name, array in (("action_low", low_array), ("action_high", high_array)):
        if not (np.isfinite(array) & (np.abs(array) <= _FLOAT32_MAX)).all():
            raise ValueError(
                f"{prefix}{name} must be finite (no NaN, inf or value beyond float32's range), "
                f"got {array.tolist()}"
            )
    bad = np.flatnonzero(low_array >= high_array)
    if bad.size:
        raise ValueError(
            f"{prefix}need action_low < action_high in every dimension; not so in dimensions "
            f"{bad.tolist()}: action_low={low_array.tolist()}, action_high={high_array.tolist()}"
        )
    return low_array, high_array


def check_world_model(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check the static members of a :class:`~lewm_mpc.types.LatentWorldModel` (no forward pass).

    Args:
        model: any object meant to satisfy the protocol.

    Returns:
        Its validated action bounds, float64 (A,) arrays (see :func:`check_action_bounds`).

    Raises:
        ValueError: a missing member, a non-callable ``encode``/``rollout``, a size that is
            not a positive int, or bad action bounds.
    """
    owner = type(model).__name__
    missing = [name for name in PROTOCOL_MEMBERS if not hasattr(model, name)]
    if missing:
        raise ValueError(
            f"{owner} does not satisfy the LatentWorldModel protocol: missing {missing}"
        )
    for name in ("encode", "rollout"):
        if not callable(getattr(model, name)):
            raise ValueError(f"{owner}.{name} must be a method, got {getattr(model, name)!r}")
    for name in ("latent_dim", "action_dim", "action_block"):
        value = getattr(model, name)
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{owner}.{name} must be an int >= 1, got {value!r}")
    return check_action_bounds(
        model.action_low, model.action_high, int(model.action_dim), owner=owner
    )


def check_encode_output(model: Any, latents: Any, num: int) -> None:
    """Check what ``model.encode`` returned for ``num`` observations: a float (num, D) tensor.

    Raises:
        ValueError: naming ``encode`` and the expected type and shape.
    """
    owner, dim = type(model).__name__, model.latent_dim
    expected = f"a floating torch.Tensor of shape (B, latent_dim) = ({num}, {dim})"
    if not isinstance(latents, torch.Tensor):
        raise ValueError(f"{owner}.encode returned a {type(latents).__name__}; expected {expected}")
    if tuple(latents.shape) != (num, dim) or not latents.is_floating_point():
        raise ValueError(
            f"{owner}.encode returned a {latents.dtype} tensor of shape {tuple(latents.shape)}; "
            f"expected {expected}"
        )


def check_rollout_output(
    model: Any, latents: Any, z0: torch.Tensor, actions: torch.Tensor, *, planner: str = ""
) -> None:
    """Check what ``model.rollout(z0, actions)`` returned: float (S, H+1, D) latents on the
    device of ``z0`` and, when ``actions`` require grad, differentiable in them.

    The differentiability check runs one backward pass (the graph is kept for the caller).

    Args:
        model: the model that produced ``latents``.
        latents: the rollout's output.
        z0: (S, D) the start latents it was given.
        actions: (S, H, block*A) the action blocks it was given.
        planner: name of the planner, for the message.

    Raises:
        ValueError: naming ``rollout`` and the expected type and shape, or saying that the
            rollout does not pass gradients to the actions.
    """
    owner, dim = type(model).__name__, model.latent_dim
    num, horizon = actions.shape[:2]
    expected = (
        f"a floating torch.Tensor of shape (S, H+1, latent_dim) = ({num}, {horizon + 1}, {dim}), "
        "index 0 being z0"
    )
    if not isinstance(latents, torch.Tensor):
        raise ValueError(
            f"{owner}.rollout returned a {type(latents).__name__}; expected {expected}"
        )
    if tuple(latents.shape) != (num, horizon + 1, dim) or not latents.is_floating_point():
        raise ValueError(
            f"{owner}.rollout returned a {latents.dtype} tensor of shape "
            f"{tuple(latents.shape)}; expected {expected}"
        )
    if latents.device != z0.device:
        raise ValueError(
            f"{owner}.rollout returned latents on {latents.device}, its inputs are on "
            f"{z0.device}; return them on the model's device"
        )
    if actions.requires_grad and torch.is_grad_enabled():
        connected = latents.requires_grad and (
            torch.autograd.grad(latents.sum(), actions, retain_graph=True, allow_unused=True)[0]
            is not None
        )
        if not connected:
            raise ValueError(
                f"{planner or 'this planner'} needs a world model differentiable in the actions, "
                f"but {owner}.rollout does not pass gradients to them (torch.no_grad, .detach() "
                "or numpy inside it?); plan with CEM or MPPI, or give the model "
                "`differentiable = False` so that gradient planners refuse it up front"
            )


def check_energy_output(kind: str, name: str, value: Any, num: int) -> None:
    """Check one energy term's output: a (num,) tensor, one energy per candidate plan.

    Args:
        kind: "task energy" or "guardrail".
        name: the guardrail's name, or the task energy's function or class name.
        value: what the energy returned.
        num: number of candidate plans S.

    Raises:
        ValueError: naming the term, its output and the expected shape.
    """
    if not isinstance(value, torch.Tensor):
        raise ValueError(
            f"{kind} {name!r} returned a {type(value).__name__}; expected a torch.Tensor of "
            f"shape ({num},), one energy per candidate plan"
        )
    if value.shape != (num,):
        raise ValueError(
            f"{kind} {name!r} returned shape {tuple(value.shape)}, expected ({num},) (one "
            "energy per candidate plan)"
        )
